// The change log's retention state in LevelDB: the trimmed-through sequence, time marks (which
// sequence was newest at what time), follower registrations, and chunked deletion of old records.
import type { ClassicLevel } from 'classic-level';
import { TIME_MARK_MS } from './writer.js';
import { ALL_CHANGES_START, ALL_FOLLOWERS, ALL_TIME_MARKS, TRIMMED_KEY, changeKey, changeSeq, followerKey, timeMarkKey } from './layout.js';

type Db = ClassicLevel<string, string>;

/** Records deleted per LevelDB batch: small, so a write never queues behind a long delete. */
export const TRIM_CHUNK = 500;

export interface FollowerEntry {
  seq: number;
  expiresAt: number;
}

export class FeedLog {
  private trimmed: number;
  /** Records up to here are deleted (below `trimmed` after a crash midway, until the next trim). */
  private deleted: number;

  constructor(
    private readonly db: Db,
    trimmedThrough: number,
    deletedThrough: number,
  ) {
    this.trimmed = trimmedThrough;
    this.deleted = deletedThrough;
  }

  static async open(db: Db): Promise<FeedLog> {
    const text = (await db.get(TRIMMED_KEY)) ?? '0';
    const n = Number(text);
    if (!/^\d{1,16}$/.test(text) || !Number.isSafeInteger(n)) throw new Error(`damaged ${TRIMMED_KEY} ${JSON.stringify(text.slice(0, 32))}`);
    // One seek for the oldest record left: from there on, deletion needs no iterator (sequence
    // numbers are gap-free), so it never walks the tombstones of earlier trims.
    const [first] = await db.keys({ gte: ALL_CHANGES_START, lt: 'c"', limit: 1 }).all();
    const deleted = first === undefined ? n : Math.min(changeSeq(first) - 1, n);
    const log = new FeedLog(db, n, deleted);
    if (deleted < n) await log.deleteThrough(n);
    return log;
  }

  /** Every record with sequence ≤ this is gone (or going): reads from below it are refused. */
  get trimmedThrough(): number {
    return this.trimmed;
  }

  /** The newest sequence known to be committed before `ms`: from the last whole second before it (0 when none). */
  async seqAt(ms: number): Promise<number> {
    const it = this.db.iterator({ gt: ALL_TIME_MARKS.gt, lte: timeMarkKey(ms - TIME_MARK_MS), reverse: true, limit: 1 });
    try {
      const first = await it.next();
      return first ? Number(first[1]) : 0;
    } finally {
      await it.close();
    }
  }

  /**
   * Trims every record with sequence ≤ `through`: the horizon is recorded first (so readers
   * refuse at once), then records go in small unsynced batches with a yield between them.
   * Time marks older than `marksBefore` go too. A crash midway leaves records below the
   * horizon that the next trim deletes.
   */
  async trim(through: number, marksBefore: number): Promise<number> {
    if (through <= this.trimmed) return 0;
    this.trimmed = through;
    await this.db.put(TRIMMED_KEY, String(through));
    const deleted = await this.deleteThrough(through);
    // The mark seqAt(marksBefore) reads is kept; older ones go.
    const marks = await this.db.keys({ gt: ALL_TIME_MARKS.gt, lt: timeMarkKey(marksBefore - 2 * TIME_MARK_MS) }).all();
    if (marks.length > 0) await this.db.batch(marks.map((key) => ({ type: 'del' as const, key })));
    return deleted;
  }

  private async deleteThrough(through: number): Promise<number> {
    const from = this.deleted;
    while (this.deleted < through) {
      const end = Math.min(through, this.deleted + TRIM_CHUNK);
      const ops = [];
      for (let s = this.deleted + 1; s <= end; s++) ops.push({ type: 'del' as const, key: changeKey(s) });
      await this.db.batch(ops);
      this.deleted = end;
      await new Promise((r) => setImmediate(r));
    }
    return this.deleted - from;
  }

  /** Approximate bytes the change records take on disk (LevelDB's estimate; 0 until compacted). */
  async approximateBytes(): Promise<number> {
    return this.db.approximateSize(ALL_CHANGES_START, 'c"');
  }

  async followers(): Promise<Map<string, FollowerEntry>> {
    const out = new Map<string, FollowerEntry>();
    for await (const [key, value] of this.db.iterator(ALL_FOLLOWERS)) {
      try {
        const v = JSON.parse(value) as { seq: number; expires_at: number };
        out.set(key.slice(2), { seq: v.seq, expiresAt: v.expires_at });
      } catch {
        // unreadable: dropped below
        out.set(key.slice(2), { seq: 0, expiresAt: 0 });
      }
    }
    return out;
  }

  async putFollower(id: string, e: FollowerEntry): Promise<void> {
    await this.db.put(followerKey(id), JSON.stringify({ seq: e.seq, expires_at: e.expiresAt }));
  }

  async dropFollower(id: string): Promise<void> {
    await this.db.del(followerKey(id));
  }
}
