// The change-feed follower, built once for replication and range movement: make a target node
// hold exactly what a source node holds in some token ranges, and keep it so. Without a usable
// checkpoint it first notes the source's head S, then repairs the target against a scan of the
// source (copy what is missing or different, delete what the source lacks), then follows the
// source's change feed from S, filtered to the ranges, page by page (each key's last change in
// the page), with the checkpoint persisted after every page. Changes replayed from S that the scan already
// saw are applied again in order, so the target converges to the source at every page boundary.
// A checkpoint may name spans to repair first (a replica whose ranges grew keeps its position
// for the ranges it had): those alone are repaired against a scan, and the feed is followed from
// the checkpoint, which is older than the scan, so the same argument holds.
// A position is only true while the target keeps what was applied: the target's own newest
// sequence number is read after every page and kept in the checkpoint, and a target found
// below it (its storage node restored from a backup, or wiped) makes the follower start over
// with a full copy, before it announces or applies anything more.
// A follower told to stop writes nothing more: a page or scan that arrives after stop() was called
// is not applied (the position stays where it was, so whoever follows on applies it again), and
// no write of a page or a repair starts once it is stopping. A follower of an old primary may
// otherwise land a late page over writes its successor (another primary) already acknowledged.
import { ThemisError } from '../../src/errors.js';
import type { Logger } from '../../src/log.js';
import type { Clock } from '../../src/runtime.js';
import type { CheckpointStore } from './checkpoints.js';
import type { Change, NodeClient } from './node-client.js';
import { diffRanges } from './range-diff.js';
import { TokenRanges } from './token-ranges.js';

/** How often the checkpoint file is rewritten while following. */
const CHECKPOINT_MS = 250;
/** How often the position is registered at the source (which keeps its log for it). */
const REGISTER_MS = 1000;

export type FollowerState = 'idle' | 'copying' | 'following' | 'backoff' | 'stopped';

export interface FollowerOptions {
  /** Names the checkpoint: one per (source, target, purpose). */
  id: string;
  /** The shard whose feed this is (recorded in the checkpoint). */
  sourceShard: string;
  source: NodeClient;
  /** Where the ranges are kept equal to the source's; or, instead, `sink`. */
  target?: NodeClient;
  /**
   * Instead of a target: every change of each page, in order and uncollapsed (a backup's feed
   * archive). It must be durable when it resolves. A sink has no full copy: the follower starts
   * from its checkpoint, and a feed trimmed past it fails (onFullCopy hears why) without copying.
   */
  sink?: (changes: Change[]) => Promise<void>;
  ranges: TokenRanges;
  checkpoints: CheckpointStore;
  clock: Clock;
  log: Logger;
  pageSize?: number;
  longPollMs?: number;
  /** Distinct keys written at once within a page. */
  concurrency?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** Headers for each feed request, given the position held (a replica announces it so). */
  announce?: (position: number) => Record<string, string>;
  /** After every page applied and checkpointed: the source sequence now held. */
  onProgress?: (seq: number, latestSeq: number) => void;
  /** Each full copy, with why (first start, source behind us, feed trimmed, checkpoint unusable). */
  onFullCopy?: (reason: string) => void;
  /** A full copy finished: keys found equal, keys copied or deleted. */
  onCopied?: (same: number, repaired: number) => void;
  /** The name this follower's checkpoint is registered under at the source (default `id`); unique per source. */
  registerAs?: string;
}

/** Repair writes of a full copy in flight at once. */
const COPY_CONCURRENCY = 16;

export class FeedFollower {
  state: FollowerState = 'idle';
  /** Every change of the source up to here (in our ranges) is applied; -1 before the first copy. */
  position = -1;
  /** The source's newest sequence at the last page: position vs this is the lag in changes. */
  latest = -1;
  /** Keys written or deleted by the full copy running now (or the last one). */
  copyRepaired = 0;
  /** When the last page was applied (clock ms): with `latest`, how stale we may be. */
  caughtUpAt = 0;
  private running: Promise<void> | undefined;
  private stopping = false;
  private wake: (() => void) | undefined;
  private savedAt = -Infinity;
  /** Why the next full copy happens, when it is not simply the first. */
  private restartReason: string | undefined;
  /** Set when the target was found behind: the full copy follows at once, not after a back-off (the target just answered). */
  private copyNow = false;
  private registeredAt = -Infinity;
  /** The target node's newest sequence number at the last check (-1: none yet); it only grows unless the target lost data. */
  private targetSeq = -1;
  /** Writes to the target (or sink) in flight: stopWriting() waits for these alone. */
  private readonly writing = new Set<Promise<unknown>>();

  constructor(private readonly o: FollowerOptions) {}

  start(): void {
    this.running ??= this.run();
  }

  async stop(): Promise<void> {
    void this.stopWriting();
    await this.running;
    try {
      if (this.position >= 0) this.checkpoint(this.position, true);
    } catch (e) {
      this.o.log.warn({ follower: this.o.id, err: (e as Error).message }, 'cannot save the checkpoint at stop; the next start replays from the last one');
    }
    this.state = 'stopped';
  }

  /**
   * Stops it writing: no write to the target (or sink) starts after this call, and it resolves
   * once those in flight have settled. Unlike stop() it does not wait for the feed request or
   * scan in flight, which may hang for a whole request timeout on a source that is gone (a failed
   * primary): a follower of another source may take over the ranges as soon as this resolves.
   * stop() must still follow, for the checkpoint.
   */
  async stopWriting(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await Promise.allSettled([...this.writing]);
  }

  /** Tracks a write until it settles (see stopWriting). */
  private write<T>(w: Promise<T>): Promise<T> {
    this.writing.add(w);
    void w.then(() => this.writing.delete(w), () => this.writing.delete(w));
    return w;
  }

  private async run(): Promise<void> {
    let backoff = this.o.backoffInitialMs ?? 100;
    while (!this.stopping) {
      try {
        const cp = this.o.checkpoints.get(this.o.id);
        if (!cp || cp.source !== this.o.sourceShard) await this.fullCopy(this.restartReason ?? (cp ? `checkpoint of another source (${cp.source})` : 'no checkpoint'));
        else {
          // The target must still hold what the checkpoint covers.
          this.targetSeq = Math.max(this.targetSeq, cp.target_seq ?? -1);
          await this.checkTarget();
          if (cp.repair?.length) await this.repairSpans(cp.seq, cp.repair);
          else this.position = cp.seq;
        }
        this.state = 'following';
        while (!this.stopping) {
          await this.followPage();
          backoff = this.o.backoffInitialMs ?? 100;
        }
      } catch (err) {
        if (this.stopping) break;
        if (this.copyNow) {
          this.copyNow = false;
          this.o.log.warn({ follower: this.o.id, err: (err as Error).message, retryMs: 0 }, 'change-feed follower failed; retrying');
          continue;
        }
        this.state = 'backoff';
        this.o.log.warn({ follower: this.o.id, err: (err as Error).message, retryMs: backoff }, 'change-feed follower failed; retrying');
        await this.sleep(backoff);
        backoff = Math.min(backoff * 2, this.o.backoffMaxMs ?? 5000);
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  /** Repairs the target against the source's current data, then starts the feed at the head noted first. */
  private async fullCopy(reason: string): Promise<void> {
    this.state = 'copying';
    this.o.onFullCopy?.(reason);
    // The target's head before the copy: one restored or wiped meanwhile is caught after it.
    this.targetSeq = await this.targetNode().head();
    this.o.log.info({ follower: this.o.id, reason }, 'full copy of the ranges, then following the change feed');
    const head = await this.o.source.head();
    // Before the scan: the source keeps its log from `head` on while we copy.
    await this.register(head, true);
    // Repairs go COPY_CONCURRENCY at a time (each key is repaired once, so their order does not
    // matter); every one has settled before the copy counts as done, or fails as a whole.
    const { same, different } = await this.repair(this.o.ranges);
    await this.checkTarget();
    this.checkpoint(head, true);
    this.restartReason = undefined;
    this.o.log.info({ follower: this.o.id, head, same, repaired: different }, 'full copy done');
    this.o.onCopied?.(same, different);
  }

  /**
   * Repairs only `spans` against the source's data, then follows from `seq` (the position carried
   * over for the ranges already held). The source keeps its log from `seq` while we copy; if it
   * has trimmed past it already, the first page says so and a full copy follows.
   */
  private async repairSpans(seq: number, spans: readonly { start: string; end: string }[]): Promise<void> {
    this.state = 'copying';
    const ranges = new TokenRanges(spans.map((x) => ({ start: BigInt(x.start), end: BigInt(x.end) })));
    this.o.log.info({ follower: this.o.id, from: seq, spans: spans.length }, 'copying the spans new to this follower, then following the change feed from the position carried over');
    await this.register(seq, true);
    const { same, different } = await this.repair(ranges);
    this.checkpoint(seq, true);
    this.o.log.info({ follower: this.o.id, from: seq, same, repaired: different }, 'new spans copied');
    this.o.onCopied?.(same, different);
  }

  /** Makes the target equal the source in `ranges` (a merge-join of both scans), COPY_CONCURRENCY repairs at a time. */
  private async repair(ranges: TokenRanges): Promise<{ same: number; different: number }> {
    const target = this.targetNode();
    const inflight = new Set<Promise<void>>();
    let failure: unknown;
    this.copyRepaired = 0;
    const result = await diffRanges(this.o.source, target, ranges, async (d) => {
      if (failure) throw failure;
      // Stopping: the copy is left unfinished (its checkpoint is not written) and nothing more lands.
      if (this.stopping) throw new Error(`${this.o.id} is stopping: the copy is left unfinished`);
      const w = this.write(d.kind === 'extra' ? target.delete(d.key) : target.put(d.key, d.blob)).then(() => void this.copyRepaired++, (e: unknown) => void (failure ??= e));
      const tracked = w.finally(() => inflight.delete(tracked));
      inflight.add(tracked);
      if (inflight.size >= COPY_CONCURRENCY) await Promise.race(inflight);
    }, this.o.pageSize ?? 1000).finally(() => Promise.allSettled(inflight));
    await Promise.allSettled(inflight);
    if (failure) throw failure;
    return result;
  }

  /** Moves the position; the checkpoint file follows at most every CHECKPOINT_MS (and at once when `now`). */
  private checkpoint(seq: number, now = false): void {
    this.position = seq;
    const t = this.o.clock.monotonic();
    if (!now && t - this.savedAt < CHECKPOINT_MS) return;
    this.o.checkpoints.put(this.o.id, { seq, source: this.o.sourceShard, updatedAt: new Date(this.o.clock.now()).toISOString(), ...(this.targetSeq >= 0 ? { target_seq: this.targetSeq } : {}) });
    this.savedAt = t;
  }

  /** Registers the position at the source, at most every REGISTER_MS unless `now`; a failure only costs retention. */
  private async register(seq: number, now = false): Promise<void> {
    const t = this.o.clock.monotonic();
    if (!now && t - this.registeredAt < REGISTER_MS) return;
    this.registeredAt = t;
    try {
      await this.o.source.register(this.o.registerAs ?? this.o.id, seq);
    } catch (err) {
      this.o.log.warn({ follower: this.o.id, err: (err as Error).message }, 'could not register the change-feed checkpoint at the source; its log may be trimmed past us');
    }
  }

  /**
   * Reads the target's newest sequence number: below the last one seen, the target lost changes
   * this follower applied (restored from an older backup, wiped), so the position no longer
   * holds. The checkpoint is dropped and a full copy follows (thrown: the run loop starts over).
   * A follower with a sink has no target and nothing to check.
   */
  private async checkTarget(): Promise<void> {
    if (!this.o.target) return;
    const head = await this.o.target.head();
    if (head >= this.targetSeq) {
      this.targetSeq = head;
      return;
    }
    this.o.checkpoints.drop(this.o.id);
    this.restartReason = `target behind: its storage node is at seq ${head}, it was at ${this.targetSeq} (restored from a backup, or wiped)`;
    this.position = -1;
    this.targetSeq = -1;
    this.copyNow = true;
    throw new Error(`the target of ${this.o.id} lost changes it had applied (${this.restartReason}); a full copy follows`);
  }

  /** The target node; a follower with a sink has none, and so no copy to make. */
  private targetNode(): NodeClient {
    if (!this.o.target) throw new Error(`${this.o.id} follows into a sink from its checkpoint and cannot make a full copy`);
    return this.o.target;
  }

  /** Removes the registration at the source: for a follower that is stopped for good. */
  async unregister(): Promise<void> {
    await this.o.source.register(this.o.registerAs ?? this.o.id, null);
  }

  private async followPage(): Promise<void> {
    let page;
    try {
      page = await this.o.source.changes(this.position, this.o.pageSize ?? 1000, this.stopping ? 0 : this.o.longPollMs ?? 1000, this.o.announce?.(this.position));
    } catch (err) {
      if (!(err instanceof ThemisError && err.code === 'CHANGEFEED_TRIMMED')) throw err;
      // The source trimmed its log past our checkpoint (its hard cap, or we were away too long).
      this.o.checkpoints.drop(this.o.id);
      this.restartReason = `change feed trimmed: the source holds changes from ${String(err.details?.oldest_seq)} on, we were at ${this.position}`;
      this.position = -1;
      throw new Error(`${this.restartReason}; a full copy follows`);
    }
    if (page.lastSeq < this.position) {
      // The source holds less than we applied (its data was lost or replaced): start over.
      this.o.checkpoints.drop(this.o.id);
      this.restartReason = `source behind: at ${page.lastSeq}, we were at ${this.position}`;
      this.position = -1;
      throw new Error(`source ${this.o.sourceShard} is behind this follower (${this.restartReason}); a full copy follows`);
    }
    // Stopped while the page was on its way (a long poll): it is not applied, the position stays.
    if (this.stopping) return;
    // Stopped part way through the page: the position stays before it, so it is applied again.
    if (!(await this.apply(page.changes.filter((c) => this.o.ranges.hasKey(c.key))))) return;
    // Before the position moves (and is announced with the next request): the target still holds it all.
    await this.checkTarget();
    this.latest = page.latestSeq;
    if (page.lastSeq !== this.position) this.checkpoint(page.lastSeq);
    await this.register(this.position);
    this.caughtUpAt = this.o.clock.now();
    this.o.onProgress?.(this.position, page.latestSeq);
  }

  /**
   * A page's changes: only each key's last one counts (the target must equal the source at the
   * page's end, not at every step), and distinct keys are written side by side. False when the
   * follower was stopped before every write of the page started (those left out never start).
   */
  private async apply(changes: Change[]): Promise<boolean> {
    if (this.o.sink) {
      if (this.stopping) return false;
      await this.write(this.o.sink(changes));
      return true;
    }
    const target = this.targetNode();
    const last = new Map<string, Change>();
    for (const c of changes) last.set(c.key, c);
    const todo = [...last.values()];
    let next = 0;
    let failed = false;
    const worker = async () => {
      // After one failure no further write starts: the page is applied again from the checkpoint.
      // Once stopping, no further write starts either (the check is just before each write).
      while (next < todo.length && !failed && !this.stopping) {
        const c = todo[next++]!;
        try {
          if (c.operation === 'DELETE' || c.new_val === null) await this.write(target.delete(c.key));
          else await this.write(target.put(c.key, c.new_val));
        } catch (e) {
          failed = true;
          throw e;
        }
      }
    };
    // Every write of the page has settled before a failure is reported, so none lands after a retry began.
    const results = await Promise.allSettled(Array.from({ length: Math.min(this.o.concurrency ?? 32, todo.length) }, worker));
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure) throw failure.reason;
    return next >= todo.length;
  }
}
