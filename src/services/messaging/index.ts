/** Instant messaging with offline store-and-forward (RFC 3428): public API. */
export {
  createMessaging,
  DEFAULT_MESSAGE_LIFETIME_MS,
  DEFAULT_MESSAGE_MAX_BODY,
  DEFAULT_MESSAGE_QUOTA,
  DEFAULT_MESSAGE_RETRY_MS,
  type Messaging,
  type MessagingOptions,
} from './messaging.ts';
