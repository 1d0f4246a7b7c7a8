/**
 * The transaction layer (RFC 3261 §17, RFC 6026): the public entry of
 * src/transaction. The dialog layer and the stack import from here only; the
 * transport types the API mentions are re-exported so that they need not
 * import the transport layer themselves.
 */
export {
  TransactionLayer,
  DEFAULT_MAX_SERVER_TRANSACTIONS,
  type ClientTransaction,
  type ServerTransaction,
  type ClientTransactionUser,
  type ServerTransactionUser,
  type TransactionLayerDelegate,
  type TransactionLayerOptions,
} from './transaction-layer.ts';
export {
  InviteClientTransaction,
  type InviteClientState,
  type InviteClientUser,
  type CancelOptions,
} from './invite-client.ts';
export {
  NonInviteClientTransaction,
  type NonInviteClientState,
  type NonInviteClientUser,
} from './non-invite-client.ts';
export {
  InviteServerTransaction,
  TRYING_DELAY_MS,
  type InviteServerState,
  type InviteServerUser,
} from './invite-server.ts';
export {
  NonInviteServerTransaction,
  type NonInviteServerState,
  type NonInviteServerUser,
} from './non-invite-server.ts';
export {
  DEFAULT_TIMERS,
  TIMER_D_UNRELIABLE,
  resolveTimers,
  timerValues,
  type TimerName,
  type TimerValues,
  type TransactionTimers,
} from './timers.ts';
export {
  type MachineTimer,
  type TransactionEvent,
  type TransactionKind,
  type TransactionSide,
} from './context.ts';
export { buildAckForNon2xx, buildCancel } from './requests.ts';
export {
  clientKey,
  isRfc3261Branch,
  serverKey,
  serverKeyWithoutMethod,
  rfc2543AckKey,
} from './matching.ts';
export type {
  Destination,
  InboundRequest,
  InboundResponse,
  ListenerInfo,
  Source,
  TransportProtocol,
} from '../transport/transport.ts';
