// Columns and their order: how a column name finds a field in a blob, and the one total
// order of field values that range filters, order_by and cross-shard merges all share.

/** A parsed blob; only JSON objects have columns. */
export type Doc = Record<string, unknown>;

/** Parses a stored blob; a blob that is not a JSON object has no columns (null). */
export function parseDoc(blob: string): Doc | null {
  try {
    const v: unknown = JSON.parse(blob);
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Doc) : null;
  } catch {
    return null;
  }
}

/**
 * The field a column names: a top-level field of exactly that name if there is one, else the
 * dotted path `a.b.c` through nested objects. `undefined` when absent. Own properties only.
 */
export function resolveColumn(doc: Doc, column: string): unknown {
  if (Object.hasOwn(doc, column)) return doc[column];
  if (!column.includes('.')) return undefined;
  let cur: unknown = doc;
  for (const part of column.split('.')) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur) || !Object.hasOwn(cur, part)) return undefined;
    cur = (cur as Doc)[part];
  }
  return cur;
}

/**
 * A value as the order sees it: numbers (JSON numbers and numeric strings) by value, all
 * other strings (booleans as "true"/"false") by UTF-16 code unit. null, objects and
 * arrays have no place in the order (an entity with such a field counts as lacking it).
 */
export type OrderValue = { num: number; str?: undefined } | { num?: undefined; str: string };

// Plain decimal notation only: "12", "-0.5", "1e3", ".5". Not "", " 1", "0x10", "Infinity".
const NUMERIC_RE = /^-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

export function toOrderValue(v: unknown): OrderValue | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? { num: v } : undefined;
  if (typeof v === 'string') {
    if (NUMERIC_RE.test(v)) {
      const n = Number(v);
      if (Number.isFinite(n)) return { num: n };
    }
    return { str: v };
  }
  if (typeof v === 'boolean') return { str: String(v) };
  return undefined;
}

/**
 * Total order: two numbers compare numerically, two strings by code unit, and a number
 * always sorts before a non-numeric string (so that sorting is transitive and every shard
 * sorts the same way). Returns <0, 0 or >0.
 */
export function compareValues(a: OrderValue, b: OrderValue): number {
  if (a.num !== undefined) {
    if (b.num !== undefined) return a.num < b.num ? -1 : a.num > b.num ? 1 : 0;
    return -1;
  }
  if (b.num !== undefined) return 1;
  return a.str < b.str ? -1 : a.str > b.str ? 1 : 0;
}

/** Equality for predicates: String(field) === value, for string, number and boolean fields. */
export function equalsPredicate(field: unknown, value: string): boolean {
  if (typeof field === 'string') return field === value;
  if (typeof field === 'number' || typeof field === 'boolean') return String(field) === value;
  return false;
}

/** Code-unit comparison of two strings (what LevelDB's byte order gives for ASCII keys). */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
