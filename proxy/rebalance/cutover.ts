// The source side of an accepted rebalance operation: its cutover. Once each of its targets
// follows its feed closely (a target announces its position on every feed request,
// x-themis-move-applied: "SEQ OPID"), the source
//   1. holds new writes to the moving ranges (they wait, they are not refused) and lets the ones
//      already past the hold finish;
//   2. reads its storage node's head and waits until every target has applied up to it;
//   3. verifies: every key of the moving ranges holds the same value on both nodes (the merge-join
//      of proxy/feed/range-diff.ts, Vitess's VDiff in spirit), in two steps so that the hold stays
//      short: the full comparison runs *before* the hold, while writes go on, and notes the keys
//      that differed (a write in flight, or a real divergence); inside the hold, once the target
//      has applied everything, only those keys are compared again. A difference then aborts;
//      nothing is cut over;
//   4. publishes the next epoch, pre-signed by the operator inside the operation, with a
//      compare-and-swap on the topology key (a concurrent operation's cutover makes ours stale,
//      a signed abort written before it stops it); with several sources, only once every source
//      holds (cutover-barrier.ts), and whichever is the last to hold publishes;
//   5. applies it itself and releases the held writes, which go on to the new owner.
// Any step that does not finish in time releases the hold and tries again later.
import type { Etcd3 } from 'etcd3';
import { etcdKeys } from '../../src/control/etcd-keys.js';
import { readSignedTopology } from '../../src/control/topology-store.js';
import type { AuditLog } from '../../src/audit/audit-log.js';
import type { Logger } from '../../src/log.js';
import type { RebalanceOperation } from '../../src/rebalance/operation.js';
import { parseTopology } from '../../src/topology/document.js';
import type { TopologySource } from '../control/topology-source.js';
import { diffRanges } from '../feed/range-diff.js';
import { NodeClient } from '../feed/node-client.js';
import type { LocalHead } from '../replication/local-head.js';
import type { ShardResolver } from '../resolver.js';
import type { WriteHold } from './write-hold.js';
import { CutoverBarrier } from './cutover-barrier.js';
import { sameAssignment, type Move } from '../../src/rebalance/moves.js';
import { rangesOf, type RebalanceStatus } from './status.js';
import { servedBy, sweep } from './sweep.js';

export const MOVE_HEADER = 'x-themis-move-applied';

/** Where each move target is in this shard's feed, by operation id. */
export class MovePositions {
  /** By "opId shard" (an operation may have several targets). */
  private readonly positions = new Map<string, number>();
  private readonly waiters = new Set<() => void>();

  constructor(private readonly head: LocalHead) {}

  record(shard: string, header: string | string[] | undefined): void {
    if (typeof header !== 'string') return;
    const m = /^(\d{1,16}) ([0-9a-f-]{36})$/.exec(header);
    if (!m) return;
    const seq = Number(m[1]);
    if (seq <= this.head.latest) return this.set(`${m[2]!} ${shard}`, seq);
    // Beyond the last head read (writes that need no confirmation do not read it): read it
    // again. A position beyond this node's history proves nothing and is dropped.
    void this.head.after().then((h) => (seq <= h ? this.set(`${m[2]!} ${shard}`, seq) : undefined), () => undefined);
  }

  private set(key: string, seq: number): void {
    if (seq <= (this.positions.get(key) ?? -1)) return;
    this.positions.set(key, seq);
    for (const w of [...this.waiters]) w();
  }

  of(opId: string, shard: string): number {
    return this.positions.get(`${opId} ${shard}`) ?? -1;
  }

  /** Resolves true once `shard` announced `seq` or more for `opId`, false after `ms`. */
  waitFor(opId: string, shard: string, seq: number, ms: number): Promise<boolean> {
    if (this.of(opId, shard) >= seq) return Promise.resolve(true);
    return new Promise((resolve) => {
      const check = () => {
        if (this.of(opId, shard) < seq) return;
        done(true);
      };
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(ok);
      };
      const timer = setTimeout(() => done(false), ms);
      this.waiters.add(check);
    });
  }
}

export interface CutoverDeps {
  etcd: Etcd3;
  cluster: string;
  self: string;
  signed: TopologySource;
  resolver: ShardResolver;
  head: LocalHead;
  positions: MovePositions;
  /** This process's WriteHold, or with workers the hub that holds in every worker (proxy/cluster/worker-hub.ts). */
  writes: Pick<WriteHold, 'hold'>;
  audit: AuditLog;
  log: Logger;
  status: RebalanceStatus;
  /** How far (changes) the target may be behind before a cutover is tried (default 250: what it applies in well under the hold limit). */
  maxLag?: number;
  /** How long the hold may last before the attempt is given up and writes released (default 1000 ms). */
  holdLimitMs?: number;
  /** After a cutover, how long the source keeps the moved keys before it deletes them (in-flight reads). */
  cleanupDelayMs?: number;
  /** Ranges this shard is receiving in moves in progress: never cleaned up (a move back may be copying them). */
  incoming?: () => readonly { start: bigint; end: bigint }[];
  /** How each cutover ended here, and its hold (for metrics). */
  onOutcome?: (outcome: 'done' | 'failed', holdMs?: number) => void;
}

/** The full comparison before a hold, kept a little while (another source's hold should not wait for a second scan). */
interface Scan {
  at: number;
  same: number;
  suspects: Map<string, Set<string>>;
}

const SCAN_REUSE_MS = 1500;
/** A target further behind than this is waited for up to the head (no feed read inside the hold). */
const MAX_LAG_SCAN = 2000;

export class Cutover {
  private readonly running = new Map<string, { timer: NodeJS.Timeout; watch?: { close(): void } }>();
  private readonly busy = new Set<string>();
  private readonly scans = new Map<string, Scan>();
  /** Operations for which this source said `caught-up` (with several sources). */
  private readonly caughtUp = new Set<string>();
  /** The operation whose next topology this source itself wrote last. */
  private published: string | undefined;
  private readonly barrier: CutoverBarrier;
  /** Ranges being cleaned up now, by operation: a move into them waits until the cleanup is over. */
  private readonly cleaning = new Map<string, readonly { start: bigint; end: bigint }[]>();

  cleaningRanges(): { start: bigint; end: bigint }[] {
    return [...this.cleaning.values()].flat();
  }

  constructor(private readonly d: CutoverDeps) {
    this.barrier = new CutoverBarrier(d.etcd, d.cluster, d.self, d.log);
  }

  /** Before this sidecar serves: whatever an earlier run of it said to other sources is taken back. */
  async forgetEarlierRun(): Promise<void> {
    await this.barrier.forgetOwn().catch((e: Error) => this.d.log.warn({ err: e.message }, 'cannot clear this shard\'s earlier cutover keys (they expire with their lease)'));
  }

  /** Starts watching `op` for the moment to cut over, if this shard is one of its sources. */
  start(op: RebalanceOperation): void {
    if (!op.moves.some((m) => m.from === this.d.self) || this.running.has(op.id)) return;
    const timer = setInterval(() => void this.tryCutover(op), 200);
    timer.unref();
    const sources = new Set(op.moves.map((m) => m.from));
    // Several sources: another's word (the last one caught up, or one holds) is the moment to try.
    const watch = sources.size > 1 ? this.barrier.onOthers(op.id, () => void this.tryCutover(op)) : undefined;
    this.running.set(op.id, { timer, ...(watch ? { watch } : {}) });
  }

  stop(opId?: string): void {
    for (const [id, r] of this.running) {
      if (opId && id !== opId) continue;
      clearInterval(r.timer);
      r.watch?.close();
      this.running.delete(id);
      this.scans.delete(id);
      this.caughtUp.delete(id);
      void this.barrier.leave(id);
    }
  }

  close(): void {
    this.stop();
    this.barrier.close();
  }

  /** Compares this shard's copy of what it gives each target with the target's (before any hold). */
  private async scan(op: RebalanceOperation, mine: readonly Move[], targets: readonly string[]): Promise<Scan> {
    const kept = this.scans.get(op.id);
    if (kept && performance.now() - kept.at < SCAN_REUSE_MS) return kept;
    const local = new NodeClient(this.d.resolver.local);
    const suspects = new Map<string, Set<string>>();
    let same = 0;
    for (const target of targets) {
      const remote = new NodeClient(() => this.remote(op, target));
      const set = new Set<string>();
      const r = await diffRanges(local, remote, rangesOf(mine.filter((m) => m.to === target)), async (d) => void set.add(d.key));
      same += r.same + r.different;
      suspects.set(target, set);
    }
    const scan = { at: performance.now(), same, suspects };
    this.scans.set(op.id, scan);
    return scan;
  }

  /** A target's sidecar: by the topology in force, or (a shard being added) by the operation's next topology. */
  private remote(op: RebalanceOperation, target: string) {
    return this.d.resolver.resolve(target, op.next.shards[target]?.endpoint).upstream;
  }

  private async tryCutover(op: RebalanceOperation): Promise<void> {
    if (this.busy.has(op.id) || !this.running.has(op.id)) return;
    if (this.d.signed.current().epoch !== op.baseEpoch) return this.stop(op.id);
    this.busy.add(op.id);
    let release: (() => void) | undefined;
    /** The topology's revision when this source said `held` (several sources): taking it back needs the same. */
    let heldAt: string | undefined;
    try {
      if (op.cutover === 'manual') {
        const go = await this.d.etcd.get(etcdKeys(this.d.cluster).rebalanceSwitch(op.id)).string().catch(() => null);
        if (!go) return;
      }
      const mine = op.moves.filter((m) => m.from === this.d.self);
      const targets = [...new Set(mine.map((m) => m.to))];
      const sources = [...new Set(op.moves.map((m) => m.from))];
      const maxLag = this.d.maxLag ?? 250;
      const head = await this.d.head.after();
      for (const target of targets) {
        const at = this.d.positions.of(op.id, target);
        if (at < 0 || head - at > maxLag) return; // still copying, or too far behind
      }
      // The full comparison, before the hold: keys that differ now are compared again inside it.
      const scan = await this.scan(op, mine, targets);
      if ([...scan.suspects.values()].reduce((n, s) => n + s.size, 0) > maxLag) return; // too much churn to settle inside a short hold
      if (sources.length > 1) {
        // Said once per operation (or again after a hold given up): each saying wakes the others.
        if (!this.caughtUp.has(op.id)) {
          await this.barrier.say(op.id, 'caught-up');
          this.caughtUp.add(op.id);
        }
        const missing = await this.barrier.notCaughtUp(op.id, sources);
        if (missing.includes(this.d.self)) this.caughtUp.delete(op.id); // its lease went: say it again next time
        if (missing.length) return;
      }
      // The topology key as it is now: the publish compares against it (one etcd round trip
      // fewer inside the hold; a change in between makes the operation stale, as it should).
      const stored = await readSignedTopology(this.d.etcd, etcdKeys(this.d.cluster).topology);
      if (!stored?.signed || parseTopology(stored.signed.document).epoch !== op.baseEpoch) return;
      // The next topology's signature is checked now, not inside the hold.
      await this.d.signed.prepare?.(JSON.stringify({ document: op.nextDocument, cms: op.nextCms }));
      const limit = this.d.holdLimitMs ?? 1000;
      const t0 = performance.now();
      const left = () => Math.max(1, limit - (performance.now() - t0));
      const hold = this.d.writes.hold(mine);
      release = hold.release;
      const deadline = (ms: number) => new Promise<false>((r) => setTimeout(() => r(false), ms));
      if ((await Promise.race([hold.drained.then(() => true), deadline(limit)])) === false) throw new Retry('writes in flight did not finish');
      const phases: Record<string, number> = {};
      let mark = t0;
      const lap = (name: string) => {
        const now = performance.now();
        phases[name] = Math.round(now - mark);
        mark = now;
      };
      lap('drain_ms');
      const h = await this.d.head.after();
      for (const target of targets) {
        // The target needs every change of *its* tokens up to h, not the others' (they go on
        // during the hold): the last such change is what it must have applied.
        const need = await this.lastChangeIn(mine.filter((m) => m.to === target), this.d.positions.of(op.id, target), h);
        if (!(await this.d.positions.waitFor(op.id, target, need, left()))) throw new Retry(`${target} did not reach ${need}`);
      }
      lap('catch_up_ms');
      const local = new NodeClient(this.d.resolver.local);
      let differing = 0;
      let example = '';
      for (const [target, keys] of scan.suspects) {
        const remote = new NodeClient(() => this.remote(op, target));
        for (const k of keys) {
          const [a, b] = await Promise.all([local.get(k), remote.get(k)]);
          if (a === b) continue;
          differing++;
          example ||= `${k}: ${this.d.self} holds ${a === undefined ? 'nothing' : a.slice(0, 60)}, ${target} ${b === undefined ? 'nothing' : b.slice(0, 60)}`;
        }
      }
      const verified = scan.same - differing;
      lap('verify_ms');
      if (differing > 0) {
        this.stop(op.id);
        this.d.onOutcome?.('failed');
        await this.status(op.id, { phase: 'failed', reason: 'verify_mismatch', message: `${differing} of ${scan.same} keys differ between ${this.d.self} and ${targets.join(', ')} at ${h} (e.g. ${example}); nothing was cut over` });
        this.d.log.error({ op: op.id, different: differing }, 'rebalance verification failed; not cutting over');
        return;
      }
      const outcome = await this.publish(op, sources, stored.revision, t0, limit, () => (heldAt = stored.revision));
      if (outcome === 'retry') throw new Retry('not every source held in time');
      lap('publish_ms');
      // Route by the new topology before the held writes go on: the one this source published
      // is applied at once (verified as the watch's would be); another source's comes by the
      // watch within milliseconds, and a re-read makes sure of it.
      if (outcome === 'published' && this.published === op.id) await this.d.signed.offer?.(JSON.stringify({ document: op.nextDocument, cms: op.nextCms }));
      lap('offer_ms');
      for (let i = 0; i < 40 && this.d.signed.current().epoch === op.baseEpoch; i++) await new Promise((r) => setTimeout(r, 5));
      for (let i = 0; i < 100 && this.d.signed.current().epoch === op.baseEpoch; i++) await this.d.signed.refresh();
      const now = this.d.signed.current();
      lap('apply_ms');
      const pauseMs = Math.round(performance.now() - t0);
      release();
      release = undefined;
      this.stop(op.id);
      if (outcome === 'aborted') return; // the abort's watcher records it
      if (now.epoch !== op.next.epoch || !sameAssignment(now, op.next)) {
        await this.status(op.id, { phase: 'stale', reason: 'stale_epoch', message: 'the topology changed before the cutover (another operation or publish came first)' });
        return;
      }
      this.d.onOutcome?.('done', pauseMs);
      this.d.audit.record({ event: 'REBALANCE_COMPLETED', op_id: op.id, epoch: op.next.epoch, keys_verified: verified, pause_ms: pauseMs, hold: phases });
      this.d.log.info({ op: op.id, epoch: op.next.epoch, keys: verified, pauseMs, ...phases }, 'rebalance cut over');
      await this.status(op.id, { phase: 'done', epoch: op.next.epoch, keys_verified: verified, pause_ms: pauseMs, hold: phases });
      setTimeout(() => void this.cleanup(op, verified, pauseMs), this.d.cleanupDelayMs ?? 5000).unref();
    } catch (e) {
      if (!(e instanceof Retry)) this.d.log.warn({ op: op.id, err: (e as Error).message }, 'cutover attempt failed; trying again');
      else this.d.log.warn({ op: op.id, why: e.message }, 'cutover attempt given up; writes released, trying again');
      this.scans.delete(op.id);
      if (heldAt && release) {
        // `held` may have let another source publish: only writes that will route by it may go on.
        if (!(await this.barrier.unhold(op.id, heldAt).catch(() => false))) await this.d.signed.refresh().catch(() => undefined);
      }
    } finally {
      release?.();
      this.busy.delete(op.id);
    }
  }

  /**
   * The sequence of the last change to `moves`' tokens after `from` and up to `head` in this
   * shard's feed; `from` when there is none (the target that announced `from` has them all).
   * Read locally, at most MAX_LAG_SCAN changes; past that, `head` itself.
   */
  private async lastChangeIn(moves: readonly Move[], from: number, head: number): Promise<number> {
    if (from < 0) return head;
    if (from >= head) return from;
    if (head - from > MAX_LAG_SCAN) return head;
    const ranges = rangesOf(moves);
    const local = new NodeClient(this.d.resolver.local);
    let last = from;
    let at = from;
    while (at < head) {
      const page = await local.changes(at, 1000, 0);
      for (const c of page.changes) if (c.sequence <= head && ranges.hasKey(c.key)) last = Math.max(last, c.sequence);
      if (page.lastSeq <= at) break;
      at = page.lastSeq;
    }
    return last;
  }

  /**
   * Publishes the operation's pre-signed next topology: only if the topology in etcd is still its
   * base epoch, no abort was written, and (several sources) every source holds. 'published' also
   * when another source published it; 'stale' when another topology came first.
   */
  private async publish(op: RebalanceOperation, sources: readonly string[], revision: string, t0: number, limit: number, saidHeld: () => void): Promise<'published' | 'stale' | 'aborted' | 'retry'> {
    const keys = etcdKeys(this.d.cluster);
    const value = JSON.stringify({ document: op.nextDocument, cms: op.nextCms });
    const others = sources.filter((s) => s !== this.d.self);
    if (others.length === 0) {
      if (await this.barrier.publish(op.id, [], revision, value)) {
        this.published = op.id;
        return 'published';
      }
    } else {
      await this.barrier.say(op.id, 'held');
      saidHeld();
      while (performance.now() - t0 < limit) {
        if (await this.barrier.publish(op.id, sources, revision, value)) {
          this.published = op.id;
          return 'published';
        }
        if (this.d.signed.current().epoch !== op.baseEpoch) break;
        if (await this.barrier.aborted(op.id)) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      if (await this.barrier.unhold(op.id, revision)) return (await this.barrier.aborted(op.id)) ? 'aborted' : 'retry';
    }
    // The topology key changed since it was read, or an abort is there.
    const now = await readSignedTopology(this.d.etcd, keys.topology);
    if (now && now.revision !== revision) return 'published'; // by another source, or stale: the caller compares
    return (await this.barrier.aborted(op.id)) ? 'aborted' : 'stale';
  }

  /** After a restart: the cleanup of an operation this shard cut over before it stopped. */
  resumeCleanup(op: RebalanceOperation): void {
    setTimeout(() => void this.cleanup(op, 0, 0), this.d.cleanupDelayMs ?? 5000).unref();
  }

  /**
   * Deletes the moved keys from this shard's storage node, unless it still holds a copy of them
   * (a replica in the new topology). Until the status says `cleaned`, every sidecar filters
   * counts by ownership (the keys are on two nodes).
   */
  private async cleanup(op: RebalanceOperation, verified: number, pauseMs: number): Promise<void> {
    let deleted = 0;
    this.cleaning.set(op.id, op.moves);
    try {
      const keep = servedBy(this.d.signed.current(), this.d.self, () => this.d.incoming?.() ?? []);
      await sweep(new NodeClient(this.d.resolver.local), rangesOf(op.moves.filter((m) => m.from === this.d.self)), keep, (n) => (deleted = n));
      await this.status(op.id, { phase: 'cleaned', epoch: op.next.epoch, keys_verified: verified, pause_ms: pauseMs, keys_deleted: deleted });
      this.d.log.info({ op: op.id, deleted }, 'moved keys deleted from the source');
    } catch (e) {
      this.d.log.warn({ op: op.id, err: (e as Error).message, deleted }, 'cleanup of moved keys failed; retrying later');
      setTimeout(() => void this.cleanup(op, verified, pauseMs), 5000).unref();
    } finally {
      this.cleaning.delete(op.id);
    }
  }


  private status(opId: string, s: Record<string, unknown>): Promise<void> {
    return this.d.status.write(opId, s);
  }
}

class Retry extends Error {}
