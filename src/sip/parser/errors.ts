/**
 * Wire errors: values, not exceptions (STYLE §6). Each carries a stable code, the
 * SIP status a server answers a request with (a response that fails is dropped,
 * RFC 3261 §18.1.2), and the header at fault. Every code is listed in docs/errors.md.
 */

export const WireErrorCodes = {
  SB_ERR_PARSE_EMPTY: { status: 400, reason: 'Bad Request', text: 'The message is empty' },
  SB_ERR_PARSE_START_LINE: { status: 400, reason: 'Bad Request', text: 'Malformed start line' },
  SB_ERR_PARSE_METHOD: { status: 400, reason: 'Bad Request', text: 'The method is not a token' },
  SB_ERR_PARSE_REQUEST_URI: { status: 400, reason: 'Bad Request', text: 'Malformed Request-URI' },
  SB_ERR_PARSE_VERSION: {
    status: 505,
    reason: 'Version Not Supported',
    text: 'The SIP version is not SIP/2.0',
  },
  SB_ERR_PARSE_STATUS_CODE: { status: 400, reason: 'Bad Request', text: 'Malformed status code' },
  SB_ERR_PARSE_HEADER_LINE: {
    status: 400,
    reason: 'Bad Request',
    text: 'A header line has no colon or an invalid name',
  },
  SB_ERR_PARSE_HEADERS_UNTERMINATED: {
    status: 400,
    reason: 'Bad Request',
    text: 'The header section does not end with an empty line',
  },
  SB_ERR_PARSE_VIA: { status: 400, reason: 'Bad Request', text: 'Malformed Via' },
  SB_ERR_PARSE_FROM: { status: 400, reason: 'Bad Request', text: 'Malformed From' },
  SB_ERR_PARSE_TO: { status: 400, reason: 'Bad Request', text: 'Malformed To' },
  SB_ERR_PARSE_CALL_ID: { status: 400, reason: 'Bad Request', text: 'Malformed Call-ID' },
  SB_ERR_PARSE_CSEQ: { status: 400, reason: 'Bad Request', text: 'Malformed CSeq' },
  SB_ERR_PARSE_MAX_FORWARDS: { status: 400, reason: 'Bad Request', text: 'Malformed Max-Forwards' },
  SB_ERR_PARSE_CONTENT_LENGTH: {
    status: 400,
    reason: 'Bad Request',
    text: 'Malformed Content-Length',
  },
  SB_ERR_PARSE_HEADER: { status: 400, reason: 'Bad Request', text: 'Malformed header value' },
  SB_ERR_MISSING_HEADER: {
    status: 400,
    reason: 'Bad Request',
    text: 'A mandatory header is missing',
  },
  SB_ERR_DUPLICATE_HEADER: {
    status: 400,
    reason: 'Bad Request',
    text: 'A single-valued header appears more than once',
  },
  SB_ERR_CSEQ_METHOD_MISMATCH: {
    status: 400,
    reason: 'Bad Request',
    text: 'The CSeq method differs from the request method',
  },
  SB_ERR_BODY_TRUNCATED: {
    status: 400,
    reason: 'Bad Request',
    text: 'Content-Length is larger than the body received',
  },
  SB_ERR_HEADERS_TOO_LARGE: {
    status: 513,
    reason: 'Message Too Large',
    text: 'The header section exceeds the header byte limit',
  },
  SB_ERR_TOO_MANY_HEADERS: {
    status: 513,
    reason: 'Message Too Large',
    text: 'The message has more header lines than the limit',
  },
  SB_ERR_BODY_TOO_LARGE: {
    status: 513,
    reason: 'Message Too Large',
    text: 'Content-Length exceeds the body byte limit',
  },
  SB_ERR_BUFFER_OVERFLOW: {
    status: 513,
    reason: 'Message Too Large',
    text: 'A stream buffered more bytes than the limit without completing a message',
  },
} as const;

export type WireErrorCode = keyof typeof WireErrorCodes;

/** A failure to parse or accept wire input. */
export interface SipParseError {
  readonly code: WireErrorCode;
  /** The status a server answers a request with; responses that fail are dropped. */
  readonly status: number;
  readonly reason: string;
  /** Canonical name of the header at fault, when one is. */
  readonly header?: string;
  /** Human-readable detail for logs and the `switchboard parse` command. */
  readonly detail: string;
}

export function wireError(code: WireErrorCode, detail?: string, header?: string): SipParseError {
  const e = WireErrorCodes[code];
  const out: { -readonly [K in keyof SipParseError]: SipParseError[K] } = {
    code,
    status: e.status,
    reason: e.reason,
    detail: detail ?? e.text,
  };
  if (header !== undefined) out.header = header;
  return out;
}
