// Clock and Random: the only place in the project that reads time or makes randomness.
// Components take them as parameters so tests can move a fake clock instead of sleeping.
import { randomFillSync, randomUUID } from 'node:crypto';

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

/**
 * Monotonic milliseconds that every process on the host reads alike (CLOCK_MONOTONIC, through
 * process.hrtime): a deadline one process computes is a deadline in another. performance.now()
 * counts from each process's own start and is not.
 */
export const hostMonotonicMs = (): number => Number(process.hrtime.bigint() / 1000n) / 1000;

// Small requests (a nonce per signed request) are served from a pool refilled 4 KiB at a
// time: one call into the CSPRNG per 512 nonces instead of one each.
const POOL_SIZE = 4096;
const pool = Buffer.alloc(POOL_SIZE);
let poolOffset = POOL_SIZE;

function cryptoBytes(n: number): Buffer {
  if (n > POOL_SIZE / 4) return randomFillSync(Buffer.alloc(n));
  if (poolOffset + n > POOL_SIZE) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const out = Buffer.from(pool.subarray(poolOffset, poolOffset + n));
  pool.fill(0, poolOffset, poolOffset + n); // a handed-out value never stays in memory twice
  poolOffset += n;
  return out;
}

export const systemRandom: Random = Object.freeze({
  bytes: cryptoBytes,
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
