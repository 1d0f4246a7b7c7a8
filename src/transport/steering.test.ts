import assert from 'node:assert/strict';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import diagnosticsChannel from 'node:diagnostics_channel';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../base/index.ts';
import { createRequest, createResponse, parseMessage, type SipRequest } from '../sip/index.ts';
import { TRANSPORT_CHANNELS } from './diagnostics.ts';
import { createTransportLayer, type SwitchboardTransportLayer } from './layer.ts';
import { PeerMesh } from './peer-mesh.ts';
import { fnv1a, ownedCallIds, ownerOfCallId } from './steering.ts';
import type { InboundRequest } from './transport.ts';

describe('ownerOfCallId', () => {
  it('is FNV-1a mod workers, the same for the same Call-ID, 0 for one worker', () => {
    assert.equal(fnv1a(''), 0x811c9dc5);
    assert.equal(fnv1a('a'), 0xe40c292c); // the FNV-1a 32 test vector for "a"
    assert.equal(ownerOfCallId('abc@host', 1), 0);
    assert.equal(ownerOfCallId('abc@host', 2), ownerOfCallId('abc@host', 2));
  });
  it('spreads Call-IDs over the workers', () => {
    const counts = [0, 0];
    for (let i = 0; i < 2000; i++) counts[ownerOfCallId(`${i}-call@10.0.0.1`, 2)]! += 1;
    assert.ok(counts[0]! > 800 && counts[1]! > 800, `counts ${counts.join('/')}`);
  });
});

/** A Call-ID owned by worker `owner` of 2. */
function callIdOwnedBy(owner: number, salt: string): string {
  for (let i = 0; ; i++) {
    const id = `${salt}-${i}@127.0.0.1`;
    if (ownerOfCallId(id, 2) === owner) return id;
  }
}

function options(callId: string, via: string): string {
  return [
    'OPTIONS sip:server@127.0.0.1 SIP/2.0',
    `Via: ${via};branch=z9hG4bK${callId.slice(0, 12).replace(/[^a-z0-9]/gi, '')}`,
    'Max-Forwards: 70',
    'From: <sip:a@127.0.0.1>;tag=1',
    'To: <sip:server@127.0.0.1>',
    `Call-ID: ${callId}`,
    'CSeq: 1 OPTIONS',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

/** A UDP client on loopback, and the datagrams it receives as text. */
async function udpClient(): Promise<{ client: UdpSocket; replies: string[] }> {
  const client: UdpSocket = createSocket('udp4');
  const replies: string[] = [];
  client.on('message', (b) => replies.push(b.toString()));
  await new Promise<void>((r) => client.bind(0, '127.0.0.1', r));
  return { client, replies };
}

function waitFor<T>(list: T[], n: number, ms = 3000): Promise<T[]> {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const poll = (): void => {
      if (list.length >= n) resolve(list);
      else if (Date.now() - start > ms)
        reject(new Error(`waited ${ms} ms for ${n}, got ${list.length}`));
      else setTimeout(poll, 5);
    };
    poll();
  });
}

describe('a transport layer per worker, steered by Call-ID (two workers in one process)', () => {
  let dir: string;
  const meshes: PeerMesh[] = [];
  const layers: SwitchboardTransportLayer[] = [];
  const got: InboundRequest[][] = [[], []];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-steer-'));
    for (let i = 0; i < 2; i++) {
      meshes.push(await PeerMesh.start({ self: i, workers: 2, dir, logger: silentLogger }));
    }
    for (let i = 0; i < 2; i++) {
      const layer = await createTransportLayer({
        id: `w${i}`,
        // In a real cluster the workers share these sockets; here each binds its own, under
        // the same listener ids.
        listen: [
          { listen: 'udp:127.0.0.1:0', id: 'udp' },
          { listen: 'tcp:127.0.0.1:0', id: 'tcp' },
        ],
        logger: silentLogger,
        steering: meshes[i]!,
      });
      layer.setDelegate({
        onRequest: (r) => got[i]!.push(r),
        onResponse: () => {},
      });
      layers.push(layer);
    }
  });

  after(async () => {
    for (const l of layers) await l.close();
    for (const m of meshes) await m.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('hands a datagram to the worker that owns its Call-ID, which answers it', async () => {
    const udp0 = layers[0]!.listeners.find((l) => l.protocol === 'udp')!;
    const { client, replies } = await udpClient();
    try {
      const port = client.address().port;
      const mine = callIdOwnedBy(0, 'u');
      const theirs = callIdOwnedBy(1, 'u');
      client.send(options(theirs, `SIP/2.0/UDP 127.0.0.1:${port}`), udp0.local.port, '127.0.0.1');
      client.send(options(mine, `SIP/2.0/UDP 127.0.0.1:${port}`), udp0.local.port, '127.0.0.1');
      await waitFor(got[1]!, 1);
      await waitFor(got[0]!, 1);
      const at1 = got[1]!.shift()!;
      const at0 = got[0]!.shift()!;
      assert.equal(at1.message.callId, theirs);
      assert.equal(at0.message.callId, mine);
      // The owner sees the message as read by the shared listener, from the client.
      assert.equal(at1.source.listener.id, 'udp');
      assert.equal(at1.source.port, port);
      assert.equal(at1.message.topVia.received ?? '127.0.0.1', '127.0.0.1');
      await layers[1]!.sendResponse(createResponse(at1.message, 200), at1.source);
      await waitFor(replies, 1);
      assert.match(replies[0]!, /^SIP\/2\.0 200 /);
      assert.ok(replies[0]!.includes(theirs));
    } finally {
      client.close();
    }
  });

  it('hands a datagram over unparsed: the owner answers a malformed one with 400', async () => {
    const udp0 = layers[0]!.listeners.find((l) => l.protocol === 'udp')!;
    const { client, replies } = await udpClient();
    const before = meshes[1]!.dropped;
    // The parse error is reported by the layer that parsed: the owner's (w1), not the reader's.
    const errors: string[] = [];
    const onError = (e: unknown): void => {
      const ev = e as { layer: string; type: string };
      if (ev.type === 'parse') errors.push(ev.layer);
    };
    diagnosticsChannel.subscribe(TRANSPORT_CHANNELS.error, onError);
    try {
      const port = client.address().port;
      const theirs = callIdOwnedBy(1, 'bad');
      // A CSeq without a method: the Call-ID is plain, the message is not (RFC 3261 §8.2.6).
      const bad = options(theirs, `SIP/2.0/UDP 127.0.0.1:${port}`).replace(
        'CSeq: 1 OPTIONS',
        'CSeq: 1',
      );
      client.send(bad, udp0.local.port, '127.0.0.1');
      await waitFor(replies, 1);
      assert.match(replies[0]!, /^SIP\/2\.0 400 /);
      assert.ok(replies[0]!.includes(theirs));
      assert.equal(got[0]!.length + got[1]!.length, 0);
      assert.equal(meshes[1]!.dropped, before);
      assert.deepEqual(errors, ['w1']);
    } finally {
      diagnosticsChannel.unsubscribe(TRANSPORT_CHANNELS.error, onError);
      client.close();
    }
  });

  it('a peer connection sending a malformed frame header is closed; the mesh goes on', async () => {
    const raw = connect(join(dir, 'w1.sock'));
    await new Promise<void>((r) => raw.once('connect', () => r()));
    const closed = new Promise<void>((r) => raw.once('close', () => r()));
    // A MESSAGE frame (type 1) whose header claims a 40-octet string in 6 octets.
    const header = Buffer.from([0, 0, 0x13, 0xc4, 0, 40]);
    const frame = Buffer.alloc(4 + 1 + 2 + header.length + 3);
    frame.writeUInt32BE(1 + 2 + header.length + 3, 0);
    frame[4] = 1;
    frame.writeUInt16BE(header.length, 5);
    header.copy(frame, 7);
    frame.write('abc', 7 + header.length);
    raw.write(frame);
    await closed;
    // Worker 0's own link to worker 1 still carries messages.
    const udp0 = layers[0]!.listeners.find((l) => l.protocol === 'udp')!;
    const { client } = await udpClient();
    try {
      const theirs = callIdOwnedBy(1, 'after');
      const port = client.address().port;
      client.send(options(theirs, `SIP/2.0/UDP 127.0.0.1:${port}`), udp0.local.port, '127.0.0.1');
      await waitFor(got[1]!, 1);
      assert.equal(got[1]!.shift()!.message.callId, theirs);
    } finally {
      client.close();
    }
  });

  it('over TCP: the owner answers on the reading worker’s connection, and reaches the flow', async () => {
    const tcp0 = layers[0]!.listeners.find((l) => l.protocol === 'tcp')!;
    const socket: Socket = connect(tcp0.local.port, '127.0.0.1');
    await new Promise<void>((r) => socket.once('connect', () => r()));
    let text = '';
    socket.on('data', (b) => (text += b.toString()));
    try {
      const theirs = callIdOwnedBy(1, 't');
      const port = socket.localPort!;
      socket.write(options(theirs, `SIP/2.0/TCP 127.0.0.1:${port}`));
      await waitFor(got[1]!, 1);
      const req = got[1]!.shift()!;
      assert.equal(req.message.callId, theirs);
      assert.match(req.source.connectionId ?? '', /^w0\//);
      await layers[1]!.sendResponse(createResponse(req.message, 200), req.source);
      const start = Date.now();
      while (!text.includes('SIP/2.0 200') && Date.now() - start < 3000) {
        await new Promise((r) => setTimeout(r, 5));
      }
      assert.match(text, /^SIP\/2\.0 200 /);

      // A request worker 1 sends to the client's endpoint (a registered flow, RFC 5626 §5.3)
      // goes over worker 0's connection: worker 1 has none of its own.
      const out: SipRequest = createRequest({
        method: 'MESSAGE',
        uri: `sip:a@127.0.0.1:${port};transport=tcp`,
        from: '<sip:server@127.0.0.1>;tag=9',
        to: '<sip:a@127.0.0.1>',
        callId: callIdOwnedBy(1, 'm'),
        cseq: 1,
        via: [`SIP/2.0/TCP 127.0.0.1:${tcp0.local.port};branch=z9hG4bKsteer1`],
        body: 'hello',
        contentType: 'text/plain',
      });
      await layers[1]!.sendRequest(out, { protocol: 'tcp', address: '127.0.0.1', port });
      while (!text.includes('MESSAGE sip:') && Date.now() - start < 3000) {
        await new Promise((r) => setTimeout(r, 5));
      }
      const at = text.indexOf('MESSAGE sip:');
      assert.ok(at >= 0, 'the MESSAGE arrived on the client connection');
      const parsed = parseMessage(new TextEncoder().encode(text.slice(at)), { framing: 'stream' });
      assert.ok(parsed.ok);
      assert.equal(layers[1]!.connections().length, 0, 'worker 1 opened no connection');
    } finally {
      socket.destroy();
    }
  });
});

describe('PeerMesh', () => {
  it('frames sent in one turn arrive all, in order, messages and connection writes alike', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-mesh-'));
    const a = await PeerMesh.start({ self: 0, workers: 2, dir, logger: silentLogger });
    const b = await PeerMesh.start({ self: 1, workers: 2, dir, logger: silentLogger });
    const seen: string[] = [];
    const handler = {
      message: (m: { bytes: Uint8Array; port: number }) =>
        seen.push(`m${m.port}:${Buffer.from(m.bytes).toString()}`),
      write: (id: string, bytes: Uint8Array) =>
        seen.push(`w${id}:${Buffer.from(bytes).toString()}`),
      announced: () => {},
      peerDown: () => {},
    };
    a.attach(handler);
    b.attach(handler);
    try {
      const message = (i: number) => ({
        framing: 'datagram' as const,
        bytes: new TextEncoder().encode(`msg ${i}`),
        protocol: 'udp' as const,
        address: '127.0.0.1',
        port: 1000 + i,
        listenerId: 'udp',
      });
      // The first frame connects; the rest of this turn and the next go out once connected.
      a.forward(1, message(0));
      await new Promise((r) => setTimeout(r, 50));
      const want: string[] = ['m1000:msg 0'];
      for (let i = 1; i <= 40; i++) {
        if (i % 10 === 0) {
          a.write(1, `c${i}`, new TextEncoder().encode(`bytes ${i}`));
          want.push(`wc${i}:bytes ${i}`);
        } else {
          a.forward(1, message(i));
          want.push(`m${1000 + i}:msg ${i}`);
        }
      }
      await new Promise((r) => setImmediate(r));
      a.forward(1, message(41));
      want.push('m1041:msg 41');
      await waitFor(seen, want.length);
      assert.deepEqual(seen, want);
    } finally {
      await a.close();
      await b.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('ownedCallIds', () => {
  it('makes Call-IDs that hash to this worker, and leaves branches and tags alone', async () => {
    const { createIdGenerator, seededRandom } = await import('../base/index.ts');
    for (const self of [0, 1, 2]) {
      const ids = ownedCallIds(createIdGenerator(seededRandom(7 + self)), self, 3);
      for (let i = 0; i < 50; i++) assert.equal(ownerOfCallId(ids.callId(), 3), self);
      assert.match(ids.branch(), /^z9hG4bK/);
      assert.ok(ids.tag().length > 0);
    }
    const one = createIdGenerator(seededRandom(1));
    assert.equal(ownedCallIds(one, 0, 1), one);
  });
});
