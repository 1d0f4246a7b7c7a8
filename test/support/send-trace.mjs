/**
 * Preload for a `switchboard serve` child in tests: `NODE_OPTIONS=--import <this file's URL>`
 * (see sendTraceEnv in test/integration/server-live/support.ts). It subscribes to the transport
 * layer's diagnostics channels (src/transport/diagnostics.ts) and writes one line per event to
 * stderr, prefixed `sb-send-trace `, with a JSON object:
 *
 *   {"event":"send","protocol":"udp","address":"127.0.0.1","port":5060,"status":400,"callId":...}
 *   {"event":"connect","protocol":"tcp","address":...}        an outbound connection opened
 *   {"event":"send-failed"|"connect-failed","address":...}    an attempt that failed
 *
 * so that a test sees where the server sent what, and can assert that nothing left loopback.
 * SWITCHBOARD_TEST_SEND_TRACE=off-loopback writes only the events whose address is not a
 * loopback address (for long runs such as fuzzing); anything else writes every event.
 *
 * Plain JavaScript (no tsx needed before it is loaded); writes to stderr are synchronous on
 * a pipe (Linux), so a line is written before the server does anything else.
 */
import diagnosticsChannel from 'node:diagnostics_channel';

const PREFIX = 'sb-send-trace ';
const onlyOffLoopback = process.env.SWITCHBOARD_TEST_SEND_TRACE === 'off-loopback';

/** 127.0.0.0/8, ::1, and IPv4-mapped 127/8 (::ffff:127.x.y.z). */
export function isLoopback(address) {
  if (typeof address !== 'string') return false;
  const a = address.toLowerCase().replace(/^\[|\]$/g, '');
  if (a === '::1' || a === '0:0:0:0:0:0:0:1') return true;
  const v4 = a.startsWith('::ffff:') ? a.slice(7) : a;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

function write(record) {
  if (onlyOffLoopback && isLoopback(record.address)) return;
  try {
    process.stderr.write(`${PREFIX}${JSON.stringify(record)}\n`);
  } catch {
    // stderr gone (the test ended): nothing to report to
  }
}

diagnosticsChannel.subscribe('switchboard:transport:send', (e) => {
  write({
    event: 'send',
    protocol: e.protocol,
    address: e.remote?.address,
    port: e.remote?.port,
    kind: e.kind,
    method: e.method,
    status: e.status,
    callId: e.callId,
    cseq: e.cseq,
    branch: e.branch,
  });
});

diagnosticsChannel.subscribe('switchboard:transport:connection', (e) => {
  if (e.event !== 'open' || e.direction !== 'outbound') return;
  write({
    event: 'connect',
    protocol: e.protocol,
    address: e.remote?.address,
    port: e.remote?.port,
  });
});

diagnosticsChannel.subscribe('switchboard:transport:error', (e) => {
  if ((e.type !== 'send' && e.type !== 'connect') || e.remote === undefined) return;
  write({
    event: `${e.type}-failed`,
    protocol: e.protocol,
    address: e.remote.address,
    port: e.remote.port,
    code: e.code,
    detail: e.detail,
  });
});
