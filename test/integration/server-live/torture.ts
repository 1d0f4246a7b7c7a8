/**
 * The RFC 4475 / RFC 5118 torture messages against a live server: one message as exact bytes
 * (read from the shared corpus through test/conformance/corpus.ts, never copied), the
 * server's reaction observed on the wire, and the verdict against the corpus index
 * (`net_udp` / `net_tcp`: alternatives separated by `~`, each a `|` list of statuses `NNN`,
 * classes `Nxx`, `final` = any 2xx–6xx, exclusions `!NNN`, `drop` = no answer, `close` = the
 * connection closed without an answer). Every alternative the index lists is admitted (it
 * lists them best first; docs/conformance.md records which one Switchboard takes and why,
 * e.g. mismatch02 gets 400 where 501 is preferred).
 *
 * Where the answer goes (RFC 3261 §18.2.2): over UDP to the request's source address (the
 * `received` parameter, RFC 3261 §18.2.1) and the port of the top Via's sent-by (5060 when
 * it has none), or to the source port when the Via has `rport` (RFC 3581 §4); a request that
 * does not parse is answered statelessly to where it came from. So the UDP socket of a row is
 * bound to 127.0.0.1 (or ::1) at its Via port. When that port is held by another process the
 * row falls back to the server's send trace (test/support/send-trace.mjs) for the status it
 * sent there, and says so. Over TCP the answer comes back on the connection.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { formatVia, parseMessage } from '../../../src/sip/index.ts';
import {
  corpusTests,
  readBytes,
  type CorpusRow,
  type CorpusSet,
} from '../../conformance/corpus.ts';
import { stopServer, type RunningServer } from '../../support/server.ts';
import { loudSkip } from '../transport/support.ts';
import {
  probeTcp,
  probeTcpOn,
  probeUdp,
  rawBranch,
  rawCSeq,
  rawHeaders,
  sendRecords,
  startTracedServer,
  TcpPeer,
  UdpPeer,
  type Received,
} from './support.ts';

/** Where a UDP answer to a message goes: a port, the source port, or nowhere (a response). */
export type UdpAnswerPort = number | 'source' | 'none';

/** One corpus message with what the tests need to recognise its answer. */
export interface RowMessage {
  readonly row: CorpusRow;
  readonly bytes: Uint8Array;
  readonly isRequest: boolean;
  /** Request method from the Request-Line (undefined for a response). */
  readonly method: string | undefined;
  /** Request-URI as written (for the ACK of an INVITE). */
  readonly requestUri: string | undefined;
  readonly callId: string | undefined;
  readonly cseq: Received['cseq'];
  /** The top Via's branch, read leniently. */
  readonly branch: string | undefined;
  readonly udpAnswerPort: UdpAnswerPort;
  /**
   * What a server matches the request's transaction on (RFC 3261 §17.2.3: branch, sent-by,
   * method; ACK as INVITE) when the branch has the magic cookie; undefined otherwise.
   */
  readonly transactionKey: string | undefined;
}

export function rowMessage(row: CorpusRow): RowMessage {
  const bytes = readBytes(row.file);
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
  // dblreq: the header fields of the first message only (the trailing octets are another).
  const headers = rawHeaders(text);
  const startLine = text.slice(0, text.search(/\r?\n/));
  const isRequest = !startLine.startsWith('SIP/');
  const parts = startLine.split(' ');
  let udpAnswerPort: UdpAnswerPort = 'none';
  let transactionKey: string | undefined;
  if (isRequest) {
    const r = parseMessage(bytes, { framing: 'datagram' });
    if (r.ok && r.message.isRequest()) {
      const via = r.message.topVia;
      udpAnswerPort = via.rport === null ? 'source' : (via.port ?? 5060);
      if (via.branch?.startsWith('z9hG4bK') === true) {
        const method = r.message.method === 'ACK' ? 'INVITE' : r.message.method;
        transactionKey = `${via.branch}|${via.host.toLowerCase()}:${via.port ?? ''}|${method}`;
      }
    } else {
      udpAnswerPort = 'source';
    }
  }
  return {
    row,
    bytes,
    isRequest,
    method: isRequest ? parts[0] : undefined,
    requestUri: isRequest ? parts[1] : undefined,
    callId: headers.get('call-id')?.[0],
    cseq: rawCSeq(headers.get('cseq')?.[0]),
    branch: rawBranch(headers.get('via')?.[0]),
    udpAnswerPort,
    transactionKey,
  };
}

/**
 * True when `r` is a final answer to `m`: same Call-ID and CSeq number; or, for an answer
 * without a Call-ID (a 400 built only from the header fields read before a parse failure),
 * the same top Via branch. Whether the answer copies the Call-ID is checked separately.
 */
export function answers(
  m: RowMessage,
  r: Pick<Received, 'status' | 'callId' | 'cseq' | 'branch'>,
): boolean {
  if (r.status < 200) return false;
  if (r.callId === undefined && m.callId !== undefined) {
    return m.branch !== undefined && r.branch === m.branch;
  }
  if (r.callId !== m.callId) return false;
  if (m.cseq !== undefined && r.cseq !== undefined && r.cseq.seq !== m.cseq.seq) return false;
  return true;
}

/** What happened to one message. */
export interface Outcome {
  /** The final status answered; undefined for no answer. */
  readonly status: number | undefined;
  /** True when the server closed the stream (TCP). */
  readonly closed: boolean;
  readonly response: Received | undefined;
  /** The OPTIONS probe's status afterwards (200 = still answering). */
  readonly probe: number | undefined;
  /** Every response that arrived on the row's socket or connection. */
  readonly all: readonly Received[];
  /** How the answer was observed. */
  readonly observedBy: 'socket' | 'trace';
  /** Human-readable notes (port fallback, ACK sent, ...). */
  readonly notes: readonly string[];
}

/** The `~` alternatives of an index column, each as its `|` parts. */
export function alternatives(spec: string): string[][] {
  return spec
    .split('~')
    .map((a) =>
      a
        .split('|')
        .map((p) => p.trim())
        .filter((p) => p !== ''),
    )
    .filter((a) => a.length > 0);
}

function admitsStatus(alt: readonly string[], s: number): boolean {
  if (alt.some((p) => p === `!${s}`)) return false;
  return alt.some(
    (p) =>
      (/^\d{3}$/.test(p) && Number(p) === s) ||
      (/^\dxx$/.test(p) && Math.floor(s / 100) === Number(p[0])) ||
      (p === 'final' && s >= 200 && s <= 699),
  );
}

function admitsAlternative(alt: readonly string[], o: Pick<Outcome, 'status' | 'closed'>): boolean {
  if (o.status === undefined) return alt.includes('drop') || (o.closed && alt.includes('close'));
  return admitsStatus(alt, o.status);
}

/** The index of the first alternative the outcome satisfies, or -1. */
export function admittedBy(spec: string, o: Pick<Outcome, 'status' | 'closed'>): number {
  return alternatives(spec).findIndex((alt) => admitsAlternative(alt, o));
}

/** True when some alternative admits no answer at all. */
export function admitsSilence(spec: string): boolean {
  return alternatives(spec).some((alt) => alt.includes('drop') || alt.includes('close'));
}

/**
 * The index's `checks` column that applies to what was seen: `NNN:hdr=Name` (an answer with
 * that status carries the header), `udp:no-response-callid=X` (nothing answered that Call-ID
 * over UDP: checked on the trace, whatever port it went to). Checks on a 200 to a REGISTER
 * (`200:contact-...`) need an authenticated registration; the corpus REGISTERs carry no
 * credentials, so the registrar challenges them (401) and those checks do not apply.
 * Returns the failures.
 */
export function checkFailures(
  m: RowMessage,
  o: Outcome,
  transport: 'udp' | 'tcp',
  server: RunningServer,
): string[] {
  const failures: string[] = [];
  for (const check of m.row.checks.split(/[\s,]+/).filter((c) => c !== '')) {
    const hdr = /^(\d{3}):hdr=(.+)$/.exec(check);
    if (hdr !== null) {
      // The send trace has no header fields: an answer read from it cannot be checked here.
      if (o.observedBy === 'trace') continue;
      if (
        o.status === Number(hdr[1]) &&
        !rawHeaders(o.response?.text ?? '').has(hdr[2]!.toLowerCase())
      )
        failures.push(`${check}: the ${o.status} has no ${hdr[2]} header`);
      continue;
    }
    const noResponse = /^udp:no-response-callid=(.+)$/.exec(check);
    if (noResponse !== null) {
      if (transport !== 'udp') continue;
      const callId = noResponse[1]!;
      const seen = o.all.filter((r) => r.callId === callId);
      const traced = sendRecords(server).filter((r) => r.callId === callId);
      if (seen.length > 0 || traced.length > 0)
        failures.push(
          `${check}: answered anyway (${[...seen.map((r) => r.status), ...traced.map((r) => r.status)].join(', ')})`,
        );
    }
  }
  return failures;
}

/** The ACK for a non-2xx final answer to an INVITE (RFC 3261 §17.1.1.3), or undefined. */
function ackFor(m: RowMessage, r: Received): string | undefined {
  const res = r.message;
  if (m.method !== 'INVITE' || res === undefined || m.requestUri === undefined) return undefined;
  try {
    return [
      `ACK ${m.requestUri} SIP/2.0`,
      `Via: ${formatVia(res.topVia)}`,
      'Max-Forwards: 70',
      `From: ${res.getRaw('From') ?? ''}`,
      `To: ${res.getRaw('To') ?? ''}`,
      `Call-ID: ${res.callId}`,
      `CSeq: ${res.cseq.seq} ACK`,
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n');
  } catch {
    return undefined; // an answer without usable From/To/Via: nothing to ACK
  }
}

export interface LiveTarget {
  readonly server: RunningServer;
  /** The address the server listens on and the peer binds (127.0.0.1 or ::1). */
  readonly host: string;
  readonly port: number;
  /** Ports found held by another process: not waited for again. */
  readonly busyPorts?: Set<number>;
}

/**
 * Sends one message over UDP from a socket bound to the port its answer goes to, and
 * observes the reaction:
 * - when the index admits silence, an OPTIONS probe from the same socket follows at once:
 *   the server reads datagrams in order and drops or answers a bad message before it reads
 *   the probe, so once the probe's 200 is back a missing answer is a real drop (a request
 *   gets a further second for an answer that the registrar computes asynchronously);
 * - otherwise the message is retransmitted as a client transaction would (500 ms doubling,
 *   at most 6 s) until a final answer, then probed.
 * A final answer to an INVITE is ACKed (so the server stops retransmitting it, §17.2.1).
 */
export async function runUdp(m: RowMessage, t: LiveTarget): Promise<Outcome> {
  const notes: string[] = [];
  const want = m.udpAnswerPort;
  let peer: UdpPeer | undefined;
  let observedBy: Outcome['observedBy'] = 'socket';
  if (typeof want === 'number') {
    peer = await UdpPeer.bind(t.host, want, t.busyPorts?.has(want) === true ? 0 : 3000);
    if (peer === undefined) {
      t.busyPorts?.add(want);
      observedBy = 'trace';
      notes.push(
        `${t.host}:${want} (the top Via's port) is held by another process: the answer is read ` +
          'from the server send trace instead of the socket',
      );
    }
  }
  const sock = peer ?? (await UdpPeer.bind(t.host, 0))!;
  try {
    const isAnswer = (r: Received): boolean => r.from.port === t.port && answers(m, r);
    let response: Received | undefined;
    let probe: number | undefined;
    const traced = (): Received | undefined => {
      const rec = sendRecords(t.server).find(
        (s) =>
          s.event === 'send' &&
          s.kind === 'response' &&
          s.port === want &&
          answers(m, {
            status: s.status ?? 0,
            callId: s.callId,
            cseq: rawCSeq(s.cseq),
            branch: s.branch,
          }),
      );
      return rec === undefined
        ? undefined
        : {
            status: rec.status!,
            callId: rec.callId,
            cseq: rawCSeq(rec.cseq),
            branch: rec.branch,
            message: undefined,
            text: '',
            from: { address: t.host, port: t.port },
          };
    };
    const look = async (ms: number): Promise<Received | undefined> => {
      if (observedBy === 'socket') return sock.waitFor(isAnswer, ms);
      const deadline = Date.now() + ms;
      for (;;) {
        const hit = traced();
        if (hit !== undefined || Date.now() >= deadline) return hit;
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await sock.send(m.bytes, t.port, t.host);
    if (admitsSilence(m.row.netUdp)) {
      probe = await probeUdp(sock, t.port, t.host);
      response = await look(m.isRequest ? 1000 : 200);
    } else {
      const deadline = Date.now() + 6000;
      let interval = 500;
      for (;;) {
        response = await look(interval);
        if (response !== undefined || Date.now() >= deadline) break;
        await sock.send(m.bytes, t.port, t.host);
        notes.push(`no answer after ${interval} ms: retransmitted`);
        interval = Math.min(interval * 2, 4000);
      }
      probe = await probeUdp(sock, t.port, t.host);
    }
    if (response !== undefined) {
      const ack = ackFor(m, response);
      if (ack !== undefined) {
        await sock.send(ack, t.port, t.host);
        notes.push('ACKed');
      }
    }
    return {
      status: response?.status,
      closed: false,
      response,
      probe,
      all: [...sock.responses],
      observedBy,
      notes,
    };
  } finally {
    await sock.close();
  }
}

/**
 * Sends one message over a new TCP connection and observes the reaction: the answer on the
 * connection, or the connection closing, or nothing. When the index admits silence for a
 * response message, an OPTIONS on the same connection is the sync point (the stream is read
 * in order); for a request that may go unanswered (an incomplete message waits for octets
 * that never come: clerr, baddn) the wait is 1.5 s. Afterwards an OPTIONS over a new
 * connection must get 200.
 */
export async function runTcp(m: RowMessage, t: LiveTarget): Promise<Outcome> {
  const notes: string[] = [];
  const peer = await TcpPeer.connect(t.host, t.port);
  let response: Received | undefined;
  try {
    const isAnswer = (r: Received): boolean => answers(m, r);
    if (!(await peer.write(m.bytes))) notes.push('the connection closed before the write');
    if (admitsSilence(m.row.netTcp)) {
      if (!m.isRequest && peer.isOpen) {
        const sync = await probeTcpOn(peer, t.host);
        notes.push(`OPTIONS on the same connection: ${sync ?? 'no answer'}`);
        response = await peer.waitFor(isAnswer, 200);
      } else {
        response = await peer.waitFor(isAnswer, 1500);
      }
    } else {
      response = await peer.waitFor(isAnswer, 10_000);
    }
    if (response !== undefined && peer.isOpen) {
      const ack = ackFor(m, response);
      if (ack !== undefined && (await peer.write(ack))) notes.push('ACKed');
    }
    // Let a close that follows an error answer arrive (bounded).
    if (response !== undefined && response.status >= 400) {
      await Promise.race([peer.closed, new Promise((r) => setTimeout(r, 100))]);
    }
    const closed = !peer.isOpen;
    const all = [...peer.responses];
    peer.destroy();
    const probe = await probeTcp(t.host, t.port);
    return { status: response?.status, closed, response, probe, all, observedBy: 'socket', notes };
  } finally {
    peer.destroy();
  }
}

/** One line describing an outcome, for assertion messages. */
export function describeOutcome(m: RowMessage, o: Outcome): string {
  const what =
    o.status === undefined
      ? `no answer${o.closed ? ', connection closed' : ''}`
      : `${o.status}${o.closed ? ' then close' : ''}`;
  const others = o.all
    .filter((r) => r !== o.response)
    .map((r) => `${r.status} ${r.callId ?? '(no Call-ID)'}`)
    .join('; ');
  return (
    `${m.row.name}: ${what} (observed by ${o.observedBy}); probe ${o.probe ?? 'no answer'}` +
    (others === '' ? '' : `; other responses: ${others}`) +
    (o.notes.length === 0 ? '' : `; ${o.notes.join('; ')}`)
  );
}

/**
 * Servers for a run of corpus rows. Some corpus messages share their transaction key
 * (RFC 3261 §17.2.3: branch, sent-by and method): unkscm and novelsc, cparam01 and cparam02,
 * three RFC 5118 REGISTERs, the two RFC 5118 OPTIONS. Sent to one server within Timer J
 * (32 s over UDP), the later one is a retransmission of the earlier transaction and gets its
 * answer again — correct, but no verdict on the later message. So the n-th message with a key
 * goes to the n-th server of the pool (started on first use, each on its own data dir).
 */
export class ServerPool {
  private readonly servers: Promise<RunningServer>[] = [];
  private readonly seen = new Map<string, number>();
  /** UDP ports on loopback found held by another process during the run. */
  readonly busyPorts = new Set<number>();

  constructor(
    private readonly dataDir: string,
    private readonly listen: readonly string[],
  ) {}

  /** The server for the next message with this key (slot 0 for a message without one). */
  serverFor(m: RowMessage): Promise<RunningServer> {
    let slot = 0;
    if (m.transactionKey !== undefined) {
      slot = this.seen.get(m.transactionKey) ?? 0;
      this.seen.set(m.transactionKey, slot + 1);
    }
    return this.server(slot);
  }

  /** The server of `slot`, started on first use. */
  server(slot: number): Promise<RunningServer> {
    for (let i = this.servers.length; i <= slot; i++) {
      const dir = join(this.dataDir, `server-${i}`);
      mkdirSync(dir, { recursive: true });
      this.servers.push(startTracedServer({ dataDir: dir, listen: this.listen }));
    }
    return this.servers[slot]!;
  }

  /** The servers started so far. */
  async started(): Promise<RunningServer[]> {
    return (await Promise.allSettled(this.servers)).flatMap((r) =>
      r.status === 'fulfilled' ? [r.value] : [],
    );
  }

  async stop(): Promise<void> {
    await Promise.all((await this.started()).map((s) => stopServer(s).catch(() => undefined)));
  }
}

/**
 * One test per corpus row of `sets`, over `transport` to a server of `pool` on `host`: the
 * reaction must be one the index admits (net_udp / net_tcp), an answer must carry the
 * request's Call-ID (RFC 3261 §8.2.6.2), the index's header checks must hold, and an OPTIONS
 * afterwards must get 200. A reaction admitted only by a later alternative is reported as a
 * test diagnostic.
 */
export function tortureRows(
  transport: 'udp' | 'tcp',
  host: string,
  sets: readonly CorpusSet[],
  /** The servers, or why the rows are skipped. */
  pool: () => ServerPool | string,
): void {
  const T = transport.toUpperCase();
  for (const set of sets) {
    corpusTests(set, (rows) => {
      for (const row of rows) {
        const spec = transport === 'udp' ? row.netUdp : row.netTcp;
        it(`${set} ${row.name} (§${row.section}, ${row.expected}) over ${T} ${host}: net_${transport} ${spec}`, async (t) => {
          const p = pool();
          if (typeof p === 'string') {
            loudSkip(t, p);
            return;
          }
          const m = rowMessage(row);
          const s = await p.serverFor(m);
          const port = s.ports[transport];
          assert.ok(port !== undefined, `the server has no ${transport} listener`);
          const target = { server: s, host, port, busyPorts: p.busyPorts };
          const o = transport === 'udp' ? await runUdp(m, target) : await runTcp(m, target);
          const alt = admittedBy(spec, o);
          assert.ok(
            alt >= 0,
            `${describeOutcome(m, o)}\nthe index admits ${spec} (${row.reaction})`,
          );
          if (alt > 0) {
            const first = alternatives(spec)[0]!.join('|');
            t.diagnostic(
              `${row.name} over ${T}: ${o.status ?? 'no answer'} (admitted; the RFC prefers ${first})`,
            );
          }
          if (o.status !== undefined && m.callId !== undefined) {
            // RFC 3261 §8.2.6.2: "The Call-ID header field of the response MUST equal the
            // Call-ID header field of the request."
            assert.equal(
              o.response?.callId,
              m.callId,
              `the answer's Call-ID: ${describeOutcome(m, o)}`,
            );
          }
          assert.deepEqual(checkFailures(m, o, transport, s), [], describeOutcome(m, o));
          assert.equal(o.probe, 200, `OPTIONS after ${row.name}: ${describeOutcome(m, o)}`);
        });
      }
    });
  }
}
