// When a failed call is tried again. Three gates, all needed: the server's table says the code
// is retryable; the call is idempotent (PUT, GET, DELETE, reads, a create whose uuid the client
// fixed); and the retry budget has a token. The budget is Finagle's / Envoy's idea: retries may
// be at most a fraction of requests (plus a small reserve), so a dead shard cannot turn every
// call into several and a client cannot amplify an outage. Delays are exponential with full
// jitter (AWS's "full jitter": uniform in [0, min(cap, base·2^n)]), never past the deadline.

export interface RetryBudgetOptions {
  /** Each request adds this many retry tokens (default 0.2: retries ≤ 20 % of requests). */
  ratio?: number;
  /** Tokens at the start and at most ever held (default 10): retries a quiet client may make at once. */
  reserve?: number;
}

/** Shared by every call of one client (and may be shared between clients). */
export class RetryBudget {
  readonly ratio: number;
  readonly reserve: number;
  private tokens: number;
  /** Counters: first attempts, retries granted, retries refused for want of a token. */
  readonly stats = { requests: 0, retries: 0, refused: 0 };

  constructor(o: RetryBudgetOptions = {}) {
    this.ratio = o.ratio ?? 0.2;
    this.reserve = o.reserve ?? 10;
    if (!(this.ratio >= 0 && this.ratio <= 1)) throw new RangeError(`retry budget ratio must be within 0…1, not ${this.ratio}`);
    if (!(Number.isInteger(this.reserve) && this.reserve >= 0)) throw new RangeError(`retry budget reserve must be an integer ≥ 0, not ${this.reserve}`);
    this.tokens = this.reserve;
  }

  /** A call's first attempt: deposits `ratio`. */
  onRequest(): void {
    this.stats.requests++;
    // Capped, so that a long quiet spell cannot bank retries for a later outage; at least one
    // token fits, so that reserve 0 still allows `ratio` of requests.
    this.tokens = Math.min(Math.max(this.reserve, 1), this.tokens + this.ratio);
  }

  /** Takes a token for one retry; false when the budget is spent. */
  tryRetry(): boolean {
    if (this.tokens >= 1) {
      this.tokens -= 1;
      this.stats.retries++;
      return true;
    }
    this.stats.refused++;
    return false;
  }

  get available(): number {
    return this.tokens;
  }
}

export interface RetryOptions {
  /** Attempts per call, the first included (default 4; 1 turns retries off). */
  maxAttempts?: number;
  /** Back-off before the n-th retry: uniform in [0, min(maxDelayMs, baseDelayMs · 2^(n-1))] (defaults 50, 1000). */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** A budget object to share, or its options (default ratio 0.2, reserve 10). */
  budget?: RetryBudget | RetryBudgetOptions;
}

export interface RetryPolicy {
  readonly maxAttempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  readonly budget: RetryBudget;
}

export function retryPolicy(o: RetryOptions = {}): RetryPolicy {
  const maxAttempts = o.maxAttempts ?? 4;
  if (!(Number.isInteger(maxAttempts) && maxAttempts >= 1 && maxAttempts <= 100)) throw new RangeError(`retry.maxAttempts must be an integer 1…100, not ${maxAttempts}`);
  const baseDelayMs = o.baseDelayMs ?? 50;
  const maxDelayMs = o.maxDelayMs ?? 1000;
  if (!(baseDelayMs >= 0 && maxDelayMs >= baseDelayMs)) throw new RangeError('retry.baseDelayMs must be ≥ 0 and ≤ retry.maxDelayMs');
  const budget = o.budget instanceof RetryBudget ? o.budget : new RetryBudget(o.budget);
  return { maxAttempts, baseDelayMs, maxDelayMs, budget };
}

/** The pause before retry number `retry` (1 for the first), full jitter; `random` in [0, 1). */
export function backoffMs(p: RetryPolicy, retry: number, random: () => number): number {
  const ceiling = Math.min(p.maxDelayMs, p.baseDelayMs * 2 ** Math.min(retry - 1, 30));
  return Math.floor(random() * ceiling);
}
