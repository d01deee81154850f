// Replay protection: a nonce is remembered per sender for as long as its timestamp is
// inside the acceptance window. Memory is bounded (lru-cache per sender, and a bounded
// number of senders). Eviction never reopens a replay: when a still-valid nonce is evicted,
// the sender's floor rises to its timestamp and older requests are refused (fail closed).
// A restarted sidecar starts each sender's floor at the mark its previous run persisted
// (replay-floors.ts), so a request accepted before the restart is refused after it.
import { LRUCache } from 'lru-cache';
import { ThemisError } from '../errors.js';
import type { Clock } from '../runtime.js';

export interface ReplayGuardOptions {
  /** Accepted clock skew either way, ms (default 60 000). */
  windowMs?: number;
  /** Nonces remembered per sender (default 200 000 ≈ 3 300 req/s for 60 s). */
  maxNoncesPerSender?: number;
  /** Senders tracked (default 4 096). */
  maxSenders?: number;
  /** Per sender, from before a restart: requests with a timestamp at or below it are refused. */
  floors?: ReadonlyMap<string, number>;
  /** The same for every sender (the persisted marks could not be read: fail closed). */
  floorAll?: number;
}

interface SenderState {
  nonces: LRUCache<string, number>;
  /** Requests with a timestamp ≤ floor are refused: their nonces may have been evicted. */
  floor: number;
}

export class ReplayGuard {
  readonly windowMs: number;
  private readonly maxNonces: number;
  private readonly senders: LRUCache<string, SenderState>;
  private globalFloor: number;
  private readonly startFloors: ReadonlyMap<string, number>;

  constructor(
    private readonly clock: Clock,
    opts: ReplayGuardOptions = {},
  ) {
    this.windowMs = opts.windowMs ?? 60_000;
    this.maxNonces = opts.maxNoncesPerSender ?? 200_000;
    this.startFloors = opts.floors ?? new Map();
    this.globalFloor = opts.floorAll ?? -Infinity;
    // Evicting a whole sender forgets its nonces, so the global floor rises to the newest
    // timestamp it still vouched for; with thousands of senders tracked this stays rare.
    this.senders = new LRUCache<string, SenderState>({
      max: opts.maxSenders ?? 4096,
      dispose: (state, _sender, reason) => {
        if (reason !== 'evict') return;
        for (const ts of state.nonces.values()) this.globalFloor = Math.max(this.globalFloor, ts);
      },
    });
  }

  /** Throws TIMESTAMP_OUT_OF_WINDOW unless |now - timestamp| ≤ window. */
  checkTimestamp(timestamp: number): void {
    const skew = timestamp - this.clock.now();
    if (Math.abs(skew) > this.windowMs) {
      throw new ThemisError(
        'TIMESTAMP_OUT_OF_WINDOW',
        `request timestamp is ${Math.round(skew / 1000)} s from this shard's clock; allowed ±${this.windowMs / 1000} s`,
      );
    }
  }

  /**
   * Records the nonce, or throws REPLAY_DETECTED if this sender used it within the window.
   * Call only after the signature verified, so forged requests cannot fill the cache.
   */
  checkAndRemember(sender: string, nonce: string, timestamp: number): void {
    const now = this.clock.now();
    // The window is checked again here: the request may have passed checkTimestamp a while ago
    // (its body arrived slowly; with workers, the call waited in the control process's queue),
    // and a nonce whose first use has already left the cache must not be taken as new.
    if (timestamp + this.windowMs < now) {
      throw new ThemisError('TIMESTAMP_OUT_OF_WINDOW', `request timestamp left the ±${this.windowMs / 1000} s window before its nonce could be checked; send a fresh one`);
    }
    let state = this.senders.get(sender);
    if (!state) {
      const fresh: SenderState = { floor: this.startFloors.get(sender) ?? -Infinity, nonces: undefined as unknown as LRUCache<string, number> };
      fresh.nonces = new LRUCache<string, number>({
        max: this.maxNonces,
        perf: { now: () => this.clock.now() },
        // lru-cache would cache "now" for 1 ms, arming a timer to forget it on most calls;
        // our clock is cheap, and exact expiry is what the purge relies on.
        ttlResolution: 0,
        dispose: (ts, _nonce, reason) => {
          if (reason === 'evict' && ts + this.windowMs >= this.clock.now()) fresh.floor = Math.max(fresh.floor, ts);
        },
      });
      state = fresh;
      this.senders.set(sender, state);
    }
    if (timestamp <= state.floor || timestamp <= this.globalFloor) {
      // Evicted nonces, or a restart: either way this request may have been accepted before.
      throw new ThemisError('REPLAY_DETECTED', 'request is older than the replay cache can vouch for (a restart, or memory pressure); send a fresh one');
    }
    if (state.nonces.has(nonce)) {
      throw new ThemisError('REPLAY_DETECTED', 'nonce already used by this sender within the replay window');
    }
    // Remember until the timestamp can no longer pass checkTimestamp.
    state.nonces.set(nonce, timestamp, { ttl: Math.max(1, timestamp + this.windowMs - now + 1) });
  }

  /**
   * Forgets nonces whose timestamps can no longer pass checkTimestamp, and senders with none
   * left whose floor is that old too. The cache drops expired entries only when it needs the
   * room, so without this it held maxNoncesPerSender per sender under steady load whatever
   * the window (the sidecar runs it every few seconds). Forgetting these reopens no replay.
   */
  purgeStale(): void {
    const now = this.clock.now();
    for (const [sender, state] of [...this.senders.entries()]) {
      state.nonces.purgeStale();
      if (state.nonces.size === 0 && state.floor + this.windowMs < now) this.senders.delete(sender);
    }
  }

  /** Nonces held, over all senders. */
  get size(): number {
    let n = 0;
    for (const state of this.senders.values()) n += state.nonces.size;
    return n;
  }
}
