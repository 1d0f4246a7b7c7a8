/** The presence event state compositor (RFC 3903 PUBLISH, RFC 3863 PIDF): public API. */
export {
  createPresence,
  DEFAULT_PRESENCE_MAX_EXPIRES,
  DEFAULT_PRESENCE_MIN_EXPIRES,
  PRESENCE_EVENT,
  type ComposedPresence,
  type Presence,
  type PresenceOptions,
} from './presence.ts';
export {
  composePidf,
  escapeXmlAttribute,
  parsePidf,
  PIDF_CONTENT_TYPE,
  PIDF_NS,
  type PidfDocument,
  type PidfTuple,
} from './pidf.ts';
