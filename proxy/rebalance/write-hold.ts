// Holding writes to moving token ranges at cutover: while a hold is on, a write to a key in
// its ranges waits (it is not refused); a hold is "drained" once the writes that were already
// past the hold have finished. Released, the waiting writes go on and re-check where their key
// now belongs (the new owner, after the next epoch came into force).
import { parseKey, tokenOf } from '../../src/urn/urn.js';
import type { TokenSpan } from '../../src/topology/replica-ranges.js';

interface Hold {
  ranges: readonly TokenSpan[];
  released: Promise<void>;
  release: () => void;
}

const inside = (ranges: readonly TokenSpan[], t: bigint) => ranges.some((r) => t >= r.start && t <= r.end);

export class WriteHold {
  private readonly holds = new Set<Hold>();
  private readonly inflightWrites = new Set<{ token: bigint }>();
  private readonly drainWaiters = new Set<() => void>();

  /** Waits while `key` is held; then counts the write in flight until the returned function is called. */
  async enter(key: string): Promise<() => void> {
    const token = tokenOf(parseKey(key));
    for (;;) {
      const h = [...this.holds].find((x) => inside(x.ranges, token));
      if (!h) break;
      await h.released;
    }
    const id = { token }; // one object per write: several may be in flight for one token
    this.inflightWrites.add(id);
    return () => {
      this.inflightWrites.delete(id);
      for (const w of [...this.drainWaiters]) w();
    };
  }

  /** Holds new writes to `ranges`; `drained` resolves once none is in flight there. */
  hold(ranges: readonly TokenSpan[]): { drained: Promise<void>; release: () => void } {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const h: Hold = { ranges, released, release: () => undefined };
    h.release = () => {
      this.holds.delete(h);
      release();
    };
    this.holds.add(h);
    const busy = () => [...this.inflightWrites].some((w) => inside(ranges, w.token));
    const drained = new Promise<void>((resolve) => {
      if (!busy()) return resolve();
      const check = () => {
        if (busy()) return;
        this.drainWaiters.delete(check);
        resolve();
      };
      this.drainWaiters.add(check);
    });
    return { drained, release: h.release };
  }

  /** Whether any hold is on (for tests and metrics). */
  get active(): number {
    return this.holds.size;
  }
}
