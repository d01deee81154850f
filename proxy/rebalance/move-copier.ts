// The target side of an accepted rebalance operation, its first two phases: copy the moving
// ranges from each source's storage node (through the mesh, capability `replicate`), then follow
// the source's change feed from the copy's sequence number — the change-feed follower replication
// uses (proxy/feed/follower.ts), with its own checkpoint, so a restarted sidecar resumes where it
// stopped instead of copying again. Progress goes to rebalance-status/{op}/{shard} about once a
// second. The copied keys stay invisible until cutover: scatter-gather filters every node's rows
// to what it owns while a move is in progress. An abort deletes them again.
import type { Logger } from '../../src/log.js';
import type { RebalanceOperation } from '../../src/rebalance/operation.js';
import type { Clock } from '../../src/runtime.js';
import type { CheckpointStore } from '../feed/checkpoints.js';
import { FeedFollower } from '../feed/follower.js';
import { NodeClient } from '../feed/node-client.js';
import type { ShardResolver } from '../resolver.js';
import { MOVE_HEADER } from './cutover.js';
import { rangesOf, type RebalanceStatus } from './status.js';
import { servedBy, sweep } from './sweep.js';
import type { Topology } from '../../src/topology/topology.js';

export interface MoveCopierDeps {
  self: string;
  resolver: ShardResolver;
  checkpoints: CheckpointStore;
  clock: Clock;
  log: Logger;
  longPollMs: number;
  status: RebalanceStatus;
  /** Ranges this shard is deleting now (a finished move's cleanup): a copy into them waits until it is over. */
  busyRanges?: () => readonly { start: bigint; end: bigint }[];
  /** The signed topology in force (what an aborted move's copies are checked against before they go). */
  topology: () => Topology;
}

interface Copy {
  source: string;
  follower: FeedFollower;
  copied: number;
  fullCopies: number;
  /** At the last progress report (rates and ETA are taken between two). */
  last?: { at: number; copied: number; lag: number | null };
}

const STATUS_EVERY_MS = 1000;

/** Keys copied from one source (live during a full copy), and how many of its changes are still to read. */
function counts(c: Copy): { copied: number; lag: number | null } {
  const f = c.follower;
  return {
    copied: f.state === 'copying' ? f.copyRepaired : c.copied,
    lag: f.latest >= 0 && f.position >= 0 ? Math.max(0, f.latest - f.position) : null,
  };
}

export class MoveCopier {
  private readonly running = new Map<string, { op: RebalanceOperation; copies: Copy[]; timer: NodeJS.Timeout }>();
  private readonly waiting = new Map<string, { op: RebalanceOperation; timer: NodeJS.Timeout }>();
  /** Copies of operations cut over in the last minute, for `handOver` (the cutover may finish them first). */
  private readonly finished = new Map<string, { op: RebalanceOperation; copies: Copy[]; at: number }>();

  /** The ranges moves in progress (or waiting to start) bring to this shard. */
  incoming(): { start: bigint; end: bigint }[] {
    return [...this.running.values(), ...this.waiting.values()].flatMap((r) => r.op.moves.filter((m) => m.to === this.d.self));
  }

  /** Each source's endpoint as last seen in a topology: a removed shard's stays reachable for its last requests (the registration's removal). */
  private readonly endpoints = new Map<string, string>();

  constructor(private readonly d: MoveCopierDeps) {}

  private endpointOf(shard: string): string | undefined {
    const now = this.d.topology().shards[shard]?.endpoint;
    if (now) this.endpoints.set(shard, now);
    return now ?? this.endpoints.get(shard);
  }

  /** Starts (or resumes) copying what `op` moves to this shard; a no-op for an operation already running. */
  start(op: RebalanceOperation): void {
    if (this.running.has(op.id) || this.waiting.has(op.id)) return;
    const mine = op.moves.filter((m) => m.to === this.d.self);
    const busy = this.d.busyRanges?.() ?? [];
    if (mine.some((m) => busy.some((b) => m.start <= b.end && b.start <= m.end))) {
      // The cleanup of an earlier move out of these tokens is still deleting: copy after it.
      const timer = setTimeout(() => {
        this.waiting.delete(op.id);
        this.start(op);
      }, 500);
      timer.unref();
      this.waiting.set(op.id, { op, timer });
      return;
    }
    const sources = [...new Set(mine.map((m) => m.from))];
    if (sources.length === 0) return;
    const copies: Copy[] = sources.map((source) => {
      const c: Copy = { source, copied: 0, fullCopies: 0, follower: undefined as unknown as FeedFollower };
      c.follower = new FeedFollower({
        id: `move-${op.id}-${source}`,
        registerAs: `${this.d.self}.move-${op.id}`,
        sourceShard: source,
        source: new NodeClient(() => this.d.resolver.resolve(source, this.endpointOf(source)).upstream),
        target: new NodeClient(this.d.resolver.local),
        ranges: rangesOf(mine.filter((m) => m.from === source)),
        checkpoints: this.d.checkpoints,
        clock: this.d.clock,
        log: this.d.log,
        longPollMs: this.d.longPollMs,
        // The source's cutover waits for this position (MovePositions).
        announce: (position): Record<string, string> => (position >= 0 ? { [MOVE_HEADER]: `${position} ${op.id}` } : {}),
        onFullCopy: () => c.fullCopies++,
        onCopied: (same, repaired) => (c.copied = same + repaired),
      });
      c.follower.start();
      return c;
    });
    const timer = setInterval(() => void this.report(op.id), STATUS_EVERY_MS);
    timer.unref();
    this.running.set(op.id, { op, copies, timer });
    this.d.log.info({ op: op.id, sources }, 'copying the ranges a rebalance operation moves here');
  }

  /**
   * For a replica follower of `source` starting after a cutover: the copies this shard made from
   * `source` for operations now in force hold everything of their tokens up to their followers'
   * positions, so the replica follower may go on from there instead of copying those tokens
   * again. The move followers are stopped first (two followers must never write the same keys);
   * `finish` still does the rest. Undefined when there is none, or one has no position yet.
   */
  async handOver(source: string): Promise<{ seq: number; spans: { start: bigint; end: bigint }[] } | undefined> {
    const epoch = this.d.topology().epoch;
    const now = performance.now();
    for (const [id, f] of this.finished) if (now - f.at > 60_000) this.finished.delete(id);
    const mine = [...this.running.values(), ...this.finished.values()].filter((r) => r.op.next.epoch <= epoch).flatMap((r) => r.copies.filter((c) => c.source === source).map((c) => ({ r, c })));
    if (mine.length === 0) return undefined;
    await Promise.allSettled(mine.map(({ c }) => c.follower.stop()));
    if (mine.some(({ c }) => c.follower.position < 0)) return undefined;
    const spans = mine.flatMap(({ r }) => r.op.moves.filter((m) => m.to === this.d.self && m.from === source).map((m) => ({ start: m.start, end: m.end })));
    return { seq: Math.min(...mine.map(({ c }) => c.follower.position)), spans };
  }

  /** This shard's progress on `opId`, as it reports it. */
  progress(opId: string): Record<string, unknown> | undefined {
    const r = this.running.get(opId);
    if (!r) return undefined;
    const following = r.copies.every((c) => c.follower.state === 'following' && c.follower.position >= 0);
    const now = performance.now();
    return {
      phase: following ? 'catching-up' : 'copying',
      sources: Object.fromEntries(r.copies.map((c) => {
        const f = c.follower;
        const { copied, lag } = counts(c);
        // Rates since the last report: keys copied, and how fast the lag shrinks (changes/s).
        const dt = c.last ? (now - c.last.at) / 1000 : 0;
        const keysPerS = dt > 0 ? Math.max(0, (copied - c.last!.copied) / dt) : null;
        const closing = dt > 0 && lag !== null && c.last!.lag !== null ? (c.last!.lag - lag) / dt : null;
        c.last = { at: now, copied, lag };
        return [c.source, {
          state: f.state, position: f.position, latest: f.latest, lag_changes: lag,
          keys_copied: copied, keys_per_second: keysPerS === null ? null : Math.round(keysPerS), full_copies: c.fullCopies,
          eta_seconds: lag === 0 ? 0 : lag !== null && closing !== null && closing > 0 ? Math.round(lag / closing) : null,
        }];
      })),
    };
  }


  /** Every operation copying here, for metrics: by operation and source, keys copied and lag. */
  copies(): { op: string; source: string; keys: number; lag: number | null }[] {
    return [...this.running].flatMap(([op, r]) => r.copies.map((c) => {
      const { copied, lag } = counts(c);
      return { op, source: c.source, keys: copied, lag };
    }));
  }

  private async report(opId: string): Promise<void> {
    const p = this.progress(opId);
    if (!p) return;
    await this.d.status.write(opId, p);
  }

  /** The operation was cut over: this shard owns the ranges now; the followers and their registrations go. */
  async finish(opId: string): Promise<void> {
    const r = this.running.get(opId);
    if (!r) return;
    this.running.delete(opId);
    this.finished.set(opId, { op: r.op, copies: r.copies, at: performance.now() });
    clearInterval(r.timer);
    await Promise.allSettled(r.copies.map(async (c) => {
      await c.follower.stop();
      this.d.checkpoints.drop(`move-${opId}-${c.source}`);
      await c.follower.unregister();
    }));
    // A shard that is also a source of the operation reports its own cutover and cleanup instead.
    if (!r.op.moves.some((m) => m.from === this.d.self)) await this.d.status.write(opId, { phase: 'received' });
    this.d.log.info({ op: opId }, 'rebalance operation cut over: this shard owns its ranges now');
  }

  /**
   * After a restart, for an operation cut over while this sidecar was down: what `finish` would
   * have done — the moves' checkpoints go and the registrations at the sources are removed.
   */
  async forget(op: RebalanceOperation): Promise<void> {
    await this.forgetCopies(op);
    if (!op.moves.some((m) => m.from === this.d.self)) await this.d.status.write(op.id, { phase: 'received' });
  }

  /**
   * The operation was aborted before its cutover, or went stale (another topology came first):
   * copying stops, the registrations at the
   * sources go, and the keys copied here that this shard does not serve are deleted (status
   * `aborting`, then `aborted`; scatter-gather filters rows by ownership until then).
   */
  async abort(op: RebalanceOperation, outcome: 'aborted' | 'stale' = 'aborted'): Promise<void> {
    const mine = op.moves.filter((m) => m.to === this.d.self);
    if (mine.length === 0) return;
    const w = this.waiting.get(op.id);
    if (w) clearTimeout(w.timer);
    this.waiting.delete(op.id);
    await this.stopOp(op.id);
    await this.d.status.write(op.id, { phase: 'aborting' });
    await this.forgetCopies(op);
    for (;;) {
      try {
        const keep = servedBy(this.d.topology(), this.d.self, () => this.incoming());
        const deleted = await sweep(new NodeClient(this.d.resolver.local), rangesOf(mine), keep);
        const why = outcome === 'stale' ? { reason: 'stale_epoch', message: 'another topology came into force before its cutover' } : {};
        await this.d.status.write(op.id, { phase: outcome, ...why, keys_deleted: deleted });
        this.d.log.info({ op: op.id, deleted, outcome }, 'rebalance operation ended without cutover: the copied keys are deleted');
        return;
      } catch (e) {
        this.d.log.warn({ op: op.id, err: (e as Error).message }, 'cannot delete the keys an operation that ended without cutover copied; retrying');
        await new Promise((r) => setTimeout(r, 2000));
      }
    }
  }

  private async forgetCopies(op: RebalanceOperation): Promise<void> {
    const sources = [...new Set(op.moves.filter((m) => m.to === this.d.self).map((m) => m.from))];
    await Promise.allSettled(sources.map(async (source) => {
      this.d.checkpoints.drop(`move-${op.id}-${source}`);
      await new NodeClient(() => this.d.resolver.resolve(source, this.endpointOf(source)).upstream).register(`${this.d.self}.move-${op.id}`, null);
    }));
  }

  /** Stops copying for `opId` (it went stale); its checkpoints stay until cleanup is built. */
  async stopOp(opId: string): Promise<void> {
    const r = this.running.get(opId);
    if (!r) return;
    this.running.delete(opId);
    clearInterval(r.timer);
    await Promise.allSettled(r.copies.map((c) => c.follower.stop()));
  }

  async stop(): Promise<void> {
    for (const w of this.waiting.values()) clearTimeout(w.timer);
    this.waiting.clear();
    for (const r of this.running.values()) clearInterval(r.timer);
    await Promise.allSettled([...this.running.values()].flatMap((r) => r.copies.map((c) => c.follower.stop())));
    this.running.clear();
  }
}
