// The history checker every data-movement and fault test uses: writers record each write they
// attempt and each one acknowledged; after a fault, every key is read back and judged. Each key
// has one writer whose values carry a per-key counter, so the order of writes is known:
//   lost     — a write was acknowledged, but the key is gone;
//   reverted — the value read is older than the last acknowledged one;
//   invented — the value read was never written by anyone.
// A value newer than the last acknowledgement is fine: the write may have landed before its
// answer was lost.

export interface Verdict {
  checked: number;
  lost: string[];
  reverted: string[];
  invented: string[];
}

interface KeyHistory {
  attempted: Set<string>;
  /** Counter of the newest acknowledged write, -1 when none. */
  acked: number;
  /** Counter of the newest attempted write. */
  tried: number;
}

export class History {
  private readonly keys = new Map<string, KeyHistory>();
  acknowledged = 0;
  failed = 0;

  constructor(private readonly writer = 'w') {}

  private of(key: string): KeyHistory {
    let h = this.keys.get(key);
    if (!h) this.keys.set(key, (h = { attempted: new Set(), acked: -1, tried: -1 }));
    return h;
  }

  /** The next value to write to `key` (JSON text), recorded as attempted. */
  next(key: string): { blob: string; n: number } {
    const h = this.of(key);
    const n = h.tried + 1;
    const blob = JSON.stringify({ key, n, writer: this.writer });
    h.attempted.add(blob);
    h.tried = n;
    return { blob, n };
  }

  ack(key: string, n: number): void {
    const h = this.of(key);
    if (n > h.acked) h.acked = n;
    this.acknowledged++;
  }

  fail(): void {
    this.failed++;
  }

  /** Keys with at least one acknowledged write. */
  ackedKeys(): string[] {
    return [...this.keys].filter(([, h]) => h.acked >= 0).map(([k]) => k);
  }

  allKeys(): string[] {
    return [...this.keys.keys()];
  }

  /** Reads every key that was written (or only `keys`) with `read` and judges each. */
  async check(read: (key: string) => Promise<string | undefined>, keys: Iterable<string> = this.keys.keys()): Promise<Verdict> {
    const v: Verdict = { checked: 0, lost: [], reverted: [], invented: [] };
    for (const key of keys) {
      const h = this.of(key);
      const blob = await read(key);
      v.checked++;
      if (blob === undefined) {
        if (h.acked >= 0) v.lost.push(key);
        continue;
      }
      if (!h.attempted.has(blob)) {
        v.invented.push(key);
        continue;
      }
      const n = (JSON.parse(blob) as { n: number }).n;
      if (n < h.acked) v.reverted.push(key);
    }
    return v;
  }
}

export interface LoopStats {
  acknowledged: number;
  failed: number;
  /** Failures by error code (or transport error text). */
  failures: Record<string, number>;
}

/**
 * Writes new values to `keys` round-robin until `stop()` resolves or `maxWrites` is reached,
 * `concurrency` keys at a time (never two writes to one key at once). `put` resolves with the
 * HTTP status and error code: 201 counts as acknowledged. `paceMs` spaces each lane's writes (a
 * test that needs traffic across a change, not throughput, keeps the machine free for the rest).
 */
export async function writeLoop(
  history: History,
  keys: readonly string[],
  put: (key: string, blob: string) => Promise<{ status: number; code?: string }>,
  o: { until: Promise<unknown>; maxWrites?: number; concurrency?: number; paceMs?: number },
): Promise<LoopStats> {
  let stop = false;
  void o.until.then(() => (stop = true));
  const stats: LoopStats = { acknowledged: 0, failed: 0, failures: {} };
  let written = 0;
  let cursor = 0;
  const worker = async (lane: number) => {
    const mine = keys.filter((_, i) => i % (o.concurrency ?? 4) === lane);
    while (!stop && written < (o.maxWrites ?? Infinity) && mine.length) {
      const key = mine[cursor++ % mine.length]!;
      const { blob, n } = history.next(key);
      written++;
      try {
        const r = await put(key, blob);
        if (r.status === 201) {
          history.ack(key, n);
          stats.acknowledged++;
        } else {
          history.fail();
          stats.failed++;
          stats.failures[r.code ?? `status ${r.status}`] = (stats.failures[r.code ?? `status ${r.status}`] ?? 0) + 1;
        }
      } catch (e) {
        history.fail();
        stats.failed++;
        const why = (e as Error).message.slice(0, 60);
        stats.failures[why] = (stats.failures[why] ?? 0) + 1;
      }
      if (o.paceMs) await new Promise((r) => setTimeout(r, o.paceMs));
    }
  };
  await Promise.all(Array.from({ length: o.concurrency ?? 4 }, (_, i) => worker(i)));
  return stats;
}
