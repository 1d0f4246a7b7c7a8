/**
 * Parser suite: a mix of realistic messages (bench/fixtures/*.sip) is parsed, its
 * routing fields are read (top Via branch and sent-by, From/To tags, Call-ID,
 * CSeq, Route list, Max-Forwards) and it is serialized again, by Switchboard and,
 * in the same process and the same rounds, by the npm packages sip, sip.js and
 * jssip. Before anything is timed, every parser's fields are compared with
 * Switchboard's and its serialized output is parsed back; a message that any
 * parser rejects or gets wrong is left out of the mix for all and listed.
 *
 * Ends with the machine-readable lines `parse_msgs_per_s=N` (Switchboard, bytes
 * in, unchanged message) and `parse_ratio_vs_fastest_peer=X.Y`.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseMessage } from '../../../src/sip/index.ts';
import {
  cpuClock,
  measureAllocation,
  measureThroughput,
  type Allocation,
  type Case,
  type Throughput,
  type ThroughputOptions,
} from '../../lib/measure.ts';
import type { Suite, SuiteOptions } from '../../lib/suite.ts';
import {
  loadSubjects,
  readSwitchboard,
  weigh,
  type Fixture,
  type RoutingFields,
  type Subject,
} from './parsers.ts';

interface Config {
  readonly mix: Omit<ThroughputOptions, 'deadline'>;
  /** Per-message breakdown; skipped in --quick. */
  readonly perMessage: Omit<ThroughputOptions, 'deadline'> | undefined;
  /** Target duration of one allocation batch, and batches per parser. */
  readonly allocMs: number;
  readonly allocBatches: number;
  /** Hard bound on the timed part: rounds past it are skipped. */
  readonly budgetMs: number;
}

const FULL: Config = {
  mix: { warmupMs: 500, rounds: 10, roundMs: 250 },
  perMessage: { warmupMs: 100, rounds: 5, roundMs: 80 },
  allocMs: 100,
  allocBatches: 3,
  budgetMs: 50_000,
};

const QUICK: Config = {
  mix: { warmupMs: 150, rounds: 5, roundMs: 100 },
  perMessage: undefined,
  allocMs: 30,
  allocBatches: 1,
  budgetMs: 10_000,
};

const HEADLINE = 'switchboard';

// ---- fixtures -----------------------------------------------------------------

/**
 * Loads bench/fixtures/*.sip (sorted by name) and checks what the benchmark relies
 * on: CRLF line ends in the header section and an exact Content-Length.
 */
export function loadFixtures(dir: string): Fixture[] {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.sip'))
    .sort();
  if (files.length === 0) throw new Error(`no .sip fixtures in ${dir}`);
  return files.map((file) => {
    const bytes = new Uint8Array(readFileSync(join(dir, file)));
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    const headEnd = text.indexOf('\r\n\r\n');
    if (headEnd < 0) throw new Error(`${file}: no CRLF CRLF after the header section`);
    const head = text.slice(0, headEnd + 2);
    if (/(^|[^\r])\n/.test(head)) throw new Error(`${file}: a header line ends in LF, not CRLF`);
    const cl = /\r\n(?:Content-Length|l)[ \t]*:[ \t]*(\d+)\r\n/i.exec(head);
    const bodyLength = bytes.length - Buffer.byteLength(text.slice(0, headEnd + 4));
    if (cl === null || Number(cl[1]) !== bodyLength) {
      throw new Error(
        `${file}: Content-Length ${cl?.[1] ?? '(none)'} but the body is ${bodyLength} bytes`,
      );
    }
    return { name: file.replace(/\.sip$/, ''), bytes, text };
  });
}

// ---- verification ---------------------------------------------------------------

type Verdict =
  { readonly ok: true } | { readonly ok: false; readonly label: string; readonly detail: string };

const OK: Verdict = { ok: true };

function diffFields(got: RoutingFields, want: RoutingFields): string[] {
  const out: string[] = [];
  for (const key of Object.keys(want) as (keyof RoutingFields)[]) {
    const g = JSON.stringify(got[key]);
    const w = JSON.stringify(want[key]);
    if (g !== w) out.push(`${key}: got ${g ?? 'undefined'}, want ${w ?? 'undefined'}`);
  }
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Runs one subject's parse/read/serialize on one fixture, as the timed loop does,
 * and checks the fields against Switchboard's and the serialized output by
 * parsing it back with Switchboard (fields as expected, body unchanged).
 */
function verify(s: Subject, f: Fixture): Verdict {
  const ref = parseMessage(f.bytes);
  if (!ref.ok) return { ok: false, label: 'reference', detail: 'Switchboard rejects it' };
  const want = readSwitchboard(ref.message);
  let m: unknown;
  try {
    m = s.parse(s.input(f));
  } catch (e) {
    return { ok: false, label: 'threw', detail: `parse threw ${String(e)}` };
  }
  if (m === undefined) return { ok: false, label: 'rejected', detail: s.rejection() };
  let out: string | Uint8Array;
  try {
    const diffs = diffFields(s.read(m), want);
    if (diffs.length > 0) return { ok: false, label: 'wrong fields', detail: diffs.join('; ') };
    out = s.serialize(m);
  } catch (e) {
    return { ok: false, label: 'threw', detail: `read/serialize threw ${String(e)}` };
  }
  const back = parseMessage(out);
  if (!back.ok) {
    return { ok: false, label: 'bad output', detail: `re-parse: ${back.error.code}` };
  }
  const expected = s.expectAfterSerialize?.(want, ref.message) ?? want;
  const diffs = diffFields(readSwitchboard(back.message), expected);
  if (diffs.length > 0) {
    return { ok: false, label: 'bad output', detail: `after re-parse: ${diffs.join('; ')}` };
  }
  if (!sameBytes(back.message.body, ref.message.body)) {
    return { ok: false, label: 'bad output', detail: 'body changed by serialization' };
  }
  return OK;
}

// ---- timed cases ----------------------------------------------------------------

/** One call = every message of `mix` through parse, read fields, serialize. */
function makeCase(s: Subject, mix: readonly Fixture[]): Case {
  const inputs = mix.map((f) => s.input(f));
  return {
    name: s.name,
    ops: inputs.length,
    run: () => {
      let acc = 0;
      for (let i = 0; i < inputs.length; i++) {
        const m = s.parse(inputs[i]);
        if (m === undefined) throw new Error(`${s.name} rejected a message it parsed before`);
        acc += weigh(s.read(m));
        acc += s.serialize(m).length;
      }
      return acc;
    },
  };
}

// ---- report ---------------------------------------------------------------------

/** A warning when other processes compete for the CPUs (the numbers are then noisier). */
function busy(load: number, ncpu: number): string {
  return load > ncpu * 0.75
    ? ` (WARNING: other processes are busy on ${ncpu} CPU(s); expect noisy numbers)`
    : '';
}

const fmtInt = (n: number): string => Math.round(n).toLocaleString('en-US');
const pad = (s: string, n: number): string => s.padEnd(n);
const lpad = (s: string, n: number): string => s.padStart(n);

function printThroughput(
  rows: readonly Throughput[],
  alloc: ReadonlyMap<string, Allocation>,
  width: number,
): void {
  console.log(
    `  ${pad('parser', width)} ${lpad('msgs/s', 9)} ${lpad('(slowest..fastest round)', 25)}` +
      ` ${lpad('us/msg', 8)} ${lpad('wall msgs/s', 11)} ${lpad('heap B/msg', 10)}` +
      ` ${lpad('+ArrayBuffer B/msg', 18)}`,
  );
  for (const r of rows) {
    const a = alloc.get(r.name);
    const ab = a?.arrayBufferPerOp;
    console.log(
      `  ${pad(r.name, width)} ${lpad(fmtInt(r.opsPerSec), 9)} ` +
        `${lpad(`(${fmtInt(r.min)}..${fmtInt(r.max)})`, 25)} ${lpad((1e6 / r.opsPerSec).toFixed(2), 8)}` +
        ` ${lpad(fmtInt(r.wallOpsPerSec), 11)}` +
        ` ${lpad(a === undefined ? 'n/a' : fmtInt(a.heapPerOp), 10)}` +
        ` ${lpad(ab === undefined ? 'n/a' : fmtInt(ab), 18)}`,
    );
  }
}

async function run(opts: SuiteOptions): Promise<void> {
  const cfg = opts.quick ? QUICK : FULL;
  const started = Date.now();
  const deadline = started + cfg.budgetMs;
  const fixtures = loadFixtures(join(opts.benchDir, 'fixtures'));
  const subjects = await loadSubjects(opts.benchDir);
  const peers = subjects.filter((s) => !s.own);
  const width = Math.max(...subjects.map((s) => s.name.length));
  const cpu = cpus();

  console.log(`# suite parser${opts.quick ? ' (--quick)' : ''}`);
  console.log(
    `node ${process.version} ${process.platform}/${process.arch}, ` +
      `${cpu.length} CPU(s): ${cpu[0]?.model.trim() ?? 'unknown'}; ` +
      `gc(): ${opts.gc === undefined ? 'NOT available (allocation figures noisier)' : 'available'}`,
  );
  const loadBefore = loadavg()[0]!;
  console.log(
    `load average (1 min) before: ${loadBefore.toFixed(2)}${busy(loadBefore, cpu.length)}`,
  );
  console.log('\nparsers:');
  for (const s of subjects) {
    console.log(`  ${pad(s.name, width)} ${s.entry}`);
    console.log(`  ${pad('', width)}   serialize: ${s.serializer}`);
  }
  console.log('\nfixtures (bench/fixtures):');
  for (const f of fixtures) console.log(`  ${f.name}.sip  ${f.bytes.length} bytes`);

  // ---- verification ----
  const fw = Math.max(...fixtures.map((f) => f.name.length), 8);
  console.log(
    '\nverification (fields vs Switchboard; serialized output parsed back by Switchboard):',
  );
  console.log(`  ${pad('', width)} ${fixtures.map((f) => pad(f.name, fw)).join(' ')}`.trimEnd());
  const problems: string[] = [];
  const excluded = new Set<string>();
  for (const s of subjects) {
    const cells: string[] = [];
    for (const f of fixtures) {
      const v = verify(s, f);
      cells.push(pad(v.ok ? 'ok' : v.label.toUpperCase(), fw));
      if (!v.ok) {
        excluded.add(f.name);
        problems.push(`  ${f.name}: ${s.name} ${v.label}: ${v.detail}`);
      }
    }
    console.log(`  ${pad(s.name, width)} ${cells.join(' ')}`.trimEnd());
  }
  const mix = fixtures.filter((f) => !excluded.has(f.name));
  if (problems.length > 0) {
    console.log('left out of the mix for every parser:');
    for (const p of problems) console.log(p);
  } else console.log('left out of the mix: none (every parser parses every message)');
  if (mix.length === 0) throw new Error('no fixture is parsed correctly by every parser');

  // ---- timed: the mix, then each message alone, then allocation (it forces GCs) ----
  const cases = subjects.map((s) => makeCase(s, mix));
  const c = cfg.mix;
  const tp = measureThroughput(cases, { ...c, deadline });

  const perMessage = new Map<string, Map<string, number>>();
  const p = cfg.perMessage;
  if (p !== undefined) {
    for (const f of mix) {
      if (Date.now() > deadline) break;
      const rows = measureThroughput(
        subjects.map((s) => makeCase(s, [f])),
        { ...p, deadline },
      );
      for (const r of rows) {
        const m = perMessage.get(r.name) ?? new Map<string, number>();
        m.set(f.name, r.opsPerSec);
        perMessage.set(r.name, m);
      }
    }
  }

  const alloc = new Map<string, Allocation>();
  for (let i = 0; i < cases.length; i++) {
    const k = cases[i]!;
    const calls = Math.max(
      1,
      Math.min(20_000, Math.round(((cfg.allocMs / 1000) * tp[i]!.opsPerSec) / k.ops)),
    );
    alloc.set(k.name, await measureAllocation(k, calls, cfg.allocBatches, opts.gc));
  }

  console.log(
    `\nthroughput on the mix (${mix.length} messages: ${mix.map((f) => f.name).join(', ')}):`,
  );
  console.log(
    '  one msg = parse + read routing fields + serialize. msgs/s and us/msg: per second of ' +
      `${cpuClock.label}, so other processes on the machine do not count; median of ` +
      `${c.rounds} rounds of ~${c.roundMs} ms per parser, parsers interleaved, after ` +
      `${c.warmupMs} ms warm-up each. wall msgs/s: the same per wall-clock second.`,
  );
  if (tp.some((t) => t.rounds < c.rounds)) {
    console.log(`  WARNING: time budget reached, only ${tp[0]!.rounds} rounds ran`);
  }
  printThroughput(tp, alloc, width);
  console.log(
    `  heap B/msg: V8 heap bytes allocated per message, median of ${cfg.allocBatches} batch(es) ` +
      `of ~${cfg.allocMs} ms = used_heap_size delta + bytes freed by each GC during the batch ` +
      '(v8.GCProfiler).',
  );
  console.log(
    '  +ArrayBuffer B/msg: backing stores off the V8 heap (new Uint8Array bytes): ' +
      'process.memoryUsage().arrayBuffers delta over a short batch during which no GC ran.',
  );

  if (p === undefined) console.log('\nper message: skipped in --quick');
  else {
    console.log(
      `\nper message (msgs/s of CPU time; median of ${p.rounds} rounds of ~${p.roundMs} ms after ` +
        `${p.warmupMs} ms warm-up):`,
    );
    console.log(`  ${pad('', width)} ${mix.map((f) => lpad(f.name, fw)).join(' ')}`);
    for (const s of subjects) {
      const m = perMessage.get(s.name);
      const cells = mix.map((f) => {
        const v = m?.get(f.name);
        return lpad(v === undefined ? 'skipped' : fmtInt(v), fw);
      });
      console.log(`  ${pad(s.name, width)} ${cells.join(' ')}`);
    }
  }

  // ---- ratios ----
  const byName = new Map(tp.map((t) => [t.name, t]));
  const own = subjects.filter((s) => s.own);
  console.log('\nratio Switchboard msgs/s / peer msgs/s on the mix (>1: Switchboard faster):');
  console.log(`  ${pad('', width)} ${peers.map((p) => lpad(`vs ${p.name}`, 10)).join(' ')}`);
  for (const o of own) {
    const mine = byName.get(o.name)!.opsPerSec;
    const cells = peers.map((p) =>
      lpad(`${(mine / byName.get(p.name)!.opsPerSec).toFixed(2)}x`, 10),
    );
    console.log(`  ${pad(o.name, width)} ${cells.join(' ')}`);
  }

  console.log('\nnotes:');
  for (const line of [...NOTES, clockNote()]) console.log(`  - ${line}`);

  const headline = byName.get(HEADLINE)!;
  const fastest = peers
    .map((p) => byName.get(p.name)!)
    .reduce((a, b) => (b.opsPerSec > a.opsPerSec ? b : a));
  const loadAfter = loadavg()[0]!;
  console.log(
    `\nheadline: ${HEADLINE} (bytes in, unchanged message) vs fastest peer ${fastest.name} ` +
      '(every peer parsed, read and serialized; sip.js/jssip serialize = toString() of the ' +
      'received text)' +
      `; suite took ${((Date.now() - started) / 1000).toFixed(1)} s; load average (1 min) ` +
      `after: ${loadAfter.toFixed(2)}${busy(loadAfter, cpu.length)}`,
  );
  console.log(`parse_msgs_per_s=${Math.round(headline.opsPerSec)}`);
  console.log(`parse_ratio_vs_fastest_peer=${(headline.opsPerSec / fastest.opsPerSec).toFixed(1)}`);
}

const NOTES: readonly string[] = [
  'Work differs by design. Switchboard splits every header line and decodes the critical ' +
    'headers eagerly (every Via value, From, To, Call-ID, CSeq, Max-Forwards, Content-Length, ' +
    'the Request-URI); other headers (here Route) are decoded only when read, and Contact, ' +
    'Record-Route, Authorization are never decoded in this benchmark.',
  'sip.js and jssip (same JsSIP-derived parser) run a PEG grammar eagerly on the first Via only ' +
    '(further Via values stay raw), From, To, Call-ID, CSeq, Contact, Record-Route, Content-Type, ' +
    'Content-Length, Max-Forwards (jssip also Event, Session-Expires); they do not parse Route, ' +
    "so the read step parses each Route value with their grammar's Record_Route rule (same ABNF).",
  'sip (kirm) parses with regular expressions, eagerly: every Via, From, To, Contact, Route, ' +
    'Record-Route, CSeq, Authorization. It silently drops a header whose parse throws, hence ' +
    'the field check above.',
  "Serialization differs: sip.js/jssip toString() return the received text, like Switchboard's " +
    'unchanged path returns the received bytes; only sip.stringify() and "switchboard ' +
    '(modified)" build the text again, so compare those two for a real re-serialization.',
  "Peers get a string (their API's input) and return a string; the bytes<->string conversion " +
    'a transport would need is not timed for them. "switchboard (string input)" shows ' +
    'Switchboard on the same string input.',
];

function clockNote(): string {
  const cross =
    'On a shared machine compare ratios from one run, not absolute numbers across runs.';
  return cpuClock.kind === 'thread'
    ? 'msgs/s counts CPU time of the main thread only; work V8 moves to helper threads ' +
        '(concurrent marking, parallel scavenges, JIT) is left out, which flatters parsers that ' +
        'allocate much: heap B/msg shows that cost, and wall msgs/s includes it (and other ' +
        `processes). ${cross}`
    : "msgs/s counts CPU time of the whole process: GC work that one parser's garbage causes " +
        `on helper threads can be charged to the parser measured next. ${cross}`;
}

export const suite: Suite = {
  name: 'parser',
  description: 'parse + read routing fields + serialize: Switchboard vs sip, sip.js, jssip',
  run,
};
