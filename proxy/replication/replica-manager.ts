// The replica side: for every primary whose ranges the topology gives this shard as a replica,
// one change-feed follower copying those ranges into this shard's storage node and following
// the primary's feed over the mesh, announcing its position with every request (the primary
// counts it towards write acknowledgements). Followers follow the topology: a changed set of
// ranges is a new follower, a dropped one stops. The new follower carries its predecessor's
// position over: the ranges it kept are followed on from there, and only the spans it gained
// are copied first (a full repair copy only when there is no position to carry).
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
}

export class ReplicaManager implements ReplicaState {
  private readonly followers = new Map<string, Running>();
  /** Followers being stopped, by primary: a new one for the same primary waits for its predecessor. */
  private readonly retiring = new Map<string, Promise<void>>();
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
        // Stopped for good: its registration at the primary no longer holds the primary's log.
        // Its position goes on with its successor (the same primary, other ranges), if any.
        const done = running.follower.stop().then(
          async () => {
            if (ranges && successor) this.carryOver(primary, running, successor, ranges);
            this.d.checkpoints.drop(running.id);
            await running.follower.unregister();
          },
          (e: Error) => this.d.log.warn({ primary, err: e.message }, 'stopping a replica follower failed'),
        ).catch((e: Error) => this.d.log.warn({ primary, err: e.message }, 'dropping a retired checkpoint failed'));
        this.retiring.set(primary, done);
        void done.then(() => {
          if (this.retiring.get(primary) === done) this.retiring.delete(primary);
        });
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
      this.followers.set(primary, { id, ranges, follower });
      // Never two followers writing one primary's ranges at once: the old one finishes its page first.
      const before = this.retiring.get(primary) ?? Promise.resolve();
      const current = () => this.followers.get(primary)?.follower === follower && !this.stopped;
      void before.then(async () => {
        if (!current()) return;
        await this.takeHandover(primary, id, ranges).catch((e: Error) => this.d.log.warn({ primary, err: e.message }, 'cannot take over the position of a range move; copying instead'));
        if (current()) follower.start();
      });
      this.d.log.info({ primary, id, ranges: ranges.length }, 'following a primary as its replica');
    }
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

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.allSettled([...this.followers.values()].map((r) => r.follower.stop()));
    await Promise.allSettled([...this.retiring.values()]);
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
