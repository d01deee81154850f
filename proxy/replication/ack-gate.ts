// When a write on this shard counts as done: after the local storage node made it durable, the
// range's replicas must confirm they applied it, as many as `replication.ack` asks (all copies,
// a majority of copies with the primary counted, or the primary alone). Otherwise the write is
// answered 503 REPLICATION_UNAVAILABLE naming the missing copies, never as done.
import { ThemisError } from '../../src/errors.js';
import { parseKey, tokenOf } from '../../src/urn/urn.js';
import type { TopologySource } from '../control/topology-source.js';
import type { Topology } from '../../src/topology/topology.js';
import { rangesDigest, replicaRanges } from '../../src/topology/replica-ranges.js';
import type { LocalHead } from './local-head.js';
import type { ReplicaPositions } from './positions.js';
import type { Fence } from '../failover/fence.js';

export type AckMode = 'all' | 'majority' | 'primary';

/** How long a write waits for this shard to take a term nobody holds (a new group's first term, an election). */
export const TERM_WAIT_MS = 2000;

/** How often a write waiting for confirmations looks whether another topology came into force. */
const RECHECK_MS = 250;

export function copiesNeeded(mode: AckMode, copies: number): number {
  if (mode === 'primary') return 1;
  if (mode === 'all') return copies;
  return Math.floor(copies / 2) + 1;
}

/** Failover's fencing: which term a key's write needs, and whether this shard holds it now. */
export interface Fencing {
  /** By the key's token (parsed once per write, by the gate). */
  fenceOf(token: bigint): Fence | undefined;
  holds(f: Fence): boolean;
  /**
   * Resolves true once this shard holds the term of `token`'s group, false after `ms` or as soon
   * as another shard holds it. A group that nobody acts for yet — new after a range move, or
   * in an election — is waited for, so that clients see a pause instead of an error.
   */
  untilHeld?(token: bigint, ms: number): Promise<boolean>;
}

export interface AckGateDeps {
  self: string;
  topology: TopologySource;
  positions: Pick<ReplicaPositions, 'waitFor'>;
  head: LocalHead;
  mode: AckMode;
  timeoutMs: number;
  /** Each write refused for want of confirmations. */
  onRefused?: () => void;
  /** With failover on: a write in a replicated group is acknowledged only by its acting primary. */
  fencing?: Fencing;
}

/** What a write to one key must wait for, fixed by the topology it was routed by. */
export interface Pending {
  readonly key: string;
  readonly topo: Topology;
  readonly replicas: readonly string[];
  /** Replica confirmations needed (the primary itself is the first copy). */
  readonly needed: number;
  /** The term this shard must still hold when the write is answered (failover on, replicated range). */
  readonly fence?: Fence;
}

export class AckGate {
  constructor(private readonly d: AckGateDeps) {}

  /** Before `plan`: waits (bounded) while the key's group has no acting primary yet, or this shard is about to act for it. */
  async settled(key: string): Promise<void> {
    const f = this.d.fencing;
    if (!f?.untilHeld) return;
    const token = tokenOf(parseKey(key));
    const fence = f.fenceOf(token);
    if (!fence || f.holds(fence)) return;
    await f.untilHeld(token, TERM_WAIT_MS);
  }

  /** What a write to `key` routed by `topo` will need; `needed` 0: done once the primary holds it. */
  plan(key: string, topo: Topology): Pending {
    const token = tokenOf(parseKey(key));
    const replicas = topo.rangeOf(token).replicas;
    const fence = this.d.fencing?.fenceOf(token);
    // Not applied at all unless this shard is the acting primary now: a fenced write stays off the node.
    if (fence && !this.d.fencing!.holds(fence)) throw notActing(this.d.self);
    return { key, topo, replicas, needed: copiesNeeded(this.d.mode, replicas.length + 1) - 1, ...(fence ? { fence } : {}) };
  }

  /**
   * Resolves once the write just made on this shard counts as done; throws otherwise. A
   * topology applied while it waits (a range move's cutover) changes which copies confirm it:
   * a replica whose ranges changed follows them with a new follower (a new checkpoint, whose
   * full copy includes this write), so the wait goes on for the copies of the topology now in force.
   */
  async settle(p: Pending): Promise<void> {
    if (p.needed <= 0) return this.fenced(p);
    const seq = await this.d.head.after();
    const token = tokenOf(parseKey(p.key));
    const deadline = performance.now() + this.d.timeoutMs;
    let topo = p.topo;
    let replicas = p.replicas;
    let needed = p.needed;
    let holding: string[] = [];
    const digestsOf = (t: Topology, rs: readonly string[]) => new Map(rs.map((r) => [r, rangesDigest(replicaRanges(t, this.d.self, r))]));
    let digests = digestsOf(topo, replicas);
    for (;;) {
      holding = await this.d.positions.waitFor(digests, needed, seq, Math.max(0, Math.min(deadline - performance.now(), RECHECK_MS)));
      if (holding.length >= needed || performance.now() >= deadline) break;
      const now = this.d.topology.current();
      if (now === topo) continue;
      if (now.ownerOfKey(p.key) !== this.d.self) break; // moved away: not this shard's to confirm any more
      topo = now;
      replicas = now.rangeOf(token).replicas;
      needed = copiesNeeded(this.d.mode, replicas.length + 1) - 1;
      digests = digestsOf(topo, replicas);
    }
    // The range may have moved away while the write waited: then it is not this shard's to confirm.
    const owner = this.d.topology.current().ownerOfKey(p.key);
    if (holding.length >= needed && owner === this.d.self) return this.fenced(p);
    this.d.onRefused?.();
    if (owner !== this.d.self) {
      throw new ThemisError('REPLICATION_UNAVAILABLE', `the key moved to ${owner} while its write waited for confirmations on ${this.d.self}; repeat it`, { missing_copies: [...replicas] });
    }
    const missing = replicas.filter((r) => !holding.includes(r));
    throw new ThemisError('REPLICATION_UNAVAILABLE', `the write is durable on ${this.d.self} but only ${holding.length + 1} of ${needed + 1} required copies confirmed it within ${this.d.timeoutMs} ms; missing: ${missing.join(', ')}`, {
      missing_copies: missing,
    });
  }

  /** Checked after the confirmations: a primary whose lease lapsed meanwhile (paused, cut off) answers nothing as done. */
  private fenced(p: Pending): void {
    if (!p.fence || this.d.fencing!.holds(p.fence)) return;
    this.d.onRefused?.();
    throw notActing(this.d.self, true);
  }
}

function notActing(self: string, applied = false): ThemisError {
  return new ThemisError(
    'FAILOVER_IN_PROGRESS',
    applied
      ? `${self} lost its term as acting primary of this key's range while the write waited (a failover may follow); the write is not reported as done: repeat it`
      : `${self} is not (or no longer certainly) the acting primary of this key's range: a failover is in progress; repeat the request`,
  );
}
