// Holding writes to moving token ranges at cutover: while a hold is on, a write to a key in
// its ranges waits (it is not refused); a hold is "drained" once the writes that were already
// past the hold have finished. Released, the waiting writes go on and re-check where their key
// now belongs (the new owner, after the next epoch came into force).
import { parseKey, tokenOf } from '../../src/urn/urn.js';
import type { TokenSpan } from '../../src/topology/replica-ranges.js';

interface Hold {
  ranges: readonly TokenSpan[];
  released: Promise<void>;
}

const inside = (ranges: readonly TokenSpan[], t: bigint) => ranges.some((r) => t >= r.start && t <= r.end);

export class WriteHold {
  private readonly holds = new Set<Hold>();
  /** Writes past the hold check, one object each (several may be in flight for one key). */
  private readonly inflight = new Set<{ key: string }>();
  private readonly drainWaiters = new Set<() => void>();

  /** Waits while `key` is held; then counts the write in flight until the returned function is called. */
  async enter(key: string): Promise<() => void> {
    // Without a hold (nearly always) the key is not even parsed: this runs for every local write.
    if (this.holds.size) {
      const token = tokenOf(parseKey(key));
      for (let h = this.heldAt(token); h; h = this.heldAt(token)) await h.released;
    }
    const w = { key };
    this.inflight.add(w);
    return () => {
      this.inflight.delete(w);
      for (const check of [...this.drainWaiters]) check();
    };
  }

  private heldAt(token: bigint): Hold | undefined {
    for (const h of this.holds) if (inside(h.ranges, token)) return h;
    return undefined;
  }

  /** Holds new writes to `ranges`; `drained` resolves once none is in flight there. */
  hold(ranges: readonly TokenSpan[]): { drained: Promise<void>; release: () => void } {
    let resolve!: () => void;
    const h: Hold = { ranges, released: new Promise<void>((r) => (resolve = r)) };
    this.holds.add(h);
    const release = () => {
      this.holds.delete(h);
      resolve();
    };
    const busy = () => [...this.inflight].some((w) => inside(ranges, tokenOf(parseKey(w.key))));
    const drained = new Promise<void>((done) => {
      if (!busy()) return done();
      const check = () => {
        if (busy()) return;
        this.drainWaiters.delete(check);
        done();
      };
      this.drainWaiters.add(check);
    });
    return { drained, release };
  }

  /** Whether any hold is on (for tests and metrics). */
  get active(): number {
    return this.holds.size;
  }
}
