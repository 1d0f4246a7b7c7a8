/** Golden messages for unit tests, written for Switchboard (CRLF line ends). */
export const crlf = (lines: readonly string[]): string => lines.join('\r\n');

export const INVITE = crlf([
  'INVITE sip:bob@biloxi.example.com SIP/2.0',
  'Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport',
  'Max-Forwards: 70',
  'To: Bob <sip:bob@biloxi.example.com>',
  'From: "Alice A." <sip:alice@atlanta.example.com>;tag=1928301774',
  'Call-ID: a84b4c76e66710@pc33.atlanta.example.com',
  'CSeq: 314159 INVITE',
  'Contact: <sip:alice@pc33.atlanta.example.com>',
  'X-Custom:   kept   as  is  ',
  'Content-Type: application/sdp',
  'Content-Length: 29',
  '',
  'v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\n',
]);

export const RESPONSE_200 = crlf([
  'SIP/2.0 200 OK',
  'Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKnashds8;received=192.0.2.3',
  'Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport=5060',
  'Record-Route: <sip:proxy.example.com;lr>',
  'To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf',
  'From: Alice <sip:alice@atlanta.example.com>;tag=1928301774',
  'Call-ID: a84b4c76e66710@pc33.atlanta.example.com',
  'CSeq: 314159 INVITE',
  'Contact: <sip:bob@192.0.2.4>',
  'Content-Length: 0',
  '',
  '',
]);
