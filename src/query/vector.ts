// POST /vector/search: brute-force k nearest neighbours by Euclidean (L2) distance over a
// numeric-array field of the entities of one table (or of every table), ties by key.
import { ThemisError } from '../errors.js';
import { parseTable } from '../urn/urn.js';
import { compareStrings, equalsPredicate, parseDoc, resolveColumn } from './ordering.js';

export interface VectorQuery {
  readonly table?: string;
  readonly vector: readonly number[];
  readonly k: number;
  readonly field: string;
  /** Equality filter (ThemisDB's clients' `filter`): column → value, every one must hold (compared as /query predicates are). */
  readonly filter: readonly { readonly column: string; readonly value: string }[];
}

export const MAX_K = 10_000;
export const MAX_DIMENSIONS = 65_536;
const KNOWN = ['table', 'vector', 'k', 'field', 'filter'];
/** Entries of `filter` at most (as /query's predicates). */
export const MAX_FILTER = 64;

function bad(message: string): ThemisError {
  return new ThemisError('INVALID_QUERY', message);
}

/** Checks a /vector/search body completely; throws INVALID_QUERY naming the bad field. */
export function parseVectorQuery(body: unknown): VectorQuery {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw bad('request body must be a JSON object');
  const b = body as Record<string, unknown>;
  for (const key of Object.keys(b)) {
    if (!KNOWN.includes(key)) throw bad(`unknown field "${key.slice(0, 64)}"; known fields are ${KNOWN.join(', ')}`);
  }
  let table: string | undefined;
  if (b.table !== undefined) {
    if (typeof b.table !== 'string') throw bad('table must be a string "model.namespace.collection"');
    try {
      parseTable(b.table);
    } catch (err) {
      throw bad(`table: ${(err as Error).message}`);
    }
    table = b.table;
  }
  const v = b.vector;
  if (!Array.isArray(v) || v.length === 0 || v.length > MAX_DIMENSIONS) {
    throw bad(`vector must be an array of 1 to ${MAX_DIMENSIONS} numbers`);
  }
  if (!v.every((x) => typeof x === 'number' && Number.isFinite(x))) throw bad('vector must hold only finite numbers');
  const k = b.k ?? 10;
  if (typeof k !== 'number' || !Number.isInteger(k) || k < 1 || k > MAX_K) throw bad(`k must be an integer from 1 to ${MAX_K}`);
  const field = b.field ?? 'embedding';
  if (typeof field !== 'string' || field.length === 0 || field.length > 256) {
    throw bad('field must be a non-empty string of at most 256 characters');
  }
  const filter: { column: string; value: string }[] = [];
  if (b.filter !== undefined) {
    const f = b.filter;
    if (f === null || typeof f !== 'object' || Array.isArray(f)) throw bad('filter must be an object of field: value equalities');
    const entries = Object.entries(f as Record<string, unknown>);
    if (entries.length > MAX_FILTER) throw bad(`filter has more than ${MAX_FILTER} fields`);
    for (const [column, value] of entries) {
      if (column.length === 0 || column.length > 256) throw bad('filter: field names must be non-empty strings of at most 256 characters');
      if (typeof value !== 'string' && typeof value !== 'boolean' && !(typeof value === 'number' && Number.isFinite(value))) {
        throw bad(`filter.${column.slice(0, 64)} must be a string, a number or a boolean`);
      }
      filter.push({ column, value: String(value) });
    }
  }
  return { table, vector: v as number[], k, field, filter };
}

/**
 * Euclidean distance sqrt(Σ (candidate[i] − query[i])²), or undefined when `candidate` is not
 * a numeric array of the same length.
 */
export function l2Distance(query: readonly number[], candidate: unknown): number | undefined {
  if (!Array.isArray(candidate) || candidate.length !== query.length) return undefined;
  let sum = 0;
  for (let i = 0; i < query.length; i++) {
    const x = candidate[i];
    if (typeof x !== 'number') return undefined;
    const d = x - query[i]!;
    sum += d * d;
  }
  const distance = Math.sqrt(sum);
  // Components near ±1e308 can overflow the sum; such a candidate has no usable distance.
  return Number.isFinite(distance) ? distance : undefined;
}

function compareNumbers(a: number, b: number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export interface VectorRow {
  readonly table: string;
  readonly uuid: string;
  readonly blob: string;
}

export interface VectorHit {
  /** The uuid (ThemisDB's pk). */
  readonly pk: string;
  readonly distance: number;
  /** `table:uuid`; our addition, since pk alone is ambiguous across tables. */
  readonly key: string;
}

export interface VectorAnswer {
  results: VectorHit[];
  k: number;
  count: number;
}

/** The k nearest rows; ties in distance by (table, uuid) ascending. Skips rows without a usable vector. */
export async function searchVectors(q: VectorQuery, rows: AsyncIterable<VectorRow> | Iterable<VectorRow>): Promise<VectorAnswer> {
  const hits: { row: VectorRow; distance: number }[] = [];
  for await (const row of rows) {
    const doc = parseDoc(row.blob);
    if (doc === null) continue;
    if (!q.filter.every((p) => equalsPredicate(resolveColumn(doc, p.column), p.value))) continue;
    const distance = l2Distance(q.vector, resolveColumn(doc, q.field));
    if (distance !== undefined) hits.push({ row, distance });
  }
  hits.sort(
    (a, b) =>
      compareNumbers(a.distance, b.distance) || compareStrings(a.row.table, b.row.table) || compareStrings(a.row.uuid, b.row.uuid),
  );
  const results = hits.slice(0, q.k).map((h) => ({ pk: h.row.uuid, distance: h.distance, key: `${h.row.table}:${h.row.uuid}` }));
  return { results, k: q.k, count: results.length };
}
