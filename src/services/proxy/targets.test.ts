import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Binding } from '../../store/index.ts';
import { groupByQ, parseFlow, useFlow } from './targets.ts';

const binding = (o: Partial<Binding>): Binding => ({
  aor: 'sip:bob@example.com',
  contact: 'sip:bob@192.0.2.10:5060',
  expiresAt: 0,
  q: 1,
  callId: 'c',
  cseq: 1,
  path: [],
  ...o,
});

describe('proxy targets', () => {
  it('parses flows, IPv4 and IPv6', () => {
    assert.deepEqual(parseFlow('udp:192.0.2.1:5060'), {
      protocol: 'udp',
      address: '192.0.2.1',
      port: 5060,
    });
    assert.deepEqual(parseFlow('tcp:[2001:db8::1]:5070'), {
      protocol: 'tcp',
      address: '2001:db8::1',
      port: 5070,
    });
    assert.equal(parseFlow('sctp:192.0.2.1:5060'), undefined);
    assert.equal(parseFlow('udp:example.com:5060'), undefined);
    assert.equal(parseFlow(undefined), undefined);
  });

  it('uses the registered flow for outbound, .invalid, NAT and own connections only', () => {
    // UDP from the contact's own host: the contact as registered.
    assert.equal(useFlow(binding({ received: 'udp:192.0.2.10:5060' })), false);
    // Third-party registration from another public address: the contact.
    assert.equal(useFlow(binding({ received: 'udp:192.0.2.99:5060' })), false);
    // A private contact seen from another (public) address: behind NAT.
    assert.equal(
      useFlow(binding({ contact: 'sip:bob@192.168.1.5:5060', received: 'udp:198.51.100.7:40000' })),
      true,
    );
    // WebSocket clients (RFC 7118 §5.2).
    assert.equal(
      useFlow(
        binding({
          contact: 'sip:x@df7jal23ls0d.invalid;transport=ws',
          received: 'wss:192.0.2.5:50000',
        }),
      ),
      true,
    );
    // A TCP connection opened from the contact's host: reuse it.
    assert.equal(
      useFlow(
        binding({
          contact: 'sip:bob@192.0.2.10:5060;transport=tcp',
          received: 'tcp:192.0.2.10:49152',
        }),
      ),
      true,
    );
    // RFC 5626 outbound.
    assert.equal(
      useFlow(binding({ received: 'udp:192.0.2.99:5060', instance: '<urn:uuid:1>', regId: 1 })),
      true,
    );
    assert.equal(useFlow(binding({})), false);
  });

  it('groups by q, highest first, equal q in parallel', () => {
    const groups = groupByQ(
      [
        binding({ contact: 'sip:a@192.0.2.1', q: 0.5 }),
        binding({ contact: 'sip:b@192.0.2.2', q: 1 }),
        binding({ contact: 'sip:c@192.0.2.3', q: 0.5 }),
      ],
      10,
    );
    assert.deepEqual(
      groups.map((g) => g.map((t) => t.uri)),
      [['sip:b@192.0.2.2'], ['sip:a@192.0.2.1', 'sip:c@192.0.2.3']],
    );
    assert.equal(groupByQ([binding({}), binding({}), binding({})], 2).flat().length, 2);
  });
});
