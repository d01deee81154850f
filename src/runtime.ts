// Clock and Random: the only place in the project that reads time or makes randomness.
// Components take them as parameters so tests can move a fake clock instead of sleeping.
import { randomBytes, randomUUID } from 'node:crypto';

export interface Clock {
  /** Wall-clock time in milliseconds since the Unix epoch. */
  now(): number;
  /** Monotonic milliseconds for measuring durations. */
  monotonic(): number;
}

export interface Random {
  bytes(n: number): Buffer;
  uuid(): string;
}

export const systemClock: Clock = Object.freeze({
  now: () => Date.now(),
  monotonic: () => performance.now(),
});

export const systemRandom: Random = Object.freeze({
  bytes: (n: number) => randomBytes(n),
  uuid: () => randomUUID(),
});

/** A clock that only moves when told to; for tests. */
export class FakeClock implements Clock {
  constructor(private ms = Date.UTC(2026, 0, 1)) {}
  now(): number {
    return this.ms;
  }
  monotonic(): number {
    return this.ms;
  }
  advance(ms: number): void {
    this.ms += ms;
  }
  set(ms: number): void {
    this.ms = ms;
  }
}

/**
 * A deterministic Random (xorshift128+), for reproducible planning runs and tests.
 * Not for key material.
 */
export class SeededRandom implements Random {
  private s0: bigint;
  private s1: bigint;
  constructor(seed: number) {
    this.s0 = BigInt.asUintN(64, BigInt(seed) * 0x9e3779b97f4a7c15n + 1n);
    this.s1 = BigInt.asUintN(64, (this.s0 ^ 0xbf58476d1ce4e5b9n) * 0x94d049bb133111ebn);
  }
  private next(): bigint {
    let a = this.s0;
    const b = this.s1;
    this.s0 = b;
    a ^= BigInt.asUintN(64, a << 23n);
    a ^= a >> 17n;
    a ^= b ^ (b >> 26n);
    this.s1 = a;
    return BigInt.asUintN(64, a + b);
  }
  bytes(n: number): Buffer {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i += 8) {
      const v = this.next();
      for (let j = 0; j < 8 && i + j < n; j++) out[i + j] = Number((v >> BigInt(8 * j)) & 0xffn);
    }
    return out;
  }
  uuid(): string {
    const b = this.bytes(16);
    b[6] = (b[6]! & 0x0f) | 0x40;
    b[8] = (b[8]! & 0x3f) | 0x80;
    const h = b.toString('hex');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }
}
