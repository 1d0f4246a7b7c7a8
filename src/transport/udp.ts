/**
 * SIP over UDP (RFC 3261 §18): one bound node:dgram socket per listener, used
 * both to receive and to send, so that requests leave from the advertised port
 * (symmetric signalling, what RFC 3581 rport relies on) and responses leave
 * from the listener that received the request (§18.2.2).
 */
import { createSocket, type Socket } from 'node:dgram';
import { ipFamily, normalizeAddress } from './address.ts';
import { ReadBacklog } from './backlog.ts';
import { udpQueueProbe } from './udp-queue.ts';
import {
  listenerInfo,
  type DatagramListener,
  type ListenerHost,
  type ListenerSettings,
} from './listener.ts';
import { TransportError, type Endpoint, type ListenerInfo } from './transport.ts';

class UdpListener implements DatagramListener {
  readonly kind = 'datagram' as const;
  readonly info: ListenerInfo;
  private readonly socket: Socket;
  private closing: Promise<void> | undefined;

  constructor(socket: Socket, info: ListenerInfo) {
    this.socket = socket;
    this.info = info;
  }

  send(bytes: Uint8Array, to: Endpoint): Promise<void> {
    if (this.closing !== undefined) {
      return Promise.reject(
        new TransportError('SB_ERR_TRANSPORT_CLOSED', `listener ${this.info.id} is closed`),
      );
    }
    return new Promise((resolve, reject) => {
      try {
        this.socket.send(bytes, to.port, to.address, (err) => {
          if (err) {
            reject(
              new TransportError(
                'SB_ERR_TRANSPORT_SEND',
                `udp to ${to.address}:${to.port}: ${err.message}`,
              ),
            );
          } else resolve();
        });
      } catch (err) {
        // Synchronous failures (a bad port or address) are send failures too.
        reject(
          new TransportError(
            'SB_ERR_TRANSPORT_SEND',
            `udp to ${to.address}:${to.port}: ${err instanceof Error ? err.message : String(err)}`,
          ),
        );
      }
    });
  }

  close(): Promise<void> {
    this.closing ??= new Promise((resolve) => {
      try {
        this.socket.close(() => resolve());
      } catch {
        resolve(); // already closed
      }
    });
    return this.closing;
  }
}

/**
 * Receive buffer asked for each UDP socket. Linux's default (about 208 KiB, a few hundred
 * datagrams) overflows during a garbage-collection pause of a few tens of milliseconds at a few
 * thousand messages per second, and every datagram dropped there costs a retransmission (RFC
 * 3261 §17.1.2.2, T1 = 500 ms later) and often a failed call. 1 MiB absorbs such pauses while
 * bounding how stale a queued request can get (about half a second at 2,000 messages/s).
 */
const RECEIVE_BUFFER_BYTES = 1024 * 1024;

/**
 * node:dgram resolves every destination with dns.lookup before sending, which for an IP
 * literal still costs a deferred callback per datagram. The layer only sends to addresses
 * (names are resolved above it, RFC 3263), so the lookup answers at once and refuses a name.
 */
function literalLookup(
  host: string,
  _family: unknown,
  callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void,
): void {
  const f = ipFamily(host);
  if (f === 0) {
    const err: NodeJS.ErrnoException = new Error(`not an IP address: ${host}`);
    err.code = 'ENOTFOUND';
    callback(err, '', 0);
    return;
  }
  callback(null, host, f);
}

/** The overload check of a listener's socket: by its queue where that can be read (Linux). */
function readBacklog(socket: Socket, info: ListenerInfo, host: ListenerHost): ReadBacklog {
  let probe;
  if (host.shedAtFill > 0) {
    try {
      probe = udpQueueProbe(info.local, socket.getRecvBufferSize());
    } catch {
      // no size, no probe: the time rule
    }
    if (probe !== undefined) socket.once('close', probe.close);
  }
  return new ReadBacklog(host.clock, {
    afterMs: host.shedAfterMs,
    probe,
    atFill: host.shedAtFill,
  });
}

/** Binds a UDP listener; rejects with the socket's error (EADDRINUSE, EADDRNOTAVAIL, ...). */
export function createUdpListener(
  settings: ListenerSettings,
  host: ListenerHost,
): Promise<DatagramListener> {
  const family = ipFamily(settings.address) === 6 ? 'udp6' : 'udp4';
  // ipv6Only: a listener on :: serves IPv6 only, so that listenerFor() can go by family.
  const socket = createSocket({ type: family, ipv6Only: family === 'udp6', lookup: literalLookup });
  return new Promise((resolve, reject) => {
    const onBindError = (err: Error): void => {
      socket.close();
      reject(err);
    };
    socket.once('error', onBindError);
    socket.bind(settings.port, settings.address, () => {
      socket.off('error', onBindError);
      try {
        // The system caps it (net.core.rmem_max); asking more than allowed is not an error.
        socket.setRecvBufferSize(RECEIVE_BUFFER_BYTES);
      } catch {
        // keep the default
      }
      const bound = socket.address();
      const info = listenerInfo(settings, {
        address: normalizeAddress(bound.address),
        port: bound.port,
      });
      socket.on('error', (err) => {
        host.diagnostics.error({
          type: 'socket',
          code: (err as { code?: string }).code,
          protocol: 'udp',
          local: info.local,
          detail: err.message,
        });
      });
      const backlog = host.shedAfterMs > 0 ? readBacklog(socket, info, host) : undefined;
      socket.on('message', (msg, rinfo) => {
        host.datagram(
          info,
          msg,
          { address: normalizeAddress(rinfo.address), port: rinfo.port },
          backlog?.read() === true,
        );
      });
      resolve(new UdpListener(socket, info));
    });
  });
}
