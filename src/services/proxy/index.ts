/** The stateful proxy service (RFC 3261 §16): public API. */
export {
  createProxy,
  type CallObserver,
  DEFAULT_TIMER_C,
  PROXY_ALLOW,
  type MessageHooks,
  type Proxy,
  type ProxyOptions,
  type ProxyStats,
  type PublishHandler,
  type SubscribeHandler,
} from './proxy.ts';
export { chooseBest, mergeChallenges } from './best-response.ts';
export { groupByQ, parseFlow, type Target } from './targets.ts';
export { reachTarget, type ResolveNextHop } from './reach.ts';
