/**
 * The SteeringLink between the worker processes of one server (steering.ts): every worker
 * listens on a Unix stream socket `DIR/w<index>.sock` and connects to each other worker's
 * socket when it first has something for it, so messages between two workers keep their order
 * and no datagram size limit applies. DIR is a directory the supervising process made for this
 * run, readable by its user only (mode 0700): no other user can connect.
 *
 * A frame is: length (u32, big-endian, of what follows) | type (u8) | header length (u16) |
 * header | payload. The header of a forwarded message or a write, sent for every message
 * another worker owns, is binary (`encodeMessage`, `encodeWrite`: a few integers and
 * length-prefixed UTF-8 strings); that of the rare hello and announcements is JSON. The payload
 * is the SIP message's bytes, copied once into the frame. The frames for one peer made in one
 * turn of the event loop (a worker reads the datagrams waiting on the shared socket in one go)
 * leave in one write at the end of the turn (`setImmediate`): under load that took mesh writes
 * from 0.5 to 0.15-0.2 per registration with two workers, in order as before.
 *
 * Delivery is best effort (SteeringLink): a frame for a worker that is not reachable is dropped
 * and counted, and so is one that would grow a peer connection's write buffer past
 * `maxBufferedBytes` (a stalled peer must not make this worker grow without bound).
 */
import { mkdirSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Logger } from '../base/index.ts';
import type { TransportProtocol } from './transport.ts';
import type {
  ConnectionAnnouncement,
  ForwardedMessage,
  SteeringHandler,
  SteeringLink,
} from './steering.ts';

const HELLO = 0;
const MESSAGE = 1;
const WRITE = 2;
const ANNOUNCE = 3;

/** Largest frame accepted from a peer: a message is bounded by the parser's limits well below. */
const MAX_FRAME = 16 * 1024 * 1024;

export interface PeerMeshOptions {
  readonly self: number;
  readonly workers: number;
  /** The run's socket directory (made by the supervisor with mode 0700). */
  readonly dir: string;
  readonly logger: Logger;
  /** Most bytes waiting to be written to one peer before frames to it are dropped (default 8 MiB). */
  readonly maxBufferedBytes?: number;
}

/** The socket path of worker `index` in `dir`. */
export function peerSocketPath(dir: string, index: number): string {
  return join(dir, `w${index}.sock`);
}

interface Outgoing {
  socket: Socket | undefined;
  connected: boolean;
  /** Frames written while connecting (Node queues them on the socket; counted here). */
  pendingBytes: number;
  /** Frames of this turn of the event loop, written together at its end. */
  batch: Buffer[] | undefined;
  batchBytes: number;
}

/** A frame of `type` with room for a header of `hlen` octets and a payload of `plen`. */
function frameOf(type: number, hlen: number, plen: number): Buffer {
  const frame = Buffer.allocUnsafe(4 + 1 + 2 + hlen + plen);
  frame.writeUInt32BE(1 + 2 + hlen + plen, 0);
  frame[4] = type;
  frame.writeUInt16BE(hlen, 5);
  return frame;
}

/** Hello and announcements: a JSON header, no payload. */
function encode(type: number, header: object): Buffer {
  const h = Buffer.from(JSON.stringify(header), 'utf8');
  const frame = frameOf(type, h.length, 0);
  h.copy(frame, 7);
  return frame;
}

/** Writes `s` at `at` as a u16 octet count and UTF-8; returns the offset after it. */
function putString(frame: Buffer, at: number, s: string): number {
  const n = frame.write(s, at + 2, 'utf8');
  frame.writeUInt16BE(n, at);
  return at + 2 + n;
}

/** Room for `s` written by putString. */
const stringSize = (s: string): number => 2 + Buffer.byteLength(s, 'utf8');

const PROTOCOLS: readonly TransportProtocol[] = ['udp', 'tcp', 'tls', 'ws', 'wss'];

/** Reads the strings putString wrote; undefined when they overrun the header. */
function readStrings(buf: Buffer, from: number, to: number, count: number): string[] | undefined {
  const out: string[] = [];
  let at = from;
  for (let i = 0; i < count; i++) {
    if (at + 2 > to) return undefined;
    const l = buf.readUInt16BE(at);
    if (at + 2 + l > to) return undefined;
    out.push(buf.toString('utf8', at + 2, at + 2 + l));
    at += 2 + l;
  }
  return out;
}

/** A JSON header (hello, announcements), or undefined when it does not parse. */
function jsonHeader(buf: Buffer, from: number, to: number): Record<string, unknown> | undefined {
  try {
    return JSON.parse(buf.toString('utf8', from, to)) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** A forwarded message: framing, protocol, port (u16), then address, listener, connection. */
function encodeMessage(m: ForwardedMessage): Buffer {
  const c = m.connectionId ?? '';
  const hlen = 4 + stringSize(m.address) + stringSize(m.listenerId) + stringSize(c);
  const frame = frameOf(MESSAGE, hlen, m.bytes.length);
  frame[7] = m.framing === 'datagram' ? 0 : 1;
  frame[8] = PROTOCOLS.indexOf(m.protocol);
  frame.writeUInt16BE(m.port, 9);
  let at = putString(frame, 11, m.address);
  at = putString(frame, at, m.listenerId);
  at = putString(frame, at, c);
  frame.set(m.bytes, at);
  return frame;
}

/** Octets for another worker's connection: its id, then the octets. */
function encodeWrite(connectionId: string, bytes: Uint8Array): Buffer {
  const frame = frameOf(WRITE, stringSize(connectionId), bytes.length);
  frame.set(bytes, putString(frame, 7, connectionId));
  return frame;
}

function decodeMessage(buf: Buffer, hstart: number, pstart: number, payload: Uint8Array) {
  if (pstart - hstart < 4) return undefined;
  const protocol = PROTOCOLS[buf[hstart + 1]!];
  const s = readStrings(buf, hstart + 4, pstart, 3);
  if (protocol === undefined || s === undefined) return undefined;
  const m: ForwardedMessage = {
    framing: buf[hstart] === 0 ? 'datagram' : 'stream',
    bytes: payload,
    protocol,
    address: s[0]!,
    port: buf.readUInt16BE(hstart + 2),
    listenerId: s[1]!,
    ...(s[2] !== '' ? { connectionId: s[2]! } : {}),
  };
  return m;
}

/** The mesh of one worker. */
export class PeerMesh implements SteeringLink {
  readonly self: number;
  readonly workers: number;
  /** Frames dropped because their peer was unreachable or too far behind. */
  dropped = 0;
  private readonly dir: string;
  private readonly logger: Logger;
  private readonly maxBuffered: number;
  private readonly out = new Map<number, Outgoing>();
  private readonly incoming = new Set<Socket>();
  private handler: SteeringHandler | undefined;
  private server: Server | undefined;
  private closed = false;

  private constructor(o: PeerMeshOptions) {
    this.self = o.self;
    this.workers = o.workers;
    this.dir = o.dir;
    this.logger = o.logger.child({ mesh: `w${o.self}` });
    this.maxBuffered = o.maxBufferedBytes ?? 8 * 1024 * 1024;
  }

  /** Listens on this worker's socket (replacing one a crashed predecessor left behind). */
  static async start(o: PeerMeshOptions): Promise<PeerMesh> {
    const mesh = new PeerMesh(o);
    mkdirSync(o.dir, { recursive: true, mode: 0o700 });
    const path = peerSocketPath(o.dir, o.self);
    rmSync(path, { force: true });
    const server = createServer((socket) => mesh.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => mesh.logger.warn({ err }, 'peer socket error'));
    mesh.server = server;
    return mesh;
  }

  attach(handler: SteeringHandler): void {
    this.handler = handler;
  }

  forward(to: number, m: ForwardedMessage): void {
    this.send(to, encodeMessage(m));
  }

  write(to: number, connectionId: string, bytes: Uint8Array): void {
    this.send(to, encodeWrite(connectionId, bytes));
  }

  announce(a: ConnectionAnnouncement): void {
    const frame = encode(ANNOUNCE, a);
    for (let i = 0; i < this.workers; i++) if (i !== this.self) this.send(i, frame);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const o of this.out.values()) o.socket?.destroy();
    this.out.clear();
    for (const s of this.incoming) s.destroy();
    this.incoming.clear();
    const server = this.server;
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  // ---- sending ----

  private send(to: number, frame: Buffer): void {
    if (this.closed || to === this.self || to < 0 || to >= this.workers) {
      this.dropped += 1;
      return;
    }
    let o = this.out.get(to);
    if (o === undefined || o.socket === undefined) o = this.connect(to);
    const socket = o.socket!;
    const buffered = (o.connected ? socket.writableLength : o.pendingBytes) + o.batchBytes;
    if (buffered + frame.length > this.maxBuffered) {
      this.dropped += 1;
      return;
    }
    if (!o.connected) {
      o.pendingBytes += frame.length;
      socket.write(frame);
      return;
    }
    // The frames of one turn of the event loop (the datagrams read in one go) leave in one write.
    if (o.batch === undefined) {
      o.batch = [];
      const out = o;
      setImmediate(() => this.flush(out));
    }
    o.batch.push(frame);
    o.batchBytes += frame.length;
  }

  private flush(o: Outgoing): void {
    const batch = o.batch;
    o.batch = undefined;
    const bytes = o.batchBytes;
    o.batchBytes = 0;
    if (batch === undefined || o.socket === undefined || o.socket.destroyed) return;
    o.socket.write(batch.length === 1 ? batch[0]! : Buffer.concat(batch, bytes));
  }

  private connect(to: number): Outgoing {
    const o: Outgoing = {
      socket: undefined,
      connected: false,
      pendingBytes: 0,
      batch: undefined,
      batchBytes: 0,
    };
    const socket = createConnection(peerSocketPath(this.dir, to));
    o.socket = socket;
    this.out.set(to, o);
    socket.setNoDelay?.(true);
    socket.write(encode(HELLO, { from: this.self }));
    socket.once('connect', () => {
      o.connected = true;
      o.pendingBytes = 0;
    });
    socket.on('error', (err) => {
      this.logger.debug({ err, peer: to }, 'peer connection failed');
    });
    socket.on('close', () => {
      // Frames still queued are lost (best effort); the next send connects again.
      if (this.out.get(to) === o) this.out.delete(to);
    });
    // Nothing is read on an outgoing connection; keep it flowing so close is noticed.
    socket.resume();
    return o;
  }

  // ---- receiving ----

  private accept(socket: Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    this.incoming.add(socket);
    let from: number | undefined;
    let buf: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      let at = 0;
      while (buf.length - at >= 4) {
        const len = buf.readUInt32BE(at);
        if (len < 3 || len > MAX_FRAME) {
          this.logger.warn({ len }, 'bad frame from a peer: connection closed');
          socket.destroy();
          return;
        }
        if (buf.length - at - 4 < len) break;
        const type = buf[at + 4]!;
        const hlen = buf.readUInt16BE(at + 5);
        const hstart = at + 7;
        const pstart = hstart + hlen;
        const end = at + 4 + len;
        at = end;
        let ok = pstart <= end;
        if (ok && type === HELLO) {
          const h = jsonHeader(buf, hstart, pstart);
          if (h !== undefined) from = Number(h.from);
          ok = h !== undefined;
        } else if (ok) {
          // The payload is copied out: `buf` is reused for the next frames.
          const payload = new Uint8Array(buf.subarray(pstart, end));
          ok = this.receive(type, buf, hstart, pstart, payload, from);
        }
        if (!ok) {
          this.logger.warn({ type }, 'bad frame header from a peer: connection closed');
          socket.destroy();
          return;
        }
      }
      buf = at === buf.length ? Buffer.alloc(0) : buf.subarray(at);
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.incoming.delete(socket);
      if (from !== undefined && !this.closed) this.handler?.peerDown(from);
    });
  }

  /** Hands one frame from worker `from` to the handler; false when its header is malformed. */
  private receive(
    type: number,
    buf: Buffer,
    hstart: number,
    pstart: number,
    payload: Uint8Array,
    from: number | undefined,
  ): boolean {
    switch (type) {
      case MESSAGE: {
        const m = decodeMessage(buf, hstart, pstart, payload);
        if (m !== undefined) this.deliver(() => this.handler?.message(m));
        return m !== undefined;
      }
      case WRITE: {
        const c = readStrings(buf, hstart, pstart, 1);
        if (c !== undefined) this.deliver(() => this.handler?.write(c[0]!, payload));
        return c !== undefined;
      }
      case ANNOUNCE: {
        const a = jsonHeader(buf, hstart, pstart) as ConnectionAnnouncement | undefined;
        if (a !== undefined && from !== undefined) {
          this.deliver(() => this.handler?.announced(from, a));
        }
        return a !== undefined;
      }
      default:
        this.logger.warn({ type }, 'unknown frame type from a peer');
        return true;
    }
  }

  /** Runs a handler call; one that throws is logged, never taken for a bad frame. */
  private deliver(call: () => void): void {
    try {
      call();
    } catch (err) {
      this.logger.error({ err }, 'steering handler threw');
    }
  }
}
