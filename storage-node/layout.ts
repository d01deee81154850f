// The LevelDB key layout of the storage node: entities under `e!{table}!{uuid}`, change
// records under `c!{sequence, 16 digits}`, time marks under `t!{ms}`, follower registrations
// under `f!{id}`, metadata under `m!…`. All keys and values are UTF-8.
//
// Table names use only [A-Za-z0-9_.-] and uuids only hex digits and "-", all above "!" in
// byte order, so LevelDB's key order is exactly (table, uuid) order and a table is one range.

export const FORMAT_KEY = 'm!format';
export const FORMAT_VERSION = '1';
/** The sequence number of the newest change record, written in the same batch as that record. */
export const LAST_SEQ_KEY = 'm!last_seq';

const ENTITY = 'e!';
const CHANGE = 'c!';
const SEQ_DIGITS = 16; // Number.MAX_SAFE_INTEGER has 16 digits

export function entityKey(table: string, uuid: string): string {
  return `${ENTITY}${table}!${uuid}`;
}

/** Bounds of one table's range, for iterators: gt + lt. */
export function tableBounds(table: string): { gt: string; lt: string } {
  // "!" < every name character, "\"" is the next byte: `e!{table}"` ends the table's range.
  return { gt: `${ENTITY}${table}!`, lt: `${ENTITY}${table}"` };
}

/** Bounds of every entity. */
export const ALL_ENTITIES = Object.freeze({ gt: ENTITY, lt: 'e"' });

/** Splits an entity key back into table and uuid. */
export function splitEntityKey(key: string): { table: string; uuid: string } {
  const sep = key.indexOf('!', ENTITY.length);
  return { table: key.slice(ENTITY.length, sep), uuid: key.slice(sep + 1) };
}

export function changeKey(seq: number): string {
  return CHANGE + String(seq).padStart(SEQ_DIGITS, '0');
}

export function changeSeq(key: string): number {
  return Number(key.slice(CHANGE.length));
}

export const ALL_CHANGES_END = 'c"';
export const ALL_CHANGES_START = CHANGE;

/** Every change record with sequence ≤ this is trimmed (retention.ts); absent = 0. */
export const TRIMMED_KEY = 'm!trimmed_through';

/** A time mark: the newest sequence committed in the second starting at `ms` (every batch updates its second's). */
export function timeMarkKey(ms: number): string {
  return `t!${String(Math.max(0, Math.floor(ms))).padStart(SEQ_DIGITS, '0')}`;
}
export const ALL_TIME_MARKS = Object.freeze({ gt: 't!', lt: 't"' });

/** A follower registration: `{seq, expires_at}` JSON. */
export function followerKey(id: string): string {
  return `f!${id}`;
}
export const ALL_FOLLOWERS = Object.freeze({ gt: 'f!', lt: 'f"' });

/** A change record exactly as stored and as served by GET /changefeed. */
export interface ChangeRecord {
  operation: 'PUT' | 'DELETE';
  /** ThemisDB key form `table:uuid`. */
  key: string;
  sequence: number;
  /** Blob before the change; null when the entity did not exist. */
  old_val: string | null;
  /** Blob after the change; null for DELETE. */
  new_val: string | null;
  /**
   * Ours: the node's wall-clock time when the record's batch was committed (ISO 8601 UTC, ms),
   * the same for every record of a batch and never lower than the record before it. Absent in
   * records written before it existed.
   */
  committed_at?: string;
}

/** A record's commit time in ms, or undefined when it has none (an older record). */
export function committedMs(record: { committed_at?: unknown }): number | undefined {
  if (typeof record.committed_at !== 'string') return undefined;
  const ms = Date.parse(record.committed_at);
  return Number.isFinite(ms) ? ms : undefined;
}
