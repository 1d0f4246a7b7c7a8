/**
 * Helpers for the presence tests with real phones (peers.test.ts): the NOTIFYs a watcher phone
 * received for one presentity, read from its SIP trace with their PIDF bodies, and a sipp
 * publisher that sets a user's presence with one PUBLISH and removes it again.
 *
 * - linphonec's trace is its log (`linphoneTrace`; over UDP one datagram is one message, which is
 *   why these tests use UDP), baresip's is its `-s` output (`sipTrace`); both keep the bodies;
 * - sipp runs uac-publish-state.xml (beside this file) for one initial publication of the
 *   document set with `-set`; the 200's SIP-ETag goes to a `<log>` file, read back here, and
 *   uac-unpublish.xml removes the publication with it (SIP-If-Match, Expires: 0). Both answer
 *   the server's 407 (MD5 only: sipp 3.6.1 answers nothing else).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pollUntil } from '../../support/tools.ts';
import { linphoneFriendStatuses, linphoneHeader } from '../../support/linphone.ts';
import type { Linphone, LinphoneSipMessage } from '../../support/linphone.ts';
import { traceHeader } from '../baresip/baresip.ts';
import type { TracedMessage } from '../baresip/baresip.ts';
import { LOOPBACK, describeRun, runSipp } from '../sipp/sipp.ts';
import type { SippResult } from '../sipp/sipp.ts';

const PUBLISH_STATE = fileURLToPath(new URL('./uac-publish-state.xml', import.meta.url));
const UNPUBLISH = fileURLToPath(new URL('./uac-unpublish.xml', import.meta.url));

/** A presence NOTIFY a watcher phone received, and what it answered. */
export interface SeenNotify {
  callId: string;
  cseq: number;
  /** `active;expires=597`, `terminated;reason=timeout`, ... */
  subscriptionState: string;
  contentType: string;
  body: string;
  /** The `<basic>` values of the PIDF body, in document order. */
  basics: string[];
  /** The `id`s of its `<tuple>`s, in document order. */
  tupleIds: string[];
  /** The status the phone answered it with (undefined: no answer in the trace yet). */
  answered: number | undefined;
}

/** The `<basic>` values of a PIDF document (RFC 3863 §4.1.4), in order. */
export function pidfBasics(body: string): string[] {
  return [...body.matchAll(/<basic>\s*(\w+)\s*<\/basic>/g)].map((m) => m[1]!);
}

/** The `id`s of the `<tuple>` elements of a PIDF document, in order. */
export function pidfTupleIds(body: string): string[] {
  return [...body.matchAll(/<tuple\b[^>]*?\sid="([^"]*)"/g)].map((m) => m[1]!);
}

/** Whether two lists hold the same values in the same order. */
export function same<T>(a: readonly T[], b: readonly T[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** Drops repeats that follow each other: [a, a, b, a] gives [a, b, a]. */
export function collapse<T>(values: readonly T[]): T[] {
  return values.filter((v, i) => i === 0 || v !== values[i - 1]);
}

interface Common {
  firstLine: string;
  body: string;
  header(name: string): string | undefined;
  received: boolean;
}

function notifiesIn(messages: readonly Common[], presentity: string): SeenNotify[] {
  const notifies: SeenNotify[] = [];
  for (const m of messages) {
    if (!m.received || !m.firstLine.startsWith('NOTIFY ')) continue;
    if (!/^presence\b/i.test(m.header('Event') ?? '')) continue;
    if (!(m.header('From') ?? '').includes(`<${presentity}>`)) continue;
    const callId = m.header('Call-ID') ?? '';
    const cseq = m.header('CSeq') ?? '';
    const answer = messages.find(
      (r) =>
        !r.received &&
        r.firstLine.startsWith('SIP/2.0 ') &&
        r.header('Call-ID') === callId &&
        r.header('CSeq') === cseq,
    );
    notifies.push({
      callId,
      cseq: Number.parseInt(cseq, 10),
      subscriptionState: m.header('Subscription-State') ?? '',
      contentType: m.header('Content-Type') ?? '',
      body: m.body,
      basics: pidfBasics(m.body),
      tupleIds: pidfTupleIds(m.body),
      answered: answer === undefined ? undefined : Number(answer.firstLine.slice(8, 11)),
    });
  }
  return notifies;
}

/** The presence NOTIFYs from `presentity` (From) in linphonec's trace, in order. */
export function linphoneNotifies(
  trace: readonly LinphoneSipMessage[],
  presentity: string,
): SeenNotify[] {
  return notifiesIn(
    trace.map((m) => ({
      firstLine: m.firstLine,
      body: m.body,
      header: (name: string) => linphoneHeader(m, name),
      received: m.direction === 'received',
    })),
    presentity,
  );
}

/**
 * The presence NOTIFYs from `presentity` (From) in baresip's `-s` trace, in order; `port` is
 * baresip's own SIP port (a message is received when it goes to that port).
 */
export function baresipNotifies(
  trace: readonly TracedMessage[],
  presentity: string,
  port: number,
): SeenNotify[] {
  return notifiesIn(
    trace.map((m) => ({
      firstLine: m.firstLine,
      body: m.body,
      header: (name: string) => traceHeader(m, name),
      received: m.to.endsWith(`:${port}`),
    })),
    presentity,
  );
}

/** One line per NOTIFY, for failure messages. */
export function describeNotifies(notifies: readonly SeenNotify[]): string {
  return notifies
    .map(
      (n) =>
        `NOTIFY CSeq ${n.cseq} | ${n.subscriptionState} | basics [${n.basics.join(', ')}] | tuples [${n.tupleIds.join(', ')}] | answered ${n.answered ?? '-'}`,
    )
    .join('\n');
}

/** What a linphonec watcher shows of `presentity`: the states it printed, the NOTIFYs behind them. */
export function linphoneView(
  l: Linphone,
  presentity: string,
): { statuses: string[]; notifies: SeenNotify[] } {
  return {
    statuses: linphoneFriendStatuses(l.output())
      .filter((s) => s.uri === presentity)
      .map((s) => s.status),
    notifies: linphoneNotifies(l.trace(), presentity),
  };
}

/**
 * Waits (at most `timeoutMs`) until linphonec has printed more than `seen` states for
 * `presentity`, the last one `status`, and answered 200 to a NOTIFY whose PIDF's last `<basic>`
 * is `basic`; returns that NOTIFY and the number of states printed. Fails naming `what`, with
 * the states printed, the NOTIFYs and `context()`.
 */
export async function linphoneSees(
  l: Linphone,
  presentity: string,
  expected: {
    seen: number;
    status: string;
    basic: 'open' | 'closed';
    /** The tuple ids of that NOTIFY's document (default: any). */
    tuples?: readonly string[];
  },
  what: string,
  timeoutMs: number,
  context: () => string,
): Promise<{ notify: SeenNotify; count: number }> {
  const ok = await pollUntil(() => {
    const v = linphoneView(l, presentity);
    const last = v.notifies.at(-1);
    return (
      v.statuses.length > expected.seen &&
      v.statuses.at(-1) === expected.status &&
      last?.answered === 200 &&
      last.basics.at(-1) === expected.basic &&
      (expected.tuples === undefined || same(last.tupleIds, expected.tuples))
    );
  }, timeoutMs);
  const v = linphoneView(l, presentity);
  assert.ok(
    ok,
    `${what}: the watcher should show ${presentity} ${expected.status} (basic ${expected.basic}` +
      `${expected.tuples !== undefined ? `, tuples [${expected.tuples.join(', ')}]` : ''}); ` +
      `it printed [${v.statuses.join(', ')}]\n${describeNotifies(v.notifies)}\n` +
      `--- the last NOTIFY's body ---\n${v.notifies.at(-1)?.body ?? '(none)'}\n${context()}`,
  );
  return { notify: v.notifies.at(-1)!, count: v.statuses.length };
}

/**
 * The NOTIFYs are of one dialog, in CSeq order, each answered 200, each `active` with an
 * application/pidf+xml document about `presentity`.
 */
export function assertOneActiveDialog(
  notifies: readonly SeenNotify[],
  presentity: string,
  context: () => string,
): void {
  const text = (): string => `${describeNotifies(notifies)}\n${context()}`;
  assert.ok(notifies.length > 0, `no NOTIFY\n${text()}`);
  assert.equal(new Set(notifies.map((n) => n.callId)).size, 1, `one dialog\n${text()}`);
  for (const [i, n] of notifies.entries()) {
    assert.equal(n.answered, 200, text());
    assert.match(n.subscriptionState, /^active;expires=\d+$/, text());
    assert.equal(n.contentType, 'application/pidf+xml', text());
    assert.match(n.body, new RegExp(`<presence\\b[^>]*\\sentity="${presentity}"`), text());
    if (i > 0) assert.ok(n.cseq > notifies[i - 1]!.cseq, `CSeq goes up\n${text()}`);
  }
}

export interface SippPublisherOptions {
  bin: string;
  /** The server's UDP port on 127.0.0.1. */
  port: number;
  user: string;
  domain: string;
  password: string;
}

/** The document uac-publish-state.xml publishes. */
export interface PublishedState {
  /** The tuple id. */
  tuple: string;
  basic: 'open' | 'closed';
  /** More children of `<presence>` (prefixes dm: and rpid: are declared), e.g. a person. */
  extra?: string;
}

export interface Publication {
  etag: string;
  run: SippResult;
}

/**
 * sipp PUBLISHes `state` as `user` (initial publication, Expires 120, 407 answered): resolves
 * with the SIP-ETag of the 200; rejects with sipp's report when the run did not succeed.
 */
export async function sippPublish(
  o: SippPublisherOptions,
  state: PublishedState,
  timeoutMs: number,
): Promise<Publication> {
  const dir = mkdtempSync(join(tmpdir(), 'sb-presence-publish-'));
  try {
    const logFile = join(dir, 'etag.log');
    const run = await runSipp({
      bin: o.bin,
      scenario: PUBLISH_STATE,
      transport: 'u1',
      target: `${LOOPBACK}:${o.port}`,
      service: o.user,
      calls: 1,
      timeoutMs,
      extraArgs: [
        ...authArgs(o),
        '-set',
        'tuple',
        state.tuple,
        '-set',
        'basic',
        state.basic,
        '-set',
        'extra',
        // sipp takes no empty value: a space adds nothing to the document.
        state.extra ?? ' ',
        '-trace_logs',
        '-log_file',
        logFile,
      ],
    });
    let log = '';
    try {
      log = readFileSync(logFile, 'utf8');
    } catch {
      // no 200, no log line
    }
    const etag = /SIP-ETag: ([0-9a-f]{32})/.exec(log)?.[1];
    if (run.exitCode !== 0 || etag === undefined) {
      throw new Error(`sipp PUBLISH of ${o.user}'s presence failed\n${describeRun(run)}`);
    }
    return { etag, run };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** sipp removes the publication `etag` of `user` (SIP-If-Match, Expires: 0; 407 answered). */
export async function sippUnpublish(
  o: SippPublisherOptions,
  etag: string,
  timeoutMs: number,
): Promise<SippResult> {
  const run = await runSipp({
    bin: o.bin,
    scenario: UNPUBLISH,
    transport: 'u1',
    target: `${LOOPBACK}:${o.port}`,
    service: o.user,
    calls: 1,
    timeoutMs,
    extraArgs: [...authArgs(o), '-set', 'etag', etag],
  });
  if (run.exitCode !== 0) {
    throw new Error(`sipp removal of ${o.user}'s publication failed\n${describeRun(run)}`);
  }
  return run;
}

function authArgs(o: SippPublisherOptions): string[] {
  return ['-au', o.user, '-ap', o.password, '-auth_uri', `${o.user}@${o.domain}`];
}
