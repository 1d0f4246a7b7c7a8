/**
 * A bounded map that forgets its least recently used entry first. The nonce
 * manager keeps the highest nonce count per nonce in one (RFC 7616 §5.5, "Replay Attacks":
 * replay protection needs per-nonce state, which must not grow without bound),
 * and the client keeps its nonce counts and give-up marks in others.
 */
export class BoundedLru<K, V> {
  private readonly map = new Map<K, V>();
  private readonly cap: number;
  private readonly onEvict: ((key: K, value: V) => void) | undefined;

  constructor(cap: number, onEvict?: (key: K, value: V) => void) {
    this.cap = Math.max(1, Math.floor(cap));
    this.onEvict = onEvict;
  }

  get size(): number {
    return this.map.size;
  }

  /** The value, marking the entry as recently used. */
  get(key: K): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }

  has(key: K): boolean {
    return this.map.has(key);
  }

  /** Sets the value as the most recently used entry, evicting the oldest beyond the cap. */
  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    while (this.map.size > this.cap) {
      const oldest = this.map.keys().next();
      if (oldest.done === true) break;
      const k = oldest.value;
      const v = this.map.get(k)!;
      this.map.delete(k);
      this.onEvict?.(k, v);
    }
  }

  delete(key: K): void {
    this.map.delete(key);
  }

  /** Entries from least to most recently used. */
  entries(): IterableIterator<[K, V]> {
    return this.map.entries();
  }
}
