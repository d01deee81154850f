// The LevelDB layer: opens the database, reads entities, table scans and change records,
// and sends every write through the one group-commit writer.
import { mkdirSync } from 'node:fs';
import { ClassicLevel } from 'classic-level';
import {
  ALL_CHANGES_END,
  ALL_ENTITIES,
  FORMAT_KEY,
  FORMAT_VERSION,
  LAST_SEQ_KEY,
  changeKey,
  changeSeq,
  committedMs,
  type ChangeRecord,
  entityKey,
  splitEntityKey,
  tableBounds,
} from './layout.js';
import { FeedLog } from './feed-log.js';
import { DEFAULT_WRITER_LIMITS, GroupWriter, type WriteResult, type WriterLimits } from './writer.js';

export interface StoredEntity {
  readonly table: string;
  readonly uuid: string;
  readonly blob: string;
}

export interface Page<T> {
  readonly items: T[];
  /** True when the page stopped early (limit or byte budget) and more may follow. */
  readonly more: boolean;
}

type Db = ClassicLevel<string, string>;

export interface StoreSnapshot {
  /** The newest change in the snapshot. */
  readonly seq: number;
  /** The commit time (ms) of the change at `seq`, when its record is held and carries one. */
  readonly committedAt?: number;
  /** Every entity in the snapshot as [LevelDB key, blob], in key order. */
  entities(): AsyncGenerator<[string, string]>;
  close(): Promise<void>;
}

/** The commit time of the newest record (ms), 0 when there is none or it carries no time. */
async function lastCommitMs(db: Db, lastSeq: number): Promise<number> {
  if (lastSeq === 0) return 0;
  const text = await db.get(changeKey(lastSeq));
  try {
    return (text === undefined ? undefined : committedMs(JSON.parse(text) as ChangeRecord)) ?? 0;
  } catch {
    return 0;
  }
}

export class Store {
  private readonly listeners = new Set<(lastSeq: number) => void>();

  private constructor(
    private readonly db: Db,
    private readonly writer: GroupWriter,
    /** Retention state of the change log (horizon, time marks, follower registrations). */
    readonly log: FeedLog,
  ) {}

  /** Opens (creating when missing) the database in `dir`. Fails if another process holds it. */
  static async open(dir: string, limits: WriterLimits = DEFAULT_WRITER_LIMITS, now: () => number = Date.now): Promise<Store> {
    mkdirSync(dir, { recursive: true });
    const db: Db = new ClassicLevel<string, string>(dir, { createIfMissing: true });
    await db.open();
    try {
      const format = await db.get(FORMAT_KEY);
      if (format === undefined) await db.put(FORMAT_KEY, FORMAT_VERSION, { sync: true });
      else if (format !== FORMAT_VERSION) throw new Error(`${dir} holds storage format ${format}; this build reads format ${FORMAT_VERSION}`);
      const lastSeqText = (await db.get(LAST_SEQ_KEY)) ?? '0';
      const lastSeq = Number(lastSeqText);
      if (!/^\d{1,16}$/.test(lastSeqText) || !Number.isSafeInteger(lastSeq)) {
        throw new Error(`${dir} holds a damaged last sequence number ${JSON.stringify(lastSeqText.slice(0, 32))}`);
      }
      let store: Store | undefined;
      const writer = new GroupWriter(db, lastSeq, (seq) => store?.notify(seq), limits, now, await lastCommitMs(db, lastSeq));
      store = new Store(db, writer, await FeedLog.open(db));
      return store;
    } catch (err) {
      await db.close();
      throw err;
    }
  }

  get lastSeq(): number {
    return this.writer.lastSeq;
  }

  get writerStats(): { batches: number; writes: number } {
    return { ...this.writer.stats };
  }

  /** Called after every durable batch with the newest sequence number. */
  onCommit(listener: (lastSeq: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private notify(seq: number): void {
    for (const l of [...this.listeners]) l(seq);
  }

  async get(table: string, uuid: string): Promise<string | undefined> {
    return this.db.get(entityKey(table, uuid));
  }

  /** Upsert; resolves after the batch holding it is durable. */
  async put(table: string, uuid: string, blob: string): Promise<{ sequence: number; oldVal: string | null }> {
    const r = await this.writer.submit({ kind: 'put', table, uuid, blob });
    if (!r.applied) throw new Error('put was not applied');
    return r;
  }

  /** Delete; `applied: false` (and no change record) when the entity does not exist. */
  async delete(table: string, uuid: string): Promise<WriteResult> {
    return this.writer.submit({ kind: 'delete', table, uuid });
  }

  /** Every entity of one table (or of all tables), in (table, uuid) order, from one snapshot. */
  async *entities(table?: string): AsyncGenerator<StoredEntity> {
    const bounds = table === undefined ? ALL_ENTITIES : tableBounds(table);
    const it = this.db.iterator(bounds);
    try {
      for (;;) {
        const entries = await it.nextv(256);
        if (entries.length === 0) return;
        for (const [key, blob] of entries) yield { ...splitEntityKey(key), blob };
      }
    } finally {
      await it.close();
    }
  }

  /**
   * One page of an ordered scan: entities after `after` (exclusive), at most `limit`, and
   * stopping once `budgetBytes` of blobs are in the page (always at least one entity).
   */
  async scan(opts: { table?: string; after?: { table: string; uuid: string }; limit: number; budgetBytes: number }): Promise<Page<StoredEntity>> {
    const bounds: { gt: string; lt: string } = opts.table === undefined ? { ...ALL_ENTITIES } : tableBounds(opts.table);
    if (opts.after !== undefined) {
      const from = entityKey(opts.after.table, opts.after.uuid);
      if (from > bounds.gt) bounds.gt = from;
    }
    const items: StoredEntity[] = [];
    let bytes = 0;
    const it = this.db.iterator({ ...bounds, limit: opts.limit + 1 });
    try {
      for await (const [key, blob] of it) {
        if (items.length === opts.limit || (items.length > 0 && bytes + blob.length > opts.budgetBytes)) {
          return { items, more: true };
        }
        items.push({ ...splitEntityKey(key), blob });
        bytes += blob.length;
      }
    } finally {
      await it.close();
    }
    return { items, more: false };
  }

  /**
   * Change records with sequence > fromSeq, oldest first, as stored JSON text: at most
   * `limit`, stopping once `budgetBytes` are collected (always at least one record).
   */
  async changes(fromSeq: number, limit: number, budgetBytes: number): Promise<{ seq: number; json: string }[]> {
    const out: { seq: number; json: string }[] = [];
    let bytes = 0;
    const it = this.db.iterator({ gt: changeKey(fromSeq), lt: ALL_CHANGES_END, limit });
    try {
      for await (const [key, json] of it) {
        if (out.length > 0 && bytes + json.length > budgetBytes) break;
        out.push({ seq: changeSeq(key), json });
        bytes += json.length;
      }
    } finally {
      await it.close();
    }
    return out;
  }

  /**
   * An explicit LevelDB snapshot: its sequence number and its entities are one instant of the
   * node, whatever is written meanwhile. Close it after use.
   */
  async openSnapshot(): Promise<StoreSnapshot> {
    const snapshot = this.db.snapshot();
    try {
      const text = (await this.db.get(LAST_SEQ_KEY, { snapshot })) ?? '0';
      const entities = async function* (db: Db): AsyncGenerator<[string, string]> {
        const it = db.iterator({ ...ALL_ENTITIES, snapshot });
        try {
          for (;;) {
            const entries = await it.nextv(256);
            if (entries.length === 0) return;
            yield* entries;
          }
        } finally {
          await it.close();
        }
      };
      const seq = Number(text);
      const last = seq > 0 ? await this.db.get(changeKey(seq), { snapshot }) : undefined;
      const committedAt = last === undefined ? undefined : committedMs(JSON.parse(last) as ChangeRecord);
      return { seq, ...(committedAt !== undefined ? { committedAt } : {}), entities: () => entities(this.db), close: () => snapshot.close() };
    } catch (err) {
      await snapshot.close();
      throw err;
    }
  }

  /** Waits for queued writes, then closes the database. */
  async close(): Promise<void> {
    await this.writer.close();
    await this.db.close();
  }
}
