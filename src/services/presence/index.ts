/**
 * Presence: the event state compositor (RFC 3903 PUBLISH, RFC 3863 PIDF) and the presence
 * agent (RFC 6665 SUBSCRIBE/NOTIFY, RFC 3856 presence, RFC 3857 presence.winfo, RFC 4235
 * dialog with the call states the proxy reports): public API.
 */
export {
  createPresence,
  DEFAULT_PRESENCE_MAX_EXPIRES,
  DEFAULT_PRESENCE_MIN_EXPIRES,
  PRESENCE_EVENT,
  registrationTupleId,
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
export {
  createNotifier,
  DEFAULT_MAX_SUBSCRIPTIONS_PER_WATCHER,
  DEFAULT_MAX_WATCHERS_PER_USER,
  DEFAULT_POLL_INTERVAL_MS,
  DEFAULT_SUBSCRIBE_EXPIRES,
  DEFAULT_SUBSCRIBE_MAX_EXPIRES,
  DEFAULT_SUBSCRIBE_MIN_EXPIRES,
  NOTIFIER_EVENTS,
  WINFO_EVENT,
  type Notifier,
  type NotifierOptions,
} from './notifier.ts';
export {
  composeDialogInfo,
  DIALOG_EVENT,
  DIALOG_INFO_CONTENT_TYPE,
  DIALOG_INFO_NS,
  escapeXml,
} from './dialog-info.ts';
export {
  createDialogTracker,
  DEFAULT_MAX_CALL_MS,
  DEFAULT_MAX_DIALOGS,
  DEFAULT_MAX_EARLY_MS,
  TERMINATED_KEPT_MS,
  type DialogTracker,
  type DialogTrackerOptions,
  type DialogTrackerStats,
} from './dialog-tracker.ts';
export { aorDomain, decideWatcher, type PresencePolicyDefaults } from './policy.ts';
export {
  composeWatcherinfo,
  WATCHERINFO_CONTENT_TYPE,
  WATCHERINFO_NS,
  type WatcherEntry,
} from './winfo.ts';
