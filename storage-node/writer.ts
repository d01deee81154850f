// The single writer with group commit: writes that arrive while a batch is being made durable
// are collected into the next LevelDB batch (entities, change records, last sequence; sync:true).
import type { ClassicLevel } from 'classic-level';
import { ThemisError } from '../src/errors.js';
import { LAST_SEQ_KEY, changeKey, entityKey, timeMarkKey, type ChangeRecord } from './layout.js';

/** Time marks (retention by age) are per second: `t!{second's start}` → newest sequence committed in it. */
export const TIME_MARK_MS = 1000;

export type WriteOp =
  | { readonly kind: 'put'; readonly table: string; readonly uuid: string; readonly blob: string }
  | { readonly kind: 'delete'; readonly table: string; readonly uuid: string };

/** `applied: false` only for a DELETE of a key that does not exist (no change record). */
export type WriteResult = { applied: true; sequence: number; oldVal: string | null } | { applied: false };

interface Pending {
  op: WriteOp;
  resolve: (r: WriteResult) => void;
  reject: (e: unknown) => void;
}

export interface WriterLimits {
  /** Most writes in one batch. */
  maxOps: number;
  /** Roughly the most blob bytes in one batch; a single larger write still goes alone. */
  maxBytes: number;
}

export const DEFAULT_WRITER_LIMITS: WriterLimits = { maxOps: 1000, maxBytes: 64 * 1024 * 1024 };

type Db = ClassicLevel<string, string>;
type BatchOp = { type: 'put'; key: string; value: string } | { type: 'del'; key: string };

export class GroupWriter {
  private queue: Pending[] = [];
  private running: Promise<void> | null = null;
  private closed = false;
  private seq: number;
  /** Batches written so far and writes acknowledged; for tests and health. */
  readonly stats = { batches: 0, writes: 0 };

  constructor(
    private readonly db: Db,
    lastSeq: number,
    private readonly onCommit: (lastSeq: number) => void,
    private readonly limits: WriterLimits = DEFAULT_WRITER_LIMITS,
    private readonly now: () => number = Date.now,
    /** The commit time of the newest record (ms): stamps never go below it, even if the clock steps back. */
    private lastCommitMs = 0,
  ) {
    this.seq = lastSeq;
  }

  /** Sequence number of the newest durable change. */
  get lastSeq(): number {
    return this.seq;
  }

  /** Queues a write; resolves once its batch is durable (or rejects, with nothing written). */
  submit(op: WriteOp): Promise<WriteResult> {
    if (this.closed) {
      return Promise.reject(new ThemisError('STORAGE_UNAVAILABLE', 'the storage node is shutting down; retry elsewhere or later'));
    }
    return new Promise<WriteResult>((resolve, reject) => {
      this.queue.push({ op, resolve, reject });
      this.running ??= this.drain();
    });
  }

  /** Refuses new writes and waits for the queued ones to be written. */
  async close(): Promise<void> {
    this.closed = true;
    await this.running;
  }

  private async drain(): Promise<void> {
    // Let the current tick's requests join the first batch too.
    await Promise.resolve();
    while (this.queue.length > 0) {
      const batch = this.take();
      try {
        await this.commit(batch);
      } catch (err) {
        for (const p of batch) p.reject(err);
      }
    }
    this.running = null;
  }

  private take(): Pending[] {
    let bytes = 0;
    let n = 0;
    while (n < this.queue.length && n < this.limits.maxOps) {
      const op = this.queue[n]!.op;
      const size = op.kind === 'put' ? op.blob.length : 0;
      if (n > 0 && bytes + size > this.limits.maxBytes) break;
      bytes += size;
      n++;
    }
    return this.queue.splice(0, n);
  }

  private async commit(batch: Pending[]): Promise<void> {
    // Current values of every key the batch touches, read once; later writes in the same
    // batch see the earlier ones through `current`, so old_val is right for repeated keys.
    const keys = [...new Set(batch.map((p) => entityKey(p.op.table, p.op.uuid)))];
    const values = await this.db.getMany(keys);
    const current = new Map<string, string | null>(keys.map((k, i) => [k, values[i] ?? null]));
    const ops: BatchOp[] = [];
    const results: WriteResult[] = [];
    let seq = this.seq;
    // One commit time for the batch, never below the previous one: the log's times are non-decreasing.
    const committedMs = Math.max(this.now(), this.lastCommitMs);
    const committedAt = new Date(committedMs).toISOString();
    for (const { op } of batch) {
      const key = entityKey(op.table, op.uuid);
      const oldVal = current.get(key) ?? null;
      if (op.kind === 'delete' && oldVal === null) {
        results.push({ applied: false });
        continue;
      }
      seq += 1;
      const newVal = op.kind === 'put' ? op.blob : null;
      const record: ChangeRecord = {
        operation: op.kind === 'put' ? 'PUT' : 'DELETE',
        key: `${op.table}:${op.uuid}`,
        sequence: seq,
        old_val: oldVal,
        new_val: newVal,
        committed_at: committedAt,
      };
      ops.push(newVal === null ? { type: 'del', key } : { type: 'put', key, value: newVal });
      ops.push({ type: 'put', key: changeKey(seq), value: JSON.stringify(record) });
      current.set(key, newVal);
      results.push({ applied: true, sequence: seq, oldVal });
    }
    if (ops.length > 0) {
      ops.push({ type: 'put', key: LAST_SEQ_KEY, value: String(seq) });
      const second = Math.floor(committedMs / TIME_MARK_MS) * TIME_MARK_MS;
      ops.push({ type: 'put', key: timeMarkKey(second), value: String(seq) });
      await this.db.batch(ops, { sync: true });
      this.seq = seq;
      this.lastCommitMs = committedMs;
      this.stats.batches += 1;
    }
    this.stats.writes += batch.length;
    batch.forEach((p, i) => p.resolve(results[i]!));
    // After the acknowledgements: should a listener throw, the batch stays acknowledged.
    if (ops.length > 0) this.onCommit(seq);
  }
}
