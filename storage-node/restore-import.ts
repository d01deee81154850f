// Builds a storage node's LevelDB from a backup (offline, in a directory no node uses): the
// entities of the snapshot, then archived change records after its sequence number, applied as
// the writer would have (entity, change record, last sequence). The log before the snapshot is
// marked trimmed, so a follower that needs older changes is told to copy in full.
import { ClassicLevel } from 'classic-level';
import { FORMAT_KEY, FORMAT_VERSION, LAST_SEQ_KEY, TRIMMED_KEY, changeKey, entityKey, type ChangeRecord } from './layout.js';

const BATCH = 1000;

export interface ImportSource {
  /** The snapshot's sequence number. */
  seq: number;
  /** Entities as `table:uuid` and blob. */
  entities: AsyncIterable<{ key: string; blob: string }>;
  /** Change records after `seq`, in order, gap-free (already cut at the restore point). */
  changes?: AsyncIterable<ChangeRecord>;
}

function split(key: string): { table: string; uuid: string } {
  const i = key.indexOf(':');
  if (i <= 0) throw new Error(`"${key.slice(0, 80)}" is not a table:uuid key`);
  return { table: key.slice(0, i), uuid: key.slice(i + 1) };
}

/** Writes the store into `dir` (which must not hold one yet); resolves with the last sequence number and the entity count. */
export async function importStore(dir: string, src: ImportSource): Promise<{ lastSeq: number; entities: number; changes: number }> {
  const db = new ClassicLevel<string, string>(dir, { createIfMissing: true, errorIfExists: true });
  await db.open();
  try {
    let ops: { type: 'put' | 'del'; key: string; value?: string }[] = [];
    const flush = async () => {
      if (ops.length) await db.batch(ops as never);
      ops = [];
    };
    let entities = 0;
    for await (const e of src.entities) {
      const { table, uuid } = split(e.key);
      ops.push({ type: 'put', key: entityKey(table, uuid), value: e.blob });
      entities++;
      if (ops.length >= BATCH) await flush();
    }
    let last = src.seq;
    let changes = 0;
    for await (const c of src.changes ?? []) {
      if (c.sequence !== last + 1) throw new Error(`the archived change feed has a gap: ${c.sequence} follows ${last}`);
      const { table, uuid } = split(c.key);
      const key = entityKey(table, uuid);
      ops.push(c.operation === 'DELETE' || c.new_val === null ? { type: 'del', key } : { type: 'put', key, value: c.new_val });
      ops.push({ type: 'put', key: changeKey(c.sequence), value: JSON.stringify(c) });
      last = c.sequence;
      changes++;
      if (ops.length >= BATCH) await flush();
    }
    await flush();
    await db.batch([
      { type: 'put', key: FORMAT_KEY, value: FORMAT_VERSION },
      { type: 'put', key: LAST_SEQ_KEY, value: String(last) },
      { type: 'put', key: TRIMMED_KEY, value: String(src.seq) },
    ], { sync: true });
    return { lastSeq: last, entities, changes };
  } finally {
    await db.close();
  }
}

/** Whether a running process holds the LevelDB in `dir` (its LOCK file): such a directory is never replaced. */
export async function storeInUse(dir: string): Promise<boolean> {
  const db = new ClassicLevel<string, string>(dir, { createIfMissing: false });
  try {
    await db.open();
    await db.close();
    return false;
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    return cause?.code === 'LEVEL_LOCKED' || /lock/i.test(cause?.message ?? '');
  }
}
