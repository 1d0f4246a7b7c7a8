/**
 * The parsers under test, each behind the same three steps: parse one message,
 * read its routing fields, serialize it. The peers (npm packages from
 * bench/package.json) are loaded at run time through createRequire/import() and
 * described by the minimal local interfaces below, so that this file typechecks
 * under the root tsconfig.json on a clone where bench/node_modules is not
 * installed (CI runs `npm run lint` without it).
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import {
  hasParam,
  parseMessage,
  RouteHeader,
  serializeMessage,
  ViaHeader,
  type NameAddr,
  type SipRequest,
  type SipResponse,
} from '../../../src/sip/index.ts';
import { installedVersion } from '../../lib/deps.ts';

/** One Route entry as a proxy reads it (RFC 3261 §16.4: is the top Route me? loose routing?). */
export interface RouteHop {
  readonly host: string | undefined;
  readonly port: number | undefined;
  readonly lr: boolean;
}

/** What a proxy reads from every message before forwarding it (RFC 3261 §16.3-§16.7). */
export interface RoutingFields {
  readonly viaBranch: string | undefined;
  readonly viaHost: string | undefined;
  readonly viaPort: number | undefined;
  readonly fromTag: string | undefined;
  readonly toTag: string | undefined;
  readonly callId: string | undefined;
  readonly cseq: number | undefined;
  readonly cseqMethod: string | undefined;
  readonly routes: readonly RouteHop[];
  readonly maxForwards: number | undefined;
}

/** A fixture message: its bytes (what a transport hands over) and its text. */
export interface Fixture {
  readonly name: string;
  readonly bytes: Uint8Array;
  readonly text: string;
}

/**
 * A parser under test. `parse` returns undefined when the parser rejects the
 * message (`rejection()` then tells why, when the parser says).
 */
export interface Subject<In = unknown, M = unknown> {
  readonly name: string;
  /** Whether this is one of Switchboard's own paths (not a peer). */
  readonly own: boolean;
  /** Package and entry points, for the report. */
  readonly entry: string;
  /** What `serialize` does, for the report. */
  readonly serializer: string;
  // Method signatures (bivariant): a Subject<Uint8Array, SipRequest> is a Subject.
  input(f: Fixture): In;
  parse(input: In): M | undefined;
  read(m: M): RoutingFields;
  serialize(m: M): string | Uint8Array;
  rejection(): string;
  /**
   * The routing fields Switchboard should read back from the serialized output,
   * given the ones read from the input (identity unless `serialize` changes the message).
   */
  expectAfterSerialize?(fields: RoutingFields, m: SipRequest | SipResponse): RoutingFields;
}

/** A number that depends on every field read, so the compiler cannot skip reading them. */
export function weigh(f: RoutingFields): number {
  let n =
    (f.viaBranch?.length ?? 0) +
    (f.viaHost?.length ?? 0) +
    (f.viaPort ?? 0) +
    (f.fromTag?.length ?? 0) +
    (f.toTag?.length ?? 0) +
    (f.callId?.length ?? 0) +
    (f.cseq ?? 0) +
    (f.cseqMethod?.length ?? 0) +
    (f.maxForwards ?? 0);
  for (const r of f.routes) n += (r.host?.length ?? 0) + (r.port ?? 0) + (r.lr ? 1 : 0);
  return n;
}

// ---- Switchboard -----------------------------------------------------------

type SbMessage = SipRequest | SipResponse;

function sbHop(na: NameAddr): RouteHop {
  const u = na.uri;
  return u.kind === 'sip'
    ? { host: u.host, port: u.port, lr: hasParam(u.params, 'lr') }
    : { host: undefined, port: undefined, lr: false };
}

/** Reads the routing fields the way a Switchboard proxy does (typed accessors). */
export function readSwitchboard(m: SbMessage): RoutingFields {
  const via = m.topVia;
  const cseq = m.cseq;
  const routes = m.get(RouteHeader);
  return {
    viaBranch: via.branch,
    viaHost: via.host,
    viaPort: via.port,
    fromTag: m.from.tag,
    toTag: m.to.tag,
    callId: m.callId,
    cseq: cseq.seq,
    cseqMethod: cseq.method,
    routes: routes === undefined ? [] : routes.map(sbHop),
    maxForwards: m.maxForwards,
  };
}

const BENCH_VIA = 'SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-bench';

/**
 * The proxy-like change before forwarding: a request gets our Via on top and
 * Max-Forwards decremented (RFC 3261 §16.6 steps 3 and 8); a response loses its
 * top Via (§16.7 step 3).
 */
function proxyChange(m: SbMessage): SbMessage {
  if (m.isRequest()) {
    return m.prepend('Via', BENCH_VIA).set('Max-Forwards', String((m.maxForwards ?? 70) - 1));
  }
  return m.removeFirst(ViaHeader);
}

function switchboardSubjects(): Subject[] {
  let lastError = '';
  const parse = (input: Uint8Array | string): SbMessage | undefined => {
    const r = parseMessage(input);
    if (r.ok) return r.message;
    lastError = `${r.error.code}: ${r.error.detail}`;
    return undefined;
  };
  const entry = "parseMessage, serializeMessage from 'src/sip/index.ts'";
  const plain: Subject<Uint8Array, SbMessage> = {
    name: 'switchboard',
    own: true,
    entry: `${entry}; input: Uint8Array (as a transport hands it)`,
    serializer: 'serializeMessage(m): an unchanged message returns the received bytes',
    input: (f) => f.bytes,
    parse,
    read: readSwitchboard,
    serialize: serializeMessage,
    rejection: () => lastError,
  };
  const fromString: Subject<string, SbMessage> = {
    name: 'switchboard (string input)',
    own: true,
    entry: `${entry}; input: string (parseMessage encodes it to UTF-8 first)`,
    serializer: 'serializeMessage(m): the received bytes',
    input: (f) => f.text,
    parse,
    read: readSwitchboard,
    serialize: serializeMessage,
    rejection: () => lastError,
  };
  const modified: Subject<Uint8Array, SbMessage> = {
    name: 'switchboard (modified)',
    own: true,
    entry: `${entry}; input: Uint8Array`,
    serializer:
      'request: prepend Via + set Max-Forwards, response: remove top Via; then serializeMessage (rebuilds the text)',
    input: (f) => f.bytes,
    parse,
    read: readSwitchboard,
    serialize: (m) => serializeMessage(proxyChange(m)),
    rejection: () => lastError,
    expectAfterSerialize: (f, m) => {
      if (m.isRequest()) {
        return {
          ...f,
          viaBranch: 'z9hG4bK-bench',
          viaHost: '127.0.0.1',
          viaPort: 5060,
          maxForwards: (f.maxForwards ?? 70) - 1,
        };
      }
      const next = m.via[1];
      return { ...f, viaBranch: next?.branch, viaHost: next?.host, viaPort: next?.port };
    },
  };
  return [plain, fromString, modified];
}

// ---- peers: minimal shapes of what is used -----------------------------------

/** `sip` (kirm/sip.js on npm): messages are plain objects, headers by lower-case name. */
interface KirmUri {
  host?: string;
  port?: number; // NaN when absent
  params?: Record<string, string | null>;
}
interface KirmMessage {
  method?: string;
  status?: number;
  headers: {
    via?: { host?: string; port?: number; params?: Record<string, string | null> }[];
    from?: { params?: Record<string, string | null> };
    to?: { params?: Record<string, string | null> };
    'call-id'?: string;
    cseq?: { seq: number; method: string };
    route?: { uri?: KirmUri }[];
    'max-forwards'?: string;
  };
}
interface KirmSip {
  parse(s: string): KirmMessage | undefined;
  stringify(m: KirmMessage): string;
}

/** SIP.js core and JsSIP (SIP.js began as a fork of JsSIP): the same message shape, two spellings. */
interface PegUri {
  host?: string;
  port?: number;
  hasParam(name: string): boolean;
}
interface PegRoute {
  parsed?: { uri?: PegUri };
}
interface PegGrammar {
  parse(input: string, startRule: string): PegRoute[] | -1;
}
interface PegMessage {
  via?: { host?: string; port?: number };
  getHeaders(name: string): string[];
  parseHeader(name: string): unknown;
  toString(): string;
}
interface SipJsMessage extends PegMessage {
  viaBranch?: string;
  fromTag?: string;
  toTag?: string;
  callId?: string;
  cseq?: number;
}
interface JsSipMessage extends PegMessage {
  via_branch?: string | null;
  from_tag?: string | null;
  to_tag?: string | null;
  call_id?: string | null;
  cseq?: number | null;
}
interface SipJsLogger {
  error(m: string): void;
  warn(m: string): void;
  log(m: string): void;
  debug(m: string): void;
}
interface SipJsCore {
  Parser: { parseMessage(data: string, logger: SipJsLogger): SipJsMessage | undefined };
  Grammar: PegGrammar;
}
interface JsSipParser {
  parseMessage(data: string, ua: object): JsSipMessage | undefined;
}

function kirmSubject(sip: KirmSip, version: string): Subject<string, KirmMessage> {
  const hop = (r: { uri?: KirmUri }): RouteHop => {
    const u = r.uri;
    const port = u?.port;
    return {
      host: u?.host,
      port: port === undefined || Number.isNaN(port) ? undefined : port,
      lr: u?.params !== undefined && 'lr' in u.params,
    };
  };
  return {
    name: 'sip',
    own: false,
    entry: `sip@${version}: require('sip').parse(string)`,
    serializer: "require('sip').stringify(m): rebuilds the text from its parsed model",
    input: (f) => f.text,
    parse: (s) => sip.parse(s),
    read: (m) => {
      const h = m.headers;
      const via = h.via?.[0];
      const mf = h['max-forwards'];
      return {
        viaBranch: via?.params?.branch ?? undefined,
        viaHost: via?.host,
        viaPort: via?.port,
        fromTag: h.from?.params?.tag ?? undefined,
        toTag: h.to?.params?.tag ?? undefined,
        callId: h['call-id'],
        cseq: h.cseq?.seq,
        cseqMethod: h.cseq?.method,
        routes: h.route === undefined ? [] : h.route.map(hop),
        maxForwards: mf === undefined ? undefined : Number(mf),
      };
    },
    serialize: (m) => sip.stringify(m),
    rejection: () => 'parse() returned undefined',
  };
}

/** Route is not parsed by either PEG parser; a proxy would use their Record_Route rule (same ABNF). */
function pegRoutes(grammar: PegGrammar, raw: readonly string[]): RouteHop[] {
  const out: RouteHop[] = [];
  for (const value of raw) {
    const parsed = grammar.parse(value, 'Record_Route');
    if (parsed === -1) {
      out.push({ host: undefined, port: undefined, lr: false });
      continue;
    }
    for (const r of parsed) {
      const u = r.parsed?.uri;
      out.push({ host: u?.host, port: u?.port, lr: u?.hasParam('lr') ?? false });
    }
  }
  return out;
}

function sipJsSubject(core: SipJsCore, version: string): Subject<string, SipJsMessage> {
  let lastError = '';
  const logger: SipJsLogger = {
    error: (m) => (lastError = m),
    warn: (m) => (lastError = m),
    log: () => {},
    debug: () => {},
  };
  return {
    name: 'sip.js',
    own: false,
    entry: `sip.js@${version}: Parser.parseMessage(string, logger) from 'sip.js/lib/core' (marked @internal)`,
    serializer:
      'IncomingMessage.toString(): returns the received text (no serializer for a parsed message)',
    input: (f) => f.text,
    parse: (s) => core.Parser.parseMessage(s, logger),
    read: (m) => {
      const cseq = m.parseHeader('cseq') as { method?: string } | undefined;
      return {
        viaBranch: m.viaBranch,
        viaHost: m.via?.host,
        viaPort: m.via?.port,
        fromTag: m.fromTag ?? undefined,
        toTag: m.toTag ?? undefined,
        callId: m.callId,
        cseq: m.cseq,
        cseqMethod: cseq?.method,
        routes: pegRoutes(core.Grammar, m.getHeaders('route')),
        maxForwards: m.parseHeader('max-forwards') as number | undefined,
      };
    },
    serialize: (m) => m.toString(),
    rejection: () => lastError || 'parseMessage returned undefined',
  };
}

function jsSipSubject(
  parser: JsSipParser,
  grammar: PegGrammar,
  version: string,
): Subject<string, JsSipMessage> {
  // IncomingRequest only stores the UA; nothing on it is used while parsing.
  const ua = {};
  return {
    name: 'jssip',
    own: false,
    entry: `jssip@${version}: require('jssip/lib/Parser').parseMessage(string, ua stub) (not re-exported by JsSIP)`,
    serializer:
      'IncomingMessage.toString(): returns the received text (no serializer for a parsed message)',
    input: (f) => f.text,
    parse: (s) => parser.parseMessage(s, ua),
    read: (m) => {
      const cseq = m.parseHeader('cseq') as { method?: string } | undefined;
      return {
        viaBranch: m.via_branch ?? undefined,
        viaHost: m.via?.host,
        viaPort: m.via?.port,
        fromTag: m.from_tag ?? undefined,
        toTag: m.to_tag ?? undefined,
        callId: m.call_id ?? undefined,
        cseq: m.cseq ?? undefined,
        cseqMethod: cseq?.method,
        routes: pegRoutes(grammar, m.getHeaders('route')),
        maxForwards: m.parseHeader('max-forwards') as number | undefined,
      };
    },
    serialize: (m) => m.toString(),
    rejection: () => 'parseMessage returned undefined (reason only in its debug log)',
  };
}

/** Switchboard's three paths and the three peers, loaded from bench/node_modules. */
export async function loadSubjects(benchDir: string): Promise<Subject[]> {
  const require = createRequire(pathToFileURL(`${benchDir}/package.json`));
  const version = (name: string): string => installedVersion(benchDir, name) ?? '?';
  const kirm = require('sip') as KirmSip;
  const sipJsCore = (await import(
    pathToFileURL(require.resolve('sip.js/lib/core/index.js')).href
  )) as SipJsCore;
  const jsSipParser = require('jssip/lib/Parser.js') as JsSipParser;
  const jsSipGrammar = require('jssip/lib/Grammar.js') as PegGrammar;
  return [
    ...switchboardSubjects(),
    kirmSubject(kirm, version('sip')),
    sipJsSubject(sipJsCore, version('sip.js')),
    jsSipSubject(jsSipParser, jsSipGrammar, version('jssip')),
  ];
}
