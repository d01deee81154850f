// POST /query: validates the ThemisDB query body before any work, then filters one table's
// entities (equality predicates, ranges), orders them (order_by, ties by key) and shapes the answer.
import { ThemisError } from '../errors.js';
import { parseTable } from '../urn/urn.js';
import {
  compareStrings,
  compareValues,
  equalsPredicate,
  parseDoc,
  resolveColumn,
  toOrderValue,
  type OrderValue,
} from './ordering.js';

export interface Predicate {
  readonly column: string;
  readonly value: string;
}
export interface Range {
  readonly column: string;
  readonly gte?: OrderValue;
  readonly lte?: OrderValue;
  readonly includeLower: boolean;
  readonly includeUpper: boolean;
}
export interface OrderBy {
  readonly column: string;
  readonly desc: boolean;
  readonly limit?: number;
}
/** A position in a query's result order: results strictly after it are wanted. */
export interface Position {
  readonly uuid: string;
  /** The order_by column's value at that position (absent without order_by). */
  readonly value?: OrderValue;
}
export interface Query {
  readonly table: string;
  readonly predicates: readonly Predicate[];
  readonly range: readonly Range[];
  readonly orderBy?: OrderBy;
  /**
   * "rows" (our addition, used by the sidecar to merge shards) answers `{key, order, blob}`
   * per result: the key, the order_by value, and the blob unless `blobs` is false.
   */
  readonly return: 'keys' | 'entities' | 'count' | 'rows';
  /** Our additions for paging: start strictly after this position … */
  readonly after?: Position;
  /** … and return at most this many results (on top of order_by.limit). */
  readonly limit?: number;
  readonly blobs: boolean;
}

export const MAX_CONDITIONS = 64;
export const MAX_LIMIT = 1_000_000;
const MAX_COLUMN = 256;

function bad(message: string): ThemisError {
  return new ThemisError('INVALID_QUERY', message);
}

type Obj = Record<string, unknown>;

function object(v: unknown, where: string, known: readonly string[]): Obj {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw bad(`${where} must be a JSON object`);
  for (const k of Object.keys(v)) {
    if (!known.includes(k)) throw bad(`${where}: unknown field "${k.slice(0, 64)}"; known fields are ${known.join(', ')}`);
  }
  return v as Obj;
}

function column(v: unknown, where: string): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_COLUMN) {
    throw bad(`${where}.column must be a non-empty string of at most ${MAX_COLUMN} characters`);
  }
  return v;
}

function list(v: unknown, where: string): unknown[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw bad(`${where} must be an array`);
  if (v.length > MAX_CONDITIONS) throw bad(`${where} has more than ${MAX_CONDITIONS} entries`);
  return v;
}

function flag(v: unknown, where: string, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw bad(`${where} must be true or false`);
  return v;
}

function bound(v: unknown, where: string): OrderValue | undefined {
  if (v === undefined) return undefined;
  const o = typeof v === 'string' || typeof v === 'number' ? toOrderValue(v) : undefined;
  if (o === undefined) throw bad(`${where} must be a number or a string`);
  return o;
}

/** Checks a /query body completely; throws INVALID_QUERY naming the first bad field. */
export function parseQuery(body: unknown): Query {
  const b = object(body, 'query', ['table', 'predicates', 'range', 'order_by', 'return', 'after', 'limit', 'blobs']);
  if (typeof b.table !== 'string') throw bad('table is required: write "model.namespace.collection"');
  try {
    parseTable(b.table);
  } catch (err) {
    throw bad(`table: ${(err as Error).message}`);
  }
  const predicates = list(b.predicates, 'predicates').map((p, i): Predicate => {
    const o = object(p, `predicates[${i}]`, ['column', 'value']);
    if (typeof o.value !== 'string') throw bad(`predicates[${i}].value must be a string (write numbers as "42")`);
    return { column: column(o.column, `predicates[${i}]`), value: o.value };
  });
  const range = list(b.range, 'range').map((r, i): Range => {
    const w = `range[${i}]`;
    const o = object(r, w, ['column', 'gte', 'lte', 'includeLower', 'includeUpper']);
    return {
      column: column(o.column, w),
      gte: bound(o.gte, `${w}.gte`),
      lte: bound(o.lte, `${w}.lte`),
      includeLower: flag(o.includeLower, `${w}.includeLower`, true),
      includeUpper: flag(o.includeUpper, `${w}.includeUpper`, true),
    };
  });
  let orderBy: OrderBy | undefined;
  if (b.order_by !== undefined) {
    const o = object(b.order_by, 'order_by', ['column', 'desc', 'limit']);
    const limit = o.limit;
    if (limit !== undefined && (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 0 || limit > MAX_LIMIT)) {
      throw bad(`order_by.limit must be an integer from 0 to ${MAX_LIMIT}`);
    }
    orderBy = { column: column(o.column, 'order_by'), desc: flag(o.desc, 'order_by.desc', false), limit };
  }
  const ret = b.return ?? 'entities';
  if (ret !== 'keys' && ret !== 'entities' && ret !== 'count' && ret !== 'rows') throw bad('return must be "keys", "entities" or "count"');
  const limit = b.limit;
  if (limit !== undefined && (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 0 || limit > MAX_LIMIT)) {
    throw bad(`limit must be an integer from 0 to ${MAX_LIMIT}`);
  }
  let after: Position | undefined;
  if (b.after !== undefined) {
    const a = object(b.after, 'after', ['uuid', 'value']);
    if (typeof a.uuid !== 'string' || a.uuid.length === 0 || a.uuid.length > 64) throw bad('after.uuid must be the uuid of the last result seen');
    let value: OrderValue | undefined;
    if (a.value !== undefined) {
      const v = object(a.value, 'after.value', ['num', 'str']);
      if (typeof v.num === 'number' && Number.isFinite(v.num) && v.str === undefined) value = { num: v.num };
      else if (typeof v.str === 'string' && v.num === undefined) value = { str: v.str };
      else throw bad('after.value must be {"num": number} or {"str": string}');
    }
    if ((value === undefined) !== (orderBy === undefined)) throw bad('after.value is required with order_by and not allowed without it');
    after = { uuid: a.uuid, value };
  }
  return { table: b.table, predicates, range, orderBy, return: ret, after, limit, blobs: flag(b.blobs, 'blobs', true) };
}

function inRange(v: OrderValue | undefined, r: Range): boolean {
  if (v === undefined) return false;
  if (r.gte !== undefined) {
    const c = compareValues(v, r.gte);
    if (c < 0 || (c === 0 && !r.includeLower)) return false;
  }
  if (r.lte !== undefined) {
    const c = compareValues(v, r.lte);
    if (c > 0 || (c === 0 && !r.includeUpper)) return false;
  }
  return true;
}

export interface Row {
  readonly uuid: string;
  readonly blob: string;
}

export interface ResultRow {
  key: string;
  uuid: string;
  order?: OrderValue;
  blob?: string;
}

export type QueryAnswer =
  | { table: string; count: number; rows: ResultRow[] }
  | { table: string; count: number; keys: string[] }
  | { table: string; count: number; entities: string[] }
  | { table: string; count: number };

/**
 * Runs a query over one table's rows, which must arrive in key (uuid) order.
 * Without order_by the answer keeps that order; with it, ties are broken by key ascending.
 */
export async function runQuery(q: Query, rows: AsyncIterable<Row> | Iterable<Row>): Promise<QueryAnswer> {
  const hits: { row: Row; sortBy?: OrderValue }[] = [];
  for await (const row of rows) {
    const needsDoc = q.predicates.length > 0 || q.range.length > 0 || q.orderBy !== undefined;
    if (!needsDoc) {
      hits.push({ row });
      continue;
    }
    const doc = parseDoc(row.blob);
    if (doc === null) continue;
    if (!q.predicates.every((p) => equalsPredicate(resolveColumn(doc, p.column), p.value))) continue;
    if (!q.range.every((r) => inRange(toOrderValue(resolveColumn(doc, r.column)), r))) continue;
    if (q.orderBy === undefined) {
      hits.push({ row });
      continue;
    }
    const sortBy = toOrderValue(resolveColumn(doc, q.orderBy.column));
    if (sortBy !== undefined) hits.push({ row, sortBy });
  }
  let selected = hits;
  const sign = q.orderBy?.desc ? -1 : 1;
  const order = (a: { sortBy?: OrderValue; uuid: string }, b: { sortBy?: OrderValue; uuid: string }) =>
    (q.orderBy ? sign * compareValues(a.sortBy!, b.sortBy!) : 0) || compareStrings(a.uuid, b.uuid);
  if (q.orderBy !== undefined) selected.sort((a, b) => order({ sortBy: a.sortBy, uuid: a.row.uuid }, { sortBy: b.sortBy, uuid: b.row.uuid }));
  if (q.after !== undefined) {
    const pos = { sortBy: q.after.value, uuid: q.after.uuid };
    selected = selected.filter((h) => order({ sortBy: h.sortBy, uuid: h.row.uuid }, pos) > 0);
  }
  const limit = Math.min(q.orderBy?.limit ?? Infinity, q.limit ?? Infinity);
  if (limit < selected.length) selected = selected.slice(0, limit);
  const count = selected.length;
  if (q.return === 'count') return { table: q.table, count };
  if (q.return === 'rows') {
    const rows = selected.map((h) => ({ key: `${q.table}:${h.row.uuid}`, uuid: h.row.uuid, ...(h.sortBy ? { order: h.sortBy } : {}), ...(q.blobs ? { blob: h.row.blob } : {}) }));
    return { table: q.table, count, rows };
  }
  if (q.return === 'keys') return { table: q.table, count, keys: selected.map((h) => `${q.table}:${h.row.uuid}`) };
  return { table: q.table, count, entities: selected.map((h) => h.row.blob) };
}
