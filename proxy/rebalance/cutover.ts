// The source side of an accepted rebalance operation: its cutover. Once the target follows the
// source's feed closely (it announces its position on every feed request, x-themis-move-applied:
// "SEQ OPID"), the source
//   1. holds new writes to the moving ranges (they wait, they are not refused) and lets the ones
//      already past the hold finish;
//   2. reads its storage node's head and waits until the target has applied up to it;
//   3. verifies: every key of the moving ranges holds the same value on both nodes (the merge-join
//      of proxy/feed/range-diff.ts, Vitess's VDiff in spirit), in two steps so that the hold stays
//      short: the full comparison runs *before* the hold, while writes go on, and notes the keys
//      that differed (a write in flight, or a real divergence); inside the hold, once the target
//      has applied everything, only those keys are compared again. A difference then aborts;
//      nothing is cut over;
//   4. publishes the next epoch, pre-signed by the operator inside the operation, with a
//      compare-and-swap on the topology key (a concurrent operation's cutover makes ours stale);
//   5. applies it itself and releases the held writes, which go on to the new owner.
// Any step that does not finish in time releases the hold and tries again later.
// Restrictions for now: every move of the operation comes from this one source.
import type { Etcd3 } from 'etcd3';
import { etcdKeys } from '../../src/control/etcd.js';
import { readSignedTopology } from '../../src/control/topology-store.js';
import type { AuditLog } from '../../src/audit/audit-log.js';
import type { Logger } from '../../src/log.js';
import type { RebalanceOperation } from '../../src/rebalance/operation.js';
import { parseTopology } from '../../src/topology/document.js';
import { parseKey, tokenOf } from '../../src/urn/urn.js';
import type { TopologySource } from '../control/topology-source.js';
import { diffRanges } from '../feed/range-diff.js';
import { NodeClient } from '../feed/node-client.js';
import type { LocalHead } from '../replication/local-head.js';
import type { ShardResolver } from '../resolver.js';
import type { WriteHold } from './write-hold.js';
import { rangesOf, type RebalanceStatus } from './status.js';

export const MOVE_HEADER = 'x-themis-move-applied';

/** Where each move target is in this shard's feed, by operation id. */
export class MovePositions {
  private readonly positions = new Map<string, { shard: string; seq: number }>();
  private readonly waiters = new Set<() => void>();

  constructor(private readonly head: LocalHead) {}

  record(shard: string, header: string | string[] | undefined): void {
    if (typeof header !== 'string') return;
    const m = /^(\d{1,16}) ([0-9a-f-]{36})$/.exec(header);
    if (!m) return;
    const seq = Number(m[1]);
    // A position beyond this node's history proves nothing.
    if (seq > this.head.latest) return;
    this.positions.set(m[2]!, { shard, seq });
    for (const w of [...this.waiters]) w();
  }

  of(opId: string, shard: string): number {
    const p = this.positions.get(opId);
    return p && p.shard === shard ? p.seq : -1;
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
  writes: WriteHold;
  audit: AuditLog;
  log: Logger;
  status: RebalanceStatus;
  /** How far (changes) the target may be behind before a cutover is tried. */
  maxLag?: number;
  /** How long the hold may last before the attempt is given up and writes released. */
  holdLimitMs?: number;
  /** After a cutover, how long the source keeps the moved keys before it deletes them (in-flight reads). */
  cleanupDelayMs?: number;
  /** Ranges this shard is receiving in moves in progress: never cleaned up (a move back may be copying them). */
  incoming?: () => readonly { start: bigint; end: bigint }[];
}

export class Cutover {
  private readonly running = new Map<string, NodeJS.Timeout>();
  private readonly busy = new Set<string>();
  /** Ranges being cleaned up now, by operation: a move into them waits until the cleanup is over. */
  private readonly cleaning = new Map<string, readonly { start: bigint; end: bigint }[]>();

  cleaningRanges(): { start: bigint; end: bigint }[] {
    return [...this.cleaning.values()].flat();
  }

  constructor(private readonly d: CutoverDeps) {}

  /** Starts watching `op` for the moment to cut over, if this shard is its source. */
  start(op: RebalanceOperation): void {
    const sources = new Set(op.moves.map((m) => m.from));
    if (!sources.has(this.d.self) || this.running.has(op.id)) return;
    if (sources.size > 1 || new Set(op.moves.map((m) => m.to)).size > 1) {
      void this.status(op.id, { phase: 'unsupported', message: 'operations with several sources or targets cannot cut over yet' });
      return;
    }
    const timer = setInterval(() => void this.tryCutover(op), 200);
    timer.unref();
    this.running.set(op.id, timer);
  }

  stop(opId?: string): void {
    for (const [id, t] of this.running) {
      if (opId && id !== opId) continue;
      clearInterval(t);
      this.running.delete(id);
    }
  }

  private async tryCutover(op: RebalanceOperation): Promise<void> {
    if (this.busy.has(op.id) || !this.running.has(op.id)) return;
    const target = op.moves[0]!.to;
    if (this.d.signed.current().epoch !== op.baseEpoch) return this.stop(op.id);
    this.busy.add(op.id);
    if (op.cutover === 'manual') {
      const go = await this.d.etcd.get(etcdKeys(this.d.cluster).rebalanceSwitch(op.id)).string().catch(() => null);
      if (!go) return void this.busy.delete(op.id);
    }
    let release: (() => void) | undefined;
    try {
      const head = await this.d.head.after();
      const at = this.d.positions.of(op.id, target);
      if (at < 0 || head - at > (this.d.maxLag ?? 1000)) return; // still copying, or too far behind
      // The full comparison, before the hold: keys that differ now are compared again inside it.
      const ranges = rangesOf(op.moves);
      const local = new NodeClient(this.d.resolver.local);
      const remote = new NodeClient(() => this.d.resolver.resolve(target).upstream);
      const suspects = new Set<string>();
      const scan = await diffRanges(local, remote, ranges, async (d) => void suspects.add(d.key));
      if (suspects.size > (this.d.maxLag ?? 1000)) return; // too much churn to settle inside a short hold
      const limit = this.d.holdLimitMs ?? 2000;
      const t0 = performance.now();
      const hold = this.d.writes.hold(op.moves);
      release = hold.release;
      const deadline = (ms: number) => new Promise<false>((r) => setTimeout(() => r(false), ms));
      if ((await Promise.race([hold.drained.then(() => true), deadline(limit)])) === false) throw new Retry('writes in flight did not finish');
      const h = await this.d.head.after();
      if (!(await this.d.positions.waitFor(op.id, target, h, Math.max(1, limit - (performance.now() - t0))))) throw new Retry(`${target} did not reach ${h}`);
      const differing: string[] = [];
      let example = '';
      for (const k of suspects) {
        const [a, b] = await Promise.all([local.get(k), remote.get(k)]);
        if (a === b) continue;
        differing.push(k);
        example ||= `${k}: ${this.d.self} holds ${a === undefined ? 'nothing' : a.slice(0, 60)}, ${target} ${b === undefined ? 'nothing' : b.slice(0, 60)}`;
      }
      const diff = { same: scan.same + scan.different - differing.length, different: differing.length };
      if (diff.different > 0) {
        this.stop(op.id);
        await this.status(op.id, { phase: 'failed', reason: 'verify_mismatch', message: `${diff.different} of ${diff.same + diff.different} keys differ between ${this.d.self} and ${target} at ${h} (e.g. ${example}); nothing was cut over` });
        this.d.log.error({ op: op.id, different: diff.different }, 'rebalance verification failed; not cutting over');
        return;
      }
      const published = await this.publish(op);
      if (!published) {
        this.stop(op.id);
        await this.status(op.id, { phase: 'stale', reason: 'stale_epoch', message: 'the topology changed before the cutover (another operation or publish came first)' });
        return;
      }
      // Route by the new epoch before the held writes go on (the watch brings it within
      // milliseconds; a re-read makes sure of it).
      for (let i = 0; i < 40 && this.d.signed.current().epoch < op.next.epoch; i++) await new Promise((r) => setTimeout(r, 5));
      for (let i = 0; i < 100 && this.d.signed.current().epoch < op.next.epoch; i++) await this.d.signed.refresh();
      const pauseMs = performance.now() - t0;
      release();
      release = undefined;
      this.stop(op.id);
      this.d.audit.record({ event: 'REBALANCE_COMPLETED', op_id: op.id, epoch: op.next.epoch, keys_verified: diff.same, pause_ms: Math.round(pauseMs) });
      this.d.log.info({ op: op.id, epoch: op.next.epoch, keys: diff.same, pauseMs: Math.round(pauseMs) }, 'rebalance cut over');
      await this.status(op.id, { phase: 'done', epoch: op.next.epoch, keys_verified: diff.same, pause_ms: Math.round(pauseMs) });
      setTimeout(() => void this.cleanup(op, diff.same, Math.round(pauseMs)), this.d.cleanupDelayMs ?? 5000).unref();
    } catch (e) {
      if (!(e instanceof Retry)) this.d.log.warn({ op: op.id, err: (e as Error).message }, 'cutover attempt failed; trying again');
      else this.d.log.info({ op: op.id, why: e.message }, 'cutover attempt given up; writes released, trying again');
    } finally {
      release?.();
      this.busy.delete(op.id);
    }
  }

  /**
   * Deletes the moved keys from this shard's storage node, unless it still holds a copy of them
   * (a replica in the new topology). Until the status says `cleaned`, every sidecar filters
   * counts by ownership (the keys are on two nodes).
   */
  private async cleanup(op: RebalanceOperation, verified: number, pauseMs: number): Promise<void> {
    const t = this.d.signed.current();
    const mine = (token: bigint) => {
      const r = t.rangeOf(token);
      return r.owner === this.d.self || r.replicas.includes(this.d.self);
    };
    const ranges = rangesOf(op.moves);
    const node = new NodeClient(this.d.resolver.local);
    const incoming = (token: bigint) => (this.d.incoming?.() ?? []).some((r) => token >= r.start && token <= r.end);
    let deleted = 0;
    this.cleaning.set(op.id, op.moves);
    try {
      let after: string | null = null;
      for (;;) {
        const page = await node.scan(after, 1000);
        for (const e of page.entities) {
          if (!ranges.hasKey(e.key)) continue;
          const token = tokenOf(parseKey(e.key));
          if (mine(token) || incoming(token)) continue;
          await node.delete(e.key);
          deleted++;
        }
        if (!page.next) break;
        after = page.next;
      }
      await this.status(op.id, { phase: 'cleaned', epoch: op.next.epoch, keys_verified: verified, pause_ms: pauseMs, keys_deleted: deleted });
      this.d.log.info({ op: op.id, deleted }, 'moved keys deleted from the source');
    } catch (e) {
      this.d.log.warn({ op: op.id, err: (e as Error).message, deleted }, 'cleanup of moved keys failed; retrying later');
      setTimeout(() => void this.cleanup(op, verified, pauseMs), 5000).unref();
    } finally {
      this.cleaning.delete(op.id);
    }
  }

  /** Publishes the operation's pre-signed next topology if the topology in etcd is still its base epoch. */
  private async publish(op: RebalanceOperation): Promise<boolean> {
    const key = etcdKeys(this.d.cluster).topology;
    const stored = await readSignedTopology(this.d.etcd, key);
    if (!stored?.signed) return false;
    if (parseTopology(stored.signed.document).epoch !== op.baseEpoch) return false;
    const r = await this.d.etcd.if(key, 'Mod', '==', stored.revision).then(this.d.etcd.put(key).value(JSON.stringify({ document: op.nextDocument, cms: op.nextCms }))).commit();
    return r.succeeded;
  }

  private status(opId: string, s: Record<string, unknown>): Promise<void> {
    return this.d.status.write(opId, s);
  }
}

class Retry extends Error {}
