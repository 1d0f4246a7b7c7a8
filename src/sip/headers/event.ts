/**
 * SIP-specific event notification headers (RFC 6665 §8.2.1, §8.2.3, §8.4):
 *
 *   Event = ( "Event" / "o" ) HCOLON event-type *( SEMI event-param )
 *   event-type = event-package *( "." event-template )
 *   event-package = token-nodot; event-template = token-nodot
 *   event-param = generic-param / ( "id" EQUAL token )
 *
 *   Subscription-State = "Subscription-State" HCOLON substate-value
 *                        *( SEMI subexp-params )
 *   substate-value = "active" / "pending" / "terminated" / extension-substate
 *   subexp-params = ("reason" EQUAL event-reason-value)
 *                   / ("expires" EQUAL delta-seconds)
 *                   / ("retry-after" EQUAL delta-seconds) / generic-param
 */
import { err, ok, type Result } from '../../base/result.ts';
import { Cursor } from '../grammar/cursor.ts';
import { formatParams, paramValue, type Params } from '../uri/params.ts';
import { defineCodec } from './codec.ts';
import { parseHeaderParams } from './header-params.ts';
import { parseDeltaSeconds } from './scalar.ts';

/** An Event value (RFC 6665 §8.2.1). */
export interface SipEvent {
  /**
   * event-type as written ("presence", "presence.winfo"). RFC 6665 §8.2.1:
   * event types and the id are compared byte by byte (case-sensitive).
   */
  readonly type: string;
  /** event-package: the part before the first "." ("presence"). */
  readonly package: string;
  /** event-templates, in order (["winfo"] for "presence.winfo"). */
  readonly templates: readonly string[];
  /** event-params as written. */
  readonly params: Params;
  /** The id parameter, when present. */
  readonly id?: string;
}

/** Parses an Event value. */
export function parseEvent(value: string): Result<SipEvent, string> {
  const c = new Cursor(value);
  c.ws();
  const type = c.token();
  if (type === '') return err('missing event-type');
  const parts = type.split('.');
  for (const p of parts) if (p === '') return err('empty event-package or event-template');
  const params = parseHeaderParams(c);
  if (typeof params === 'string') return err(params);
  c.ws();
  if (!c.atEnd()) return err(`unexpected text in Event: ${JSON.stringify(c.rest())}`);
  const out: { -readonly [K in keyof SipEvent]: SipEvent[K] } = {
    type,
    package: parts[0]!,
    templates: parts.slice(1),
    params,
  };
  const id = paramValue(params, 'id');
  if (id !== undefined) out.id = id;
  return ok(out);
}

/** Event (RFC 6665 §8.2.1), compact form o. Single-valued (§8.2.1: one event type). */
export const EventHeader = defineCodec<SipEvent>({
  name: 'Event',
  key: 'event',
  compact: 'o',
  list: false,
  parse: parseEvent,
  format: (e) => e.type + formatParams(e.params),
});

/** A Subscription-State value (RFC 6665 §8.2.3, §4.1.3). */
export interface SubscriptionState {
  /**
   * substate-value, lower-cased: "active", "pending", "terminated" or an
   * extension-substate (ABNF literals are case-insensitive).
   */
  readonly state: string;
  /** subexp-params as written. */
  readonly params: Params;
  /** expires (delta-seconds), clamped to 2**32-1 like Expires (RFC 3261 §20.19). */
  readonly expires?: number;
  /** reason, lower-cased: deactivated, probation, rejected, timeout, giveup, noresource, invariant, ... */
  readonly reason?: string;
  /** retry-after (delta-seconds). */
  readonly retryAfter?: number;
}

/** Parses a Subscription-State value. */
export function parseSubscriptionState(value: string): Result<SubscriptionState, string> {
  const c = new Cursor(value);
  c.ws();
  const state = c.token();
  if (state === '') return err('missing substate-value');
  const params = parseHeaderParams(c);
  if (typeof params === 'string') return err(params);
  c.ws();
  if (!c.atEnd()) return err(`unexpected text in Subscription-State: ${JSON.stringify(c.rest())}`);
  const out: { -readonly [K in keyof SubscriptionState]: SubscriptionState[K] } = {
    state: state.toLowerCase(),
    params,
  };
  const expires = paramValue(params, 'expires');
  if (expires !== undefined) {
    const v = parseDeltaSeconds(expires);
    if (!v.ok) return err('invalid expires parameter');
    out.expires = v.value;
  }
  const reason = paramValue(params, 'reason');
  if (reason !== undefined) out.reason = reason.toLowerCase();
  const retry = paramValue(params, 'retry-after');
  if (retry !== undefined) {
    const v = parseDeltaSeconds(retry);
    if (!v.ok) return err('invalid retry-after parameter');
    out.retryAfter = v.value;
  }
  return ok(out);
}

/** Subscription-State (RFC 6665 §8.2.3). */
export const SubscriptionStateHeader = defineCodec<SubscriptionState>({
  name: 'Subscription-State',
  key: 'subscription-state',
  list: false,
  parse: parseSubscriptionState,
  format: (s) => s.state + formatParams(s.params),
});
