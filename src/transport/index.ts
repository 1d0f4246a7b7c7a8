/**
 * The transport layer's public API: the contract (transport.ts), the layer
 * that implements it over UDP, TCP, TLS, WS and WSS (layer.ts), RFC 3263
 * resolution (resolver.ts), and the diagnostics channel names.
 */
export * from './transport.ts';
export {
  createTransportLayer,
  formatListenSpec,
  parseListenSpec,
  viaFor,
  type ConnectionInfo,
  type ListenSpec,
  type ListenerConfig,
  type SwitchboardTransportLayer,
  type TlsCredentials,
  type TransportLayerOptions,
} from './layer.ts';
export {
  createSipResolver,
  orderSrv,
  systemDnsResolver,
  type DnsResolver,
  type NaptrRecord,
  type SipResolver,
  type SipResolverOptions,
  type SrvRecord,
  type SystemDnsOptions,
} from './resolver.ts';
export {
  TRANSPORT_CHANNELS,
  type TransportConnectionEvent,
  type TransportErrorEvent,
  type TransportErrorType,
  type TransportMessageEvent,
} from './diagnostics.ts';
export { PING, PONG } from './keepalive.ts';
export {
  fnv1a,
  ownerOf,
  ownerOfCallId,
  ownedCallIds,
  type ConnectionAnnouncement,
  type ForwardedMessage,
  type SteeringHandler,
  type SteeringLink,
} from './steering.ts';
export { PeerMesh, peerSocketPath, type PeerMeshOptions } from './peer-mesh.ts';
export { formatHostPort } from './address.ts';
