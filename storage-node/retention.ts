// The change log's retention policy and its background trimmer: keep the configured age or
// record count (whichever keeps more), and what registered followers still need, up to the
// hard cap; trims in the background and reports the log's size, horizon and follower lags.
import type { StorageConfig } from '../src/config/storage.js';
import type { Logger } from '../src/log.js';
import type { Clock } from '../src/runtime.js';
import type { Timers } from './changefeed.js';
import type { FollowerEntry } from './feed-log.js';
import type { Store } from './store.js';

export type RetentionSettings = Pick<StorageConfig, 'feedRetainMs' | 'feedRetainRecords' | 'feedMaxRecords' | 'feedTrimIntervalMs' | 'feedFollowerTtlMs'>;

export class Retention {
  private followers = new Map<string, FollowerEntry>();
  private timer: unknown;
  private running: Promise<void> | undefined;
  private stopped = false;
  readonly stats = { trims: 0, trimmedRecords: 0, followersCutOff: 0 };

  constructor(
    private readonly store: Store,
    private readonly s: RetentionSettings,
    private readonly clock: Clock,
    private readonly timers: Timers,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    this.followers = await this.store.log.followers();
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = this.timers.setTimeout(() => {
      this.running = this.trimOnce()
        .then(() => undefined)
        .catch((err: unknown) => this.log.warn({ err }, 'change-log trim failed; retrying at the next interval'))
        .finally(() => {
          this.running = undefined;
          this.schedule();
        });
    }, this.s.feedTrimIntervalMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.timers.clearTimeout(this.timer);
    await this.running;
  }

  /** A follower (replica, range move, backup) needs every record after `seq`; kept until the TTL. */
  async register(id: string, seq: number): Promise<FollowerEntry> {
    const e = { seq, expiresAt: this.clock.now() + this.s.feedFollowerTtlMs };
    this.followers.set(id, e);
    await this.store.log.putFollower(id, e);
    return e;
  }

  async unregister(id: string): Promise<boolean> {
    const had = this.followers.delete(id);
    await this.store.log.dropFollower(id);
    return had;
  }

  /** Where the log may be trimmed through now, by the policy (never past the newest record). */
  async horizon(): Promise<{ through: number; cutOff: string[] }> {
    const last = this.store.lastSeq;
    const now = this.clock.now();
    const byAge = await this.store.log.seqAt(now - this.s.feedRetainMs);
    let through = Math.min(byAge, last - this.s.feedRetainRecords);
    for (const [id, f] of this.followers) {
      if (f.expiresAt <= now) {
        this.followers.delete(id);
        await this.store.log.dropFollower(id);
        this.log.info({ follower: id, seq: f.seq }, 'change-feed follower registration expired');
      } else through = Math.min(through, f.seq);
    }
    through = Math.max(through, last - this.s.feedMaxRecords, 0);
    // Each registration is reported cut off once (a later, refreshed checkpoint is a new one).
    const cutOff = [...this.followers].filter(([, f]) => f.seq < through && f.seq >= this.store.log.trimmedThrough).map(([id]) => id);
    return { through, cutOff };
  }

  async trimOnce(): Promise<number> {
    const { through, cutOff } = await this.horizon();
    if (through <= this.store.log.trimmedThrough) return 0;
    if (cutOff.length > 0) {
      this.stats.followersCutOff += cutOff.length;
      this.log.warn({ followers: cutOff, through, maxRecords: this.s.feedMaxRecords }, 'change log at its hard cap: trimming past followers, which must make a full copy');
    }
    const n = await this.store.log.trim(through, this.clock.now() - this.s.feedRetainMs);
    this.stats.trims += 1;
    this.stats.trimmedRecords += n;
    return n;
  }

  /** The figures /health and GET /changefeed/followers report. */
  async report(): Promise<Record<string, unknown>> {
    const last = this.store.lastSeq;
    const trimmed = this.store.log.trimmedThrough;
    const now = this.clock.now();
    return {
      oldest_seq: trimmed + 1,
      last_seq: last,
      records: last - trimmed,
      bytes_approx: await this.store.log.approximateBytes(),
      retain_ms: this.s.feedRetainMs,
      retain_records: this.s.feedRetainRecords,
      max_records: this.s.feedMaxRecords,
      trims: this.stats.trims,
      trimmed_records: this.stats.trimmedRecords,
      followers_cut_off: this.stats.followersCutOff,
      followers: [...this.followers]
        .filter(([, f]) => f.expiresAt > now)
        .map(([id, f]) => ({ id, seq: f.seq, lag: Math.max(0, last - f.seq), behind_horizon: f.seq < trimmed, expires_in_ms: f.expiresAt - now })),
    };
  }
}
