// Replay protection: a nonce is remembered per sender for as long as its timestamp is
// inside the acceptance window. Memory is bounded (a bounded number of nonces per sender, and
// of senders) and follows the traffic: nothing is set aside up front. Eviction never reopens a
// replay: when a still-valid nonce is evicted, the sender's floor rises to its timestamp and
// older requests are refused (fail closed).
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
  /**
   * Nonce → its request's timestamp minus the guard's `base`, in arrival order (a Map keeps
   * insertion order), so the first entry is the one to evict. Relative, the timestamp is a small
   * integer that V8 stores in the entry itself, not as a separate heap number per nonce.
   */
  nonces: Map<string, number>;
  /** Requests with a timestamp ≤ floor are refused: their nonces may have been evicted. */
  floor: number;
}

export class ReplayGuard {
  readonly windowMs: number;
  private readonly maxNonces: number;
  private readonly senders: LRUCache<string, SenderState>;
  private globalFloor: number;
  private readonly startFloors: ReadonlyMap<string, number>;
  private readonly base: number;

  constructor(
    private readonly clock: Clock,
    opts: ReplayGuardOptions = {},
  ) {
    this.windowMs = opts.windowMs ?? 60_000;
    this.maxNonces = opts.maxNoncesPerSender ?? 200_000;
    this.startFloors = opts.floors ?? new Map();
    this.globalFloor = opts.floorAll ?? -Infinity;
    this.base = clock.now();
    // Evicting a whole sender forgets its nonces, so the global floor rises to the newest
    // timestamp it still vouched for; with thousands of senders tracked this stays rare.
    this.senders = new LRUCache<string, SenderState>({
      max: opts.maxSenders ?? 4096,
      dispose: (state, _sender, reason) => {
        if (reason !== 'evict') return;
        for (const rel of state.nonces.values()) this.globalFloor = Math.max(this.globalFloor, rel + this.base);
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
      state = { floor: this.startFloors.get(sender) ?? -Infinity, nonces: new Map() };
      this.senders.set(sender, state);
    }
    if (timestamp <= state.floor || timestamp <= this.globalFloor) {
      // Evicted nonces, or a restart: either way this request may have been accepted before.
      throw new ThemisError('REPLAY_DETECTED', 'request is older than the replay cache can vouch for (a restart, or memory pressure); send a fresh one');
    }
    const seen = state.nonces.get(nonce);
    if (seen !== undefined) {
      if (!this.expired(seen, now)) throw new ThemisError('REPLAY_DETECTED', 'nonce already used by this sender within the replay window');
      state.nonces.delete(nonce); // its first use left the window: forgotten, and remembered anew at the end
    }
    if (state.nonces.size >= this.maxNonces) this.evictOldest(state, now);
    // Remembered until the timestamp can no longer pass checkTimestamp (purgeStale).
    state.nonces.set(nonce, timestamp - this.base);
  }

  /** A nonce remembered at `rel` can be forgotten: its timestamp no longer passes checkTimestamp. */
  private expired(rel: number, now: number): boolean {
    return rel + this.base + this.windowMs < now;
  }

  /** Makes room by forgetting the sender's oldest nonce; if it is still in the window, the floor rises to it. */
  private evictOldest(state: SenderState, now: number): void {
    const first = state.nonces.entries().next();
    if (first.done) return;
    const [nonce, rel] = first.value;
    state.nonces.delete(nonce);
    if (!this.expired(rel, now)) state.floor = Math.max(state.floor, rel + this.base);
  }

  /**
   * Forgets nonces whose timestamps can no longer pass checkTimestamp, and senders with none
   * left whose floor is that old too. Nothing else drops an expired nonce but the bound, so
   * without this a sender's nonces would grow to maxNoncesPerSender under steady load whatever
   * the window (the sidecar runs it every few seconds). Forgetting these reopens no replay.
   */
  purgeStale(): void {
    const now = this.clock.now();
    for (const [sender, state] of [...this.senders.entries()]) {
      for (const [nonce, rel] of state.nonces) if (this.expired(rel, now)) state.nonces.delete(nonce);
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
