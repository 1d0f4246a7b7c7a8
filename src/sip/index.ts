/**
 * The SIP message core: URIs, header codecs, the message model, parser,
 * stream framer and serializer. No runtime dependency and no node: import, so
 * the browser softphone uses the same code.
 */
export * from './grammar/chars.ts';
export { Cursor } from './grammar/cursor.ts';
export * from './grammar/lex.ts';
export * from './uri/params.ts';
export * from './uri/uri.ts';
export * from './headers/codec.ts';
export * from './headers/names.ts';
export * from './headers/header-params.ts';
export * from './headers/name-addr.ts';
export * from './headers/address.ts';
export * from './headers/via.ts';
export * from './headers/cseq.ts';
export * from './headers/scalar.ts';
export * from './message/message.ts';
export * from './message/serialize.ts';
export * from './parser/errors.ts';
export * from './parser/parse-message.ts';
export * from './parser/peek-call-id.ts';
export * from './headers/registry.ts';
export * from './parser/stream-framer.ts';
export * from './message/builder.ts';
export * from './message/status.ts';
export * from './headers/auth.ts';
export * from './headers/token-list.ts';
export * from './headers/media-type.ts';
export * from './headers/event.ts';
export * from './headers/session.ts';
export * from './headers/misc.ts';
