// The replica side: for every primary whose ranges the topology gives this shard as a replica,
// one change-feed follower copying those ranges into this shard's storage node and following
// the primary's feed over the mesh, announcing its position with every request (the primary
// counts it towards write acknowledgements). Followers follow the topology: a changed set of
// ranges is a new follower, a dropped one stops. The new follower carries its predecessor's
// position over: the ranges it kept are followed on from there, and only the spans it gained
// are copied first (a full repair copy only when there is no position to carry).
// Never two followers writing the same tokens at once: a new follower starts only after every
// retiring follower of the same primary is done (its position carried over), and after every
// retiring follower of another primary whose ranges overlap its own has stopped writing (a
// failover: the old primary's follower must not land a late page over what the new primary's
// follower copied, which the new primary may have acknowledged).
import type { Logger } from '../../src/log.js';
import type { Clock } from '../../src/runtime.js';
import { tokenHex } from '../../src/hash.js';
import { intersectSpans, primariesOf, rangesDigest, subtractSpans, unionSpans, type TokenSpan } from '../../src/topology/replica-ranges.js';
import type { Topology } from '../../src/topology/topology.js';
import type { TopologySource } from '../control/topology-source.js';
import type { Checkpoint, CheckpointStore } from '../feed/checkpoints.js';
import { FeedFollower } from '../feed/follower.js';
import { NodeClient } from '../feed/node-client.js';
import { TokenRanges } from '../feed/token-ranges.js';
import type { ShardResolver } from '../resolver.js';
import { APPLIED_HEADER } from './positions.js';
import type { ReplicaState } from './read-preference.js';

export interface ReplicaManagerDeps {
  self: string;
  topology: TopologySource;
  resolver: ShardResolver;
  checkpoints: CheckpointStore;
  clock: Clock;
  log: Logger;
  longPollMs: number;
  /** Progress of each follower, for metrics: primary, position, the primary's newest sequence. */
  onProgress?: (primary: string, position: number, latest: number) => void;
  onFullCopy?: (primary: string, reason: string) => void;
  /**
   * Copies of `primary`'s tokens this shard just received in range moves now in force: their
   * position in its feed and the tokens they cover (proxy/rebalance/move-copier.ts handOver).
   */
  handover?: (primary: string) => Promise<{ seq: number; spans: TokenSpan[] } | undefined>;
  /** A follower that made a full copy (or just started) holds everything its primary had at its last page. */
  onCaughtUp?: (primary: string, position: number) => void;
}

interface Running {
  id: string;
  ranges: readonly TokenSpan[];
  follower: FeedFollower;
  /** Resolves when it has started, or has given up starting (no longer current): after any handover checkpoint it wrote. */
  started: Promise<void>;
}

/** A follower being stopped for good. */
interface Retiring {
  primary: string;
  ranges: readonly TokenSpan[];
  /** It writes nothing more into this shard's storage node (FeedFollower.stopWriting). */
  quiet: Promise<void>;
  /** Stopped, its position carried over to its successor, its checkpoint dropped and its registration removed. */
  done: Promise<void>;
}

export class ReplicaManager implements ReplicaState {
  private readonly followers = new Map<string, Running>();
  /** Followers being stopped, each until it is done: the followers that start after them wait for them (see reconcile). */
  private readonly retiring = new Set<Retiring>();
  private stopped = false;

  constructor(private readonly d: ReplicaManagerDeps) {}

  start(): void {
    this.reconcile(this.d.topology.current());
    this.d.topology.onChange((t) => this.reconcile(t));
  }

  /** This shard's follower of `primary` while it follows the feed: its lag in changes at its last page. */
  following(primary: string): { lag: number } | undefined {
    const f = this.followers.get(primary)?.follower;
    if (!f || f.state !== 'following' || f.latest < 0) return undefined;
    return { lag: Math.max(0, f.latest - f.position) };
  }

  /** This shard's position in `primary`'s feed (every change up to it applied, in the ranges it follows), or -1. */
  positionOf(primary: string): number {
    const f = this.followers.get(primary)?.follower;
    return f && (f.state === 'following' || f.state === 'backoff') ? f.position : -1;
  }

  /** Follower ids by primary, with their state: for /readyz, metrics and tests. */
  status(): Record<string, { id: string; state: string; position: number; latest: number }> {
    return Object.fromEntries([...this.followers].map(([p, r]) => [p, { id: r.id, state: r.follower.state, position: r.follower.position, latest: r.follower.latest }]));
  }

  private reconcile(t: Topology): void {
    if (this.stopped) return;
    const wanted = primariesOf(t, this.d.self);
    for (const [primary, running] of this.followers) {
      const ranges = wanted.get(primary);
      const successor = ranges && this.idOf(primary, rangesDigest(ranges));
      if (!ranges || running.id !== successor) {
        this.followers.delete(primary);
        this.retire(primary, running, ranges && successor ? { id: successor, ranges } : undefined);
      }
    }
    for (const [primary, ranges] of wanted) {
      if (primary === this.d.self || this.followers.has(primary)) continue;
      const digest = rangesDigest(ranges);
      const id = this.idOf(primary, digest);
      let catchingUp = true;
      const follower = new FeedFollower({
        id,
        // Unique at the primary: every replica of it registers its own checkpoint there.
        registerAs: `${this.d.self}.${id}`,
        sourceShard: primary,
        source: new NodeClient(() => this.d.resolver.resolve(primary).upstream),
        target: new NodeClient(this.d.resolver.local),
        ranges: new TokenRanges(ranges),
        checkpoints: this.d.checkpoints,
        clock: this.d.clock,
        log: this.d.log,
        longPollMs: this.d.longPollMs,
        // A replica that cannot reach its primary retries often: it is part of every write's acknowledgement.
        backoffInitialMs: 50,
        backoffMaxMs: 1000,
        announce: (position) => ({ [APPLIED_HEADER]: `${Math.max(position, 0)} ${digest}` }),
        onProgress: (position, latest) => {
          this.d.onProgress?.(primary, position, latest);
          if (catchingUp && position >= latest) {
            catchingUp = false;
            this.d.onCaughtUp?.(primary, position);
          }
        },
        onFullCopy: (reason) => {
          catchingUp = true;
          this.d.onFullCopy?.(primary, reason);
        },
      });
      // Never two followers writing the same tokens at once. A predecessor of the same primary is
      // waited for until it is done (its position is carried over into this follower's checkpoint);
      // one of another primary (a failover moved the ranges) only until it stops writing, not for
      // its feed request or unregistration, which may hang on a primary that is gone.
      const before = [...this.retiring].flatMap((r) => (r.primary === primary ? [r.done] : intersectSpans(r.ranges, ranges).length > 0 ? [r.quiet] : []));
      const current = () => this.followers.get(primary)?.follower === follower && !this.stopped;
      const started = Promise.all(before).then(async () => {
        if (!current()) return;
        await this.takeHandover(primary, id, ranges).catch((e: Error) => this.d.log.warn({ primary, err: e.message }, 'cannot take over the position of a range move; copying instead'));
        if (current()) follower.start();
      });
      this.followers.set(primary, { id, ranges, follower, started });
      this.d.log.info({ primary, id, ranges: ranges.length }, 'following a primary as its replica');
    }
  }

  /**
   * Stops `running` for good: its registration at the primary no longer holds the primary's log.
   * Its position goes on with `successor` (the same primary, other ranges), if any.
   *
   * The rule that keeps a carry-over from bringing back a dropped checkpoint: the retirements of
   * one primary's followers run one after another, in the order they were decided, and each
   * carries over and drops only after the one before it is done, and after its own follower's
   * start (or its giving up) is over. So every write into a follower's checkpoint (its
   * predecessor's carry-over, a range move's handover) has happened before that follower's own
   * retirement drops it, and a successor that never started passes the position it was given
   * on to the next one instead of losing it.
   */
  private retire(primary: string, running: Running, successor: { id: string; ranges: readonly TokenSpan[] } | undefined): void {
    const quiet = running.follower.stopWriting();
    const stopped = running.follower.stop();
    const earlier = [...this.retiring].filter((r) => r.primary === primary).map((r) => r.done);
    const done = Promise.allSettled([...earlier, running.started])
      .then(() => stopped)
      .then(
        async () => {
          if (successor) this.carryOver(primary, running, successor.id, successor.ranges);
          this.d.checkpoints.drop(running.id);
          await running.follower.unregister();
        },
        (e: Error) => this.d.log.warn({ primary, err: e.message }, 'stopping a replica follower failed'),
      )
      .catch((e: Error) => this.d.log.warn({ primary, err: e.message }, 'dropping a retired checkpoint failed'));
    const entry: Retiring = { primary, ranges: running.ranges, quiet, done };
    this.retiring.add(entry);
    void done.then(() => this.retiring.delete(entry));
  }

  /**
   * The successor of a follower of `primary` starts from its position: every change up to it is
   * applied in the ranges both hold, and the spans only the successor holds are repaired first.
   */
  private carryOver(primary: string, from: Running, id: string, ranges: readonly TokenSpan[]): void {
    const cp = this.d.checkpoints.get(from.id);
    if (!cp || cp.source !== primary) return;
    // Spans the predecessor had still to repair (it was stopped while repairing) stay to repair.
    const gained = unionSpans(subtractSpans(ranges, from.ranges), intersectSpans(ranges, repairSpans(cp)));
    this.d.checkpoints.put(id, { seq: cp.seq, source: primary, updatedAt: cp.updatedAt, repair: hexSpans(gained), ...(cp.target_seq !== undefined ? { target_seq: cp.target_seq } : {}) });
    this.d.log.info({ primary, from: from.id, to: id, position: cp.seq, gained: gained.length }, 'the new follower carries its predecessor\'s position over');
  }

  /**
   * A range move that brought this shard copies of `primary`'s tokens hands its position over:
   * those tokens need no copy (the rest of the gained spans still does), and the feed is
   * followed from the lower of the two positions.
   */
  private async takeHandover(primary: string, id: string, ranges: readonly TokenSpan[]): Promise<void> {
    const h = await this.d.handover?.(primary);
    if (!h) return;
    const covered = intersectSpans(ranges, unionSpans(h.spans, []));
    if (covered.length === 0) return;
    const cp = this.d.checkpoints.get(id);
    const carried = cp && cp.source === primary ? cp : undefined;
    const todo = carried ? repairSpans(carried) : [...ranges];
    const repair = subtractSpans(todo, covered);
    const seq = carried ? Math.min(carried.seq, h.seq) : h.seq;
    this.d.checkpoints.put(id, { seq, source: primary, updatedAt: new Date(this.d.clock.now()).toISOString(), repair: hexSpans(repair), ...(carried?.target_seq !== undefined ? { target_seq: carried.target_seq } : {}) });
    this.d.log.info({ primary, follower: id, position: seq, covered: covered.length, repair: repair.length }, 'a range move\'s copies hand their position over to the replica follower');
  }

  private idOf(primary: string, digest: string): string {
    return `replica-of-${primary}-${digest}`;
  }

  /**
   * Resolves once no retiring follower writes into `ranges` on this shard's storage node any
   * more; undefined when none does. Failover waits for it before it acknowledges writes to a
   * group it just took over (failover.ts): the old primary's late page must not land after them.
   */
  quietFor(ranges: readonly TokenSpan[]): Promise<void> | undefined {
    const writing = [...this.retiring].filter((r) => intersectSpans(r.ranges, ranges).length > 0).map((r) => r.quiet);
    return writing.length ? Promise.all(writing).then(() => undefined) : undefined;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.allSettled([...this.followers.values()].flatMap((r) => [r.follower.stop(), r.started]));
    await Promise.allSettled([...this.retiring].map((r) => r.done));
    this.followers.clear();
  }
}


/** A checkpoint's spans still to repair, sorted. */
function repairSpans(cp: Checkpoint): TokenSpan[] {
  return unionSpans((cp.repair ?? []).map((r) => ({ start: BigInt(r.start), end: BigInt(r.end) })), []);
}

function hexSpans(spans: readonly TokenSpan[]): { start: string; end: string }[] {
  return spans.map((g) => ({ start: tokenHex(g.start), end: tokenHex(g.end) }));
}
