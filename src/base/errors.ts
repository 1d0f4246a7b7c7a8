/**
 * The catalogue of thrown errors: programmer and configuration mistakes only
 * (STYLE §7). Every code is stable, never reused, and listed in docs/errors.md;
 * a test checks that the two agree. Wire errors are values (see
 * src/sip/parser/errors.ts), not entries here.
 */
export const ErrorCodes = {
  SB_ERR_INVALID_ARGUMENT: 'An argument passed to a Switchboard API is invalid',
  SB_ERR_INVALID_HEADER_NAME: 'A header name is not a valid SIP token',
  SB_ERR_INVALID_HEADER_VALUE: 'A header value contains CR or LF outside a fold',
  SB_ERR_HEADER_UNDECODABLE: 'A header needed by the operation does not decode',
  SB_ERR_INVALID_URI: 'A URI given to a builder does not parse',
  SB_ERR_INVALID_STATUS: 'A status code outside 100..699 was given to a builder',
  SB_ERR_HEADER_ABSENT: 'A message lacks a header that the operation needs',
  SB_ERR_CONFIG: 'The server configuration is invalid',
  SB_ERR_NOT_KEPT: 'A finished transaction no longer keeps what was asked of it',
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export class SwitchboardError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, detail?: string) {
    super(detail === undefined ? ErrorCodes[code] : `${ErrorCodes[code]}: ${detail}`);
    this.name = 'SwitchboardError';
    this.code = code;
  }
}
