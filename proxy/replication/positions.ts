// How far each replica has applied this shard's change feed, as the replicas announce it with
// every feed request they make (x-themis-replica-applied: "SEQ RANGES-DIGEST"); a position
// counts only for the ranges its digest names. Writers wait here for enough replicas.
import type { Clock } from '../../src/runtime.js';
import type { LocalHead } from './local-head.js';

export const APPLIED_HEADER = 'x-themis-replica-applied';

interface Position {
  seq: number;
  digest: string;
  at: number;
}

interface Waiter {
  check: () => boolean;
  done: () => void;
}

export class ReplicaPositions {
  private readonly positions = new Map<string, Position>();
  private readonly waiters = new Set<Waiter>();

  /**
   * `head`: this shard's storage node's newest sequence number. A position beyond it proves
   * nothing (the replica applied another history: this node lost or replaced its data), so it
   * is counted only once the head is at least as high.
   */
  constructor(
    private readonly clock: Clock,
    private readonly head: LocalHead,
  ) {
    head.onLowered((h) => {
      for (const [r, p] of this.positions) if (p.seq > h) this.positions.delete(r);
    });
  }

  /** Parses and records a replica's announcement; malformed ones, or ones beyond this node's history, are ignored. */
  record(replica: string, header: string | string[] | undefined): void {
    if (typeof header !== 'string') return;
    const m = /^(\d{1,16}) ([0-9a-f]{16})$/.exec(header);
    if (!m || !Number.isSafeInteger(Number(m[1]))) return;
    const seq = Number(m[1]);
    if (seq <= this.head.latest) return this.accept(replica, seq, m[2]!);
    // Check against a fresh head read (coalesced with the writers' reads).
    this.head.after().then(
      (h) => {
        if (seq <= h) this.accept(replica, seq, m[2]!);
      },
      () => undefined, // the node did not answer: the announcement counts for nothing
    );
  }

  private accept(replica: string, seq: number, digest: string): void {
    const prev = this.positions.get(replica);
    // A replica that started over (a full copy) may announce a lower position: it is the truth.
    this.positions.set(replica, { seq, digest, at: this.clock.now() });
    if (!prev || seq > prev.seq || prev.digest !== digest) for (const w of [...this.waiters]) if (w.check()) w.done();
  }

  /** The replica's position for the ranges `digest` names, or -1. */
  applied(replica: string, digest: string): number {
    const p = this.positions.get(replica);
    return p && p.digest === digest ? p.seq : -1;
  }

  /** When the replica last announced itself (clock ms), or undefined. */
  lastSeen(replica: string): number | undefined {
    return this.positions.get(replica)?.at;
  }

  /**
   * Resolves with the replicas that hold `seq` once `needed` of them do, or with those that do
   * (fewer) after `timeoutMs`. `replicas` maps each replica to the digest of its ranges.
   */
  waitFor(replicas: ReadonlyMap<string, string>, needed: number, seq: number, timeoutMs: number): Promise<string[]> {
    const holding = () => [...replicas].filter(([r, d]) => this.applied(r, d) >= seq).map(([r]) => r);
    if (holding().length >= needed) return Promise.resolve(holding());
    return new Promise((resolve) => {
      const w: Waiter = {
        check: () => holding().length >= needed,
        done: () => {
          clearTimeout(timer);
          this.waiters.delete(w);
          resolve(holding());
        },
      };
      const timer = setTimeout(w.done, timeoutMs);
      this.waiters.add(w);
    });
  }
}
