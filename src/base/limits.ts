/**
 * Size limits applied to wire input. Each limit that is exceeded fails with its
 * own error code (see src/sip/parser/errors.ts) so operators can tell them apart.
 */
export interface MessageLimits {
  /** Bytes from the start line to the empty line that ends the header section. */
  readonly maxHeaderBytes: number;
  /** Largest Content-Length accepted. */
  readonly maxBodyBytes: number;
  /** Most header field lines in one message. */
  readonly maxHeaderCount: number;
  /** Bytes a stream framer may hold while waiting for a message to complete. */
  readonly maxBufferedBytes: number;
}

export const defaultLimits: MessageLimits = Object.freeze({
  maxHeaderBytes: 16 * 1024,
  maxBodyBytes: 64 * 1024,
  maxHeaderCount: 256,
  maxBufferedBytes: 128 * 1024,
});
