/**
 * The RFC 4475 torture messages sent to a transport layer over real UDP (and a
 * few over TCP): what the transport layer itself must do with each — answer the
 * unparseable requests with the right status (mismatch01 → 400, badvers → 505,
 * ...), hand every parseable request to the transaction layer with its Via
 * stamped, and drop the responses (they are not answers to anything we sent).
 *
 * The corpus is read from `<repo>/../shared/conformance/rfc4475` (or
 * $SWITCHBOARD_CONFORMANCE_DIR); without it these tests skip loudly, and fail
 * under CI=true (test/conformance/corpus.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parseMessage } from '../../../src/sip/index.ts';
import {
  createTransportLayer,
  type SwitchboardTransportLayer,
} from '../../../src/transport/index.ts';
import {
  corpusTests,
  readBytes,
  udpStatusAllows,
  type CorpusRow,
} from '../../conformance/corpus.ts';
import { RawTcp, RawUdp, Recorder, sleep, statusOf } from './support.ts';

/** Requests the transport layer itself must answer, and with what (each agrees with index.tsv net_udp). */
const ANSWERED: Readonly<Record<string, number>> = {
  badinv01: 400,
  clerr: 400,
  ncl: 400,
  scalar02: 400,
  ltgtruri: 400,
  lwsruri: 400,
  lwsstart: 400,
  trws: 400,
  escruri: 400,
  baddn: 400,
  badvers: 505,
  mismatch01: 400,
  mismatch02: 400,
  insuf: 400,
  multi01: 400,
  mcl01: 400,
  quotbal: 400,
};

/**
 * Requests the transport layer cannot answer: none now. quotbal's bad To comes before
 * its Via, which is read from the raw lines for the 400 (inbound.ts withRawCriticals).
 */
const DROPPED_REQUESTS = new Set<string>([]);

let b: SwitchboardTransportLayer;
let rb: Recorder;
let raw: RawUdp;

before(async () => {
  b = await createTransportLayer({ id: 'torture', listen: ['udp:127.0.0.1:0', 'tcp:127.0.0.1:0'] });
  rb = new Recorder();
  b.setDelegate(rb);
  raw = await RawUdp.open();
});
after(async () => {
  await raw?.close();
  await b?.close();
});

async function waitFor(pred: () => boolean, ms: number, what: string): Promise<void> {
  const start = Date.now();
  while (!pred()) {
    if (Date.now() - start > ms) assert.fail(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

describe('RFC 4475 torture messages over UDP to a transport layer', () => {
  corpusTests('rfc4475', (rows: CorpusRow[]) => {
    for (const row of rows) {
      const expected =
        row.kind === 'response'
          ? 'dropped'
          : row.name in ANSWERED
            ? `answered ${ANSWERED[row.name]}`
            : DROPPED_REQUESTS.has(row.name)
              ? 'dropped (known divergence)'
              : 'delivered';
      it(`${row.name} (§${row.section}): ${expected}`, { timeout: 3000 }, async () => {
        const bytes = readBytes(row.file);
        const port = b.listeners[0]!.local.port;
        const answersBefore = raw.received.length;
        const requestsBefore = rb.requests.length;
        await raw.send(bytes, port);

        if (row.kind === 'request' && row.name in ANSWERED) {
          await raw.nth(answersBefore + 1, 2000);
          const reply = raw.received[answersBefore]!.bytes;
          const status = statusOf(reply.toString('latin1'));
          assert.equal(status, ANSWERED[row.name]);
          assert.ok(
            udpStatusAllows(row, status!),
            `index.tsv net_udp "${row.netUdp}" allows ${status}`,
          );
          // §8.2.6: Via (and From, To, Call-ID, CSeq as far as they were read) copied; they may
          // be the very fields at fault, so the answer need not parse, but its Via routes it.
          assert.match(reply.toString('latin1'), /^(Via|v)[ \t]*:/im, 'the Via is copied');
          const parsed = parseMessage(reply);
          if (parsed.ok && parsed.message.has('To'))
            assert.ok(parsed.message.to.tag, 'To tag added');
          assert.equal(rb.requests.length, requestsBefore, 'not delivered');
          return;
        }
        if (row.kind === 'request' && !DROPPED_REQUESTS.has(row.name)) {
          await waitFor(() => rb.requests.length > requestsBefore, 2000, 'delivery');
          const got = rb.requests[requestsBefore]!.message;
          // §18.2.1: the corpus's sent-by hosts are never 127.0.0.1, so received is always added.
          assert.equal(got.topVia.received, '127.0.0.1');
          await sleep(5);
          assert.equal(
            raw.received.length,
            answersBefore,
            'the transport layer does not answer it',
          );
          if (row.name === 'dblreq')
            assert.equal(rb.requests.length, requestsBefore + 1, 'trailing octets ignored');
          return;
        }
        // Responses (and quotbal): neither delivered nor answered.
        await sleep(30);
        assert.equal(rb.requests.length, requestsBefore);
        assert.equal(rb.responses.length, 0, 'no response reaches the transaction layer');
        assert.equal(raw.received.length, answersBefore);
      });
    }
  });
});

describe('RFC 4475 messages whose framing breaks a stream, over TCP', () => {
  corpusTests('rfc4475', (rows: CorpusRow[]) => {
    const byName = new Map(rows.map((r) => [r.name, r]));
    const cases: [string, number, 'closed' | 'open'][] = [
      ['ncl', 400, 'closed'], // negative Content-Length: "4xx|close"
      ['mcl01', 400, 'closed'], // two Content-Length values
      ['badvers', 505, 'open'], // well framed: the connection stays usable
      ['mismatch01', 400, 'open'],
    ];
    for (const [name, status, after] of cases) {
      it(`${name} over TCP: ${status}, connection ${after}`, { timeout: 3000 }, async () => {
        const row = byName.get(name);
        assert.ok(row, `${name} is in the corpus`);
        const conn = await RawTcp.open(b.listeners[1]!.local.port);
        try {
          conn.write(readBytes(row.file));
          await conn.until((c) => statusOf(c.text) !== undefined, 2000, 'an answer');
          assert.equal(statusOf(conn.text), status);
          if (after === 'closed') await conn.until((c) => c.ended, 2000, 'close');
          else {
            await sleep(30);
            assert.equal(conn.ended, false);
          }
        } finally {
          conn.destroy();
        }
      });
    }
  });
});
