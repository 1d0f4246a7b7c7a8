/**
 * Header key -> codec. The parser needs only names.ts; this registry serves
 * generic decoding (the `switchboard parse` command, logs, the admin side).
 * Adding a header: one codec, one line here, one line in names.ts, one golden test.
 */
import type { HeaderCodec } from './codec.ts';
import {
  ContactHeader,
  FromHeader,
  PAssertedIdentityHeader,
  PPreferredIdentityHeader,
  PathHeader,
  RecordRouteHeader,
  ReferToHeader,
  ReferredByHeader,
  ReplyToHeader,
  RouteHeader,
  ServiceRouteHeader,
  ToHeader,
} from './address.ts';
import {
  AuthenticationInfoHeader,
  AuthorizationHeader,
  ProxyAuthenticateHeader,
  ProxyAuthorizationHeader,
  WwwAuthenticateHeader,
} from './auth.ts';
import { CSeqHeader } from './cseq.ts';
import { EventHeader, SubscriptionStateHeader } from './event.ts';
import { AcceptHeader, ContentTypeHeader } from './media-type.ts';
import {
  AcceptContactHeader,
  AlertInfoHeader,
  CallInfoHeader,
  ContentDispositionHeader,
  DateHeader,
  ErrorInfoHeader,
  MimeVersionHeader,
  OrganizationHeader,
  PriorityHeader,
  RejectContactHeader,
  RequestDispositionHeader,
  ServerHeader,
  SubjectHeader,
  TimestampHeader,
  UserAgentHeader,
  WarningHeader,
} from './misc.ts';
import {
  CallIdHeader,
  ContentLengthHeader,
  ExpiresHeader,
  MaxForwardsHeader,
  MinExpiresHeader,
  RSeqHeader,
  SipETagHeader,
  SipIfMatchHeader,
} from './scalar.ts';
import {
  MinSeHeader,
  RAckHeader,
  ReasonHeader,
  ReplacesHeader,
  RetryAfterHeader,
  SessionExpiresHeader,
} from './session.ts';
import {
  AcceptEncodingHeader,
  AcceptLanguageHeader,
  AllowEventsHeader,
  AllowHeader,
  ContentEncodingHeader,
  ContentLanguageHeader,
  InReplyToHeader,
  PrivacyHeader,
  ProxyRequireHeader,
  RequireHeader,
  SupportedHeader,
  UnsupportedHeader,
} from './token-list.ts';
import { ViaHeader } from './via.ts';

const ALL: readonly HeaderCodec<unknown>[] = [
  ViaHeader,
  FromHeader,
  ToHeader,
  CallIdHeader,
  CSeqHeader,
  MaxForwardsHeader,
  ContentLengthHeader,
  ContactHeader,
  RouteHeader,
  RecordRouteHeader,
  ReplyToHeader,
  PathHeader,
  ServiceRouteHeader,
  PAssertedIdentityHeader,
  PPreferredIdentityHeader,
  ReferToHeader,
  ReferredByHeader,
  ExpiresHeader,
  MinExpiresHeader,
  RSeqHeader,
  SipETagHeader,
  SipIfMatchHeader,
  // auth.ts
  WwwAuthenticateHeader,
  ProxyAuthenticateHeader,
  AuthorizationHeader,
  ProxyAuthorizationHeader,
  AuthenticationInfoHeader,
  // token-list.ts
  AllowHeader,
  SupportedHeader,
  RequireHeader,
  ProxyRequireHeader,
  UnsupportedHeader,
  AllowEventsHeader,
  ContentEncodingHeader,
  ContentLanguageHeader,
  AcceptLanguageHeader,
  AcceptEncodingHeader,
  InReplyToHeader,
  PrivacyHeader,
  // media-type.ts
  ContentTypeHeader,
  AcceptHeader,
  // event.ts
  EventHeader,
  SubscriptionStateHeader,
  // session.ts
  SessionExpiresHeader,
  MinSeHeader,
  RAckHeader,
  ReplacesHeader,
  ReasonHeader,
  RetryAfterHeader,
  // misc.ts
  WarningHeader,
  DateHeader,
  TimestampHeader,
  MimeVersionHeader,
  PriorityHeader,
  SubjectHeader,
  UserAgentHeader,
  ServerHeader,
  OrganizationHeader,
  ContentDispositionHeader,
  AlertInfoHeader,
  CallInfoHeader,
  ErrorInfoHeader,
  AcceptContactHeader,
  RejectContactHeader,
  RequestDispositionHeader,
] as readonly HeaderCodec<unknown>[];

const BY_KEY: ReadonlyMap<string, HeaderCodec<unknown>> = new Map(ALL.map((c) => [c.key, c]));

/** The codec for a header key (see names.ts `headerKey`), when the header has one. */
export function codecFor(key: string): HeaderCodec<unknown> | undefined {
  return BY_KEY.get(key);
}

/** Every registered codec. */
export function allCodecs(): readonly HeaderCodec<unknown>[] {
  return ALL;
}
