/** The Switchboard SIP stack: create a stack, send and answer requests, or use a UserAgent. */
export * from './create-stack.ts';
export * from './stack.ts';
export * from './user-agent.ts';
export { Dialog } from '../dialog/index.ts';
