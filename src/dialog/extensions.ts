/**
 * Header helpers for the in-dialog extensions the UA core speaks: option tags
 * (RFC 3261 §19.2, Supported/Require), reliable provisional responses
 * (RFC 3262 §7: RSeq, RAck), INFO packages (RFC 6086 §8.2: Info-Package,
 * Recv-Info) and session timers (RFC 4028 §4–§5: Session-Expires, Min-SE).
 * Pure functions on messages: no I/O, no timers.
 */
import type { SipRequest, SipResponse } from '../sip/index.ts';

type Message = SipRequest | SipResponse;

/** The option tags of every `name` header (Supported, Require; compact forms included). */
export function optionTags(m: Message, name: 'Supported' | 'Require'): string[] {
  return m
    .getRawAll(name)
    .flatMap((v) => v.split(','))
    .map((t) => t.trim().toLowerCase())
    .filter((t) => t !== '');
}

/** True when `tag` appears in Supported or Require of `m`. */
export function supportsOption(m: Message, tag: string): boolean {
  const t = tag.toLowerCase();
  return optionTags(m, 'Supported').includes(t) || optionTags(m, 'Require').includes(t);
}

/** True when `tag` appears in Require of `m`. */
export function requiresOption(m: Message, tag: string): boolean {
  return optionTags(m, 'Require').includes(tag.toLowerCase());
}

/** RFC 3262 §7.1: `RSeq = "RSeq" HCOLON response-num` (1*DIGIT). */
export function parseRSeq(m: Message): number | undefined {
  const v = m.getRaw('RSeq')?.trim();
  if (v === undefined || !/^\d{1,10}$/.test(v)) return undefined;
  return Number(v);
}

/** RFC 3262 §7.2: `RAck = "RAck" HCOLON response-num LWS CSeq-num LWS Method`. */
export interface RAck {
  readonly rseq: number;
  readonly cseq: number;
  readonly method: string;
}

export function parseRAck(m: Message): RAck | undefined {
  const v = m.getRaw('RAck')?.trim();
  const match = v === undefined ? null : /^(\d{1,10})\s+(\d{1,10})\s+(\S+)$/.exec(v);
  if (match === null) return undefined;
  return { rseq: Number(match[1]), cseq: Number(match[2]), method: match[3]! };
}

export function formatRAck(r: RAck): string {
  return `${r.rseq} ${r.cseq} ${r.method}`;
}

/** RFC 6086 §8.2.1: the package an INFO carries (undefined for legacy INFO). */
export function infoPackageOf(m: Message): string | undefined {
  const v = m.getRaw('Info-Package');
  if (v === undefined) return undefined;
  const name = v.split(';')[0]!.trim();
  return name === '' ? undefined : name;
}

/**
 * RFC 4028 §4: `Session-Expires = ("Session-Expires" / "x") HCOLON delta-seconds
 * *(SEMI se-params)`, `se-params = refresher-param / generic-param`,
 * `refresher-param = "refresher" EQUAL ("uas" / "uac")`.
 */
export interface SessionExpires {
  readonly interval: number;
  readonly refresher: 'uac' | 'uas' | undefined;
}

export function parseSessionExpires(m: Message): SessionExpires | undefined {
  const v = m.getRaw('Session-Expires');
  const match = v === undefined ? null : /^\s*(\d{1,10})\s*(;.*)?$/.exec(v);
  if (match === null) return undefined;
  const r = /;\s*refresher\s*=\s*(uac|uas)\b/i.exec(match[2] ?? '');
  const refresher = r === null ? undefined : (r[1]!.toLowerCase() as 'uac' | 'uas');
  return { interval: Number(match[1]), refresher };
}

export function formatSessionExpires(se: SessionExpires): string {
  return se.refresher === undefined ? `${se.interval}` : `${se.interval};refresher=${se.refresher}`;
}

/** RFC 4028 §5: `Min-SE = "Min-SE" HCOLON delta-seconds *(SEMI generic-param)`. */
export function parseMinSe(m: Message): number | undefined {
  const v = m.getRaw('Min-SE');
  const match = v === undefined ? null : /^\s*(\d{1,10})/.exec(v);
  return match === null ? undefined : Number(match[1]);
}
