/**
 * Codecs of the address headers (all name-addr shaped, see name-addr.ts).
 */
import { defineCodec } from './codec.ts';
import {
  formatContact,
  formatNameAddr,
  parseContactList,
  parseNameAddr,
  parseNameAddrList,
  type ContactValue,
  type NameAddr,
} from './name-addr.ts';

const list = (l: readonly NameAddr[]): string => l.map(formatNameAddr).join(', ');

/** From (RFC 3261 §20.20): critical, single-valued. */
export const FromHeader = defineCodec<NameAddr>({
  name: 'From',
  key: 'from',
  compact: 'f',
  list: false,
  parse: parseNameAddr,
  format: formatNameAddr,
});

/** To (RFC 3261 §20.39): critical, single-valued. */
export const ToHeader = defineCodec<NameAddr>({
  name: 'To',
  key: 'to',
  compact: 't',
  list: false,
  parse: parseNameAddr,
  format: formatNameAddr,
});

/** Contact (RFC 3261 §20.10), including `*`. */
export const ContactHeader = defineCodec<readonly ContactValue[]>({
  name: 'Contact',
  key: 'contact',
  compact: 'm',
  list: true,
  parse: parseContactList,
  format: (l) => l.map(formatContact).join(', '),
});

/** Route (RFC 3261 §20.34). */
export const RouteHeader = defineCodec<readonly NameAddr[]>({
  name: 'Route',
  key: 'route',
  list: true,
  parse: parseNameAddrList,
  format: list,
});

/** Record-Route (RFC 3261 §20.30). */
export const RecordRouteHeader = defineCodec<readonly NameAddr[]>({
  name: 'Record-Route',
  key: 'record-route',
  list: true,
  parse: parseNameAddrList,
  format: list,
});

/** Reply-To (RFC 3261 §20.31). */
export const ReplyToHeader = defineCodec<NameAddr>({
  name: 'Reply-To',
  key: 'reply-to',
  list: false,
  parse: parseNameAddr,
  format: formatNameAddr,
});

/** Path (RFC 3327 §4). */
export const PathHeader = defineCodec<readonly NameAddr[]>({
  name: 'Path',
  key: 'path',
  list: true,
  parse: parseNameAddrList,
  format: list,
});

/** Service-Route (RFC 3608 §5). */
export const ServiceRouteHeader = defineCodec<readonly NameAddr[]>({
  name: 'Service-Route',
  key: 'service-route',
  list: true,
  parse: parseNameAddrList,
  format: list,
});

/** P-Asserted-Identity (RFC 3325 §9.1). */
export const PAssertedIdentityHeader = defineCodec<readonly NameAddr[]>({
  name: 'P-Asserted-Identity',
  key: 'p-asserted-identity',
  list: true,
  parse: parseNameAddrList,
  format: list,
});

/** P-Preferred-Identity (RFC 3325 §9.2). */
export const PPreferredIdentityHeader = defineCodec<readonly NameAddr[]>({
  name: 'P-Preferred-Identity',
  key: 'p-preferred-identity',
  list: true,
  parse: parseNameAddrList,
  format: list,
});

/** Refer-To (RFC 3515 §2.1): a single address, compact form r. */
export const ReferToHeader = defineCodec<NameAddr>({
  name: 'Refer-To',
  key: 'refer-to',
  compact: 'r',
  list: false,
  parse: parseNameAddr,
  format: formatNameAddr,
});

/** Referred-By (RFC 3892 §3): a single address, compact form b. */
export const ReferredByHeader = defineCodec<NameAddr>({
  name: 'Referred-By',
  key: 'referred-by',
  compact: 'b',
  list: false,
  parse: parseNameAddr,
  format: formatNameAddr,
});
