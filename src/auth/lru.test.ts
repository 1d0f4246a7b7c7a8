import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { BoundedLru } from './lru.ts';

/** The obvious model: an array from least to most recently used. */
class ModelLru {
  entries: [number, string][] = [];
  evicted: [number, string][] = [];
  constructor(readonly cap: number) {}
  private take(k: number): [number, string] | undefined {
    const i = this.entries.findIndex((e) => e[0] === k);
    return i < 0 ? undefined : this.entries.splice(i, 1)[0];
  }
  get(k: number): string | undefined {
    const e = this.take(k);
    if (e !== undefined) this.entries.push(e);
    return e?.[1];
  }
  set(k: number, v: string): void {
    this.take(k);
    this.entries.push([k, v]);
    while (this.entries.length > this.cap) this.evicted.push(this.entries.shift()!);
  }
  delete(k: number): void {
    this.take(k);
  }
}

type Op = { op: 'get' | 'set' | 'delete' | 'has'; k: number; v: string };

describe('BoundedLru', () => {
  it('behaves like an array kept in order of use, evictions included', () => {
    const op = fc.record({
      op: fc.constantFrom<Op['op']>('get', 'set', 'set', 'delete', 'has'),
      k: fc.integer({ min: 0, max: 12 }),
      v: fc.string({ maxLength: 3 }),
    });
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.array(op, { maxLength: 80 }), (cap, ops) => {
        const evicted: [number, string][] = [];
        const lru = new BoundedLru<number, string>(cap, (k, v) => evicted.push([k, v]));
        const model = new ModelLru(cap);
        for (const o of ops) {
          if (o.op === 'get') assert.equal(lru.get(o.k), model.get(o.k));
          else if (o.op === 'has') {
            assert.equal(
              lru.has(o.k),
              model.entries.some((e) => e[0] === o.k),
            );
          } else if (o.op === 'set') {
            lru.set(o.k, o.v);
            model.set(o.k, o.v);
          } else {
            lru.delete(o.k);
            model.delete(o.k);
          }
          assert.equal(lru.size, model.entries.length);
          assert.deepEqual([...lru.entries()], model.entries);
          assert.deepEqual(evicted, model.evicted);
        }
      }),
      { numRuns: 400 },
    );
  });

  it('holds no more than its cap and reuses slots after deletes', () => {
    const lru = new BoundedLru<string, number>(3);
    for (let i = 0; i < 1000; i++) {
      lru.set(`k${i}`, i);
      if (i % 3 === 0) lru.delete(`k${i - 1}`);
    }
    assert.ok(lru.size <= 3);
    assert.equal(lru.get('k999'), 999);
    assert.equal(lru.get('k0'), undefined);
  });
});
