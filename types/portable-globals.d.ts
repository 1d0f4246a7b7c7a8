/**
 * Web-platform globals that both Node.js >= 20 and browsers provide, declared for the node-free
 * type-check of src/base, src/sip and src/sdp (tsconfig.core.json, `types: []`, no DOM lib).
 *
 * STYLE.md HARD rule 2: the shared core works on Uint8Array/string and has no `node:` imports, so
 * web/ can reuse it. Anything not declared here (Buffer, process, NodeJS.Timeout#unref, ...) fails
 * that check. Add a global here only if it exists with the same shape in Node and in browsers.
 *
 * This file is NOT part of tsconfig.json: there @types/node declares the same globals.
 */

interface TextDecodeOptions {
  stream?: boolean;
}

interface TextDecoderOptions {
  fatal?: boolean;
  ignoreBOM?: boolean;
}

interface TextDecoder {
  readonly encoding: string;
  readonly fatal: boolean;
  readonly ignoreBOM: boolean;
  decode(input?: ArrayBufferView | ArrayBufferLike, options?: TextDecodeOptions): string;
}

declare var TextDecoder: {
  prototype: TextDecoder;
  new (label?: string, options?: TextDecoderOptions): TextDecoder;
};

interface TextEncoderEncodeIntoResult {
  read: number;
  written: number;
}

interface TextEncoder {
  readonly encoding: string;
  encode(input?: string): Uint8Array<ArrayBuffer>;
  encodeInto(source: string, destination: Uint8Array): TextEncoderEncodeIntoResult;
}

declare var TextEncoder: {
  prototype: TextEncoder;
  new (): TextEncoder;
};

/** Web Crypto, random parts only (src/base/ids.ts). Digests live in src/auth (node:crypto). */
interface Crypto {
  getRandomValues<T extends ArrayBufferView>(array: T): T;
  randomUUID(): `${string}-${string}-${string}-${string}-${string}`;
}

declare var crypto: Crypto;

/** Monotonic clock (the real Clock in src/base/clock.ts). */
declare var performance: {
  now(): number;
};

/**
 * Timers, for the real Clock in src/base/clock.ts only (eslint forbids them in sip/, transaction/
 * and dialog/). The handle is opaque: Node returns a Timeout object, browsers a number, so use
 * `ReturnType<typeof setTimeout>` and never call Node-only methods such as `unref()` here.
 */
declare function setTimeout(
  handler: (...args: unknown[]) => void,
  timeout?: number,
  ...args: unknown[]
): object | number;
declare function clearTimeout(handle: object | number | string | undefined): void;
declare function setInterval(
  handler: (...args: unknown[]) => void,
  timeout?: number,
  ...args: unknown[]
): object | number;
declare function clearInterval(handle: object | number | string | undefined): void;

declare function queueMicrotask(callback: () => void): void;
