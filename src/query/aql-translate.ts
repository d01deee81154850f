// POST /query/aql, translated: checks the request body ({query, params, use_cursor, cursor,
// batch_size}), binds the parameters into the parsed AQL and turns it into the mesh's own
// query — a /query body (table, equality predicates, ranges, order_by) run by scatter-gather,
// or, for `x._key == "<key>"`, the one entity to read from its owner — plus LIMIT and paging.
// The collection maps to a table the way ThemisDB's clients build keys:
// model.namespace.collection, with the model and namespace configured for bare names.
import { ThemisError } from '../errors.js';
import { parseKey, parseTable } from '../urn/key.js';
import { MAX_LIMIT } from './query.js';
import { parseAql, unsupported, type AqlQuery, type Comparison, type Count, type Literal, type Operand } from './aql-parser.js';

export interface AqlRequest {
  readonly query: string;
  readonly params: Readonly<Record<string, unknown>>;
  readonly useCursor: boolean;
  readonly cursor?: string;
  readonly batchSize?: number;
}

/** Results per cursor page at most (the scatter-gather's page_size bound). */
export const MAX_BATCH = 100_000;
/** The page size of a cursor when neither batch_size nor LIMIT gives one (ThemisDB's). */
export const DEFAULT_BATCH = 1000;

function bad(message: string): ThemisError {
  return new ThemisError('INVALID_AQL', message);
}

const KNOWN = ['query', 'params', 'bindVars', 'use_cursor', 'cursor', 'batch_size', 'page_size', 'explain', 'optimize', 'allow_full_scan'];

/** Checks a /query/aql body; INVALID_AQL names the bad field. */
export function parseAqlRequest(body: Record<string, unknown>): AqlRequest {
  for (const k of Object.keys(body)) {
    if (!KNOWN.includes(k)) throw bad(`unknown field "${k.slice(0, 64)}"; known fields are ${KNOWN.join(', ')}`);
  }
  if (typeof body.query !== 'string' || body.query.trim() === '') throw bad('query is required: the AQL text');
  const params = body.params !== undefined ? body.params : body.bindVars !== undefined ? body.bindVars : {};
  if (params === null || typeof params !== 'object' || Array.isArray(params)) throw bad('params must be an object of bind parameter values');
  if (body.use_cursor !== undefined && typeof body.use_cursor !== 'boolean') throw bad('use_cursor must be true or false');
  if (body.cursor !== undefined && (typeof body.cursor !== 'string' || body.cursor === '')) throw bad('cursor must be the next_cursor string of the previous page');
  const size = body.batch_size ?? body.page_size;
  if (size !== undefined && (typeof size !== 'number' || !Number.isInteger(size) || size < 1 || size > MAX_BATCH)) throw bad(`batch_size must be an integer from 1 to ${MAX_BATCH}`);
  for (const flag of ['optimize', 'allow_full_scan', 'explain'] as const) {
    if (body[flag] !== undefined && typeof body[flag] !== 'boolean') throw bad(`${flag} must be true or false`);
  }
  if (body.explain === true) throw unsupported('explain (the mesh has no query plan to show: every shard scans its part of the table)');
  return {
    query: body.query,
    params: params as Record<string, unknown>,
    // A cursor continues a cursor walk, with or without use_cursor repeated.
    useCursor: body.use_cursor === true || body.cursor !== undefined,
    ...(body.cursor !== undefined ? { cursor: body.cursor as string } : {}),
    ...(size !== undefined ? { batchSize: size as number } : {}),
  };
}

export interface AqlPlan {
  readonly table: string;
  /** The /query body: table, predicates, range, order_by (without limit), return entities. */
  readonly query: Record<string, unknown>;
  /** `x._key == …`: the one entity's key (table:uuid), or null when no entity can match. */
  readonly key?: string | null;
  /** Results to skip, then at most `count` (LIMIT offset, count). */
  readonly offset: number;
  readonly count?: number;
}

export interface TableDefaults {
  /** Model of a bare collection name (ThemisDB's clients: the one passed to get/put). */
  readonly model: string;
  /** Namespace of a bare collection name (ThemisDB's clients: the client's `namespace`, "default"). */
  readonly namespace: string;
}

/** The table a collection name stands for: model.namespace.collection, or a bare collection with the defaults. */
export function tableOf(name: string, d: TableDefaults): string {
  const parts = name.split('.');
  const table = parts.length === 1 ? `${d.model}.${d.namespace}.${name}` : name;
  if (parts.length !== 1 && parts.length !== 3) throw bad(`collection "${name.slice(0, 100)}": write a collection name, or model.namespace.collection`);
  try {
    parseTable(table);
  } catch (e) {
    throw bad(`collection "${name.slice(0, 100)}" is not a table of the mesh (${table.slice(0, 200)}): ${(e as Error).message}`);
  }
  return table;
}

type Bound = { kind: 'field'; path: readonly string[] } | { kind: 'value'; value: Literal };

function bind(o: Operand, params: Readonly<Record<string, unknown>>, used: Set<string>): Bound {
  if (o.kind === 'field') return o;
  if (o.kind === 'literal') return { kind: 'value', value: o.value };
  if (!Object.hasOwn(params, o.name)) throw bad(`bind parameter @${o.name} (line ${o.at.line}, column ${o.at.column}) has no value in params`);
  used.add(o.name);
  const v = params[o.name];
  if (v === null || typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))) return { kind: 'value', value: v };
  throw unsupported(`bind parameter @${o.name} holds ${Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'an object' : 'a value'} (compare with strings, numbers or booleans)`, o.at);
}

function bindCount(c: Count, params: Readonly<Record<string, unknown>>, used: Set<string>, what: string): number {
  let v: unknown;
  if (c.kind === 'literal') v = c.value;
  else {
    if (!Object.hasOwn(params, c.name)) throw bad(`bind parameter @${c.name} (line ${c.at.line}, column ${c.at.column}) has no value in params`);
    used.add(c.name);
    v = params[c.name];
  }
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_LIMIT) throw bad(`LIMIT ${what} must be an integer from 0 to ${MAX_LIMIT}`);
  return v;
}

const FLIP: Record<Comparison['op'], Comparison['op']> = { '==': '==', '<': '>', '<=': '>=', '>': '<', '>=': '<=' };
const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** The table:uuid key a `_key` value names in `table`, or null (it names no entity of it). */
function keyIn(table: string, v: Literal): string | null {
  if (typeof v !== 'string') return null;
  if (UUID_RE.test(v)) return `${table}:${v}`;
  try {
    const k = parseKey(v);
    return k.table === table ? `${table}:${k.uuid}` : null;
  } catch {
    return null;
  }
}

/** Parses and binds; the mesh's query for it. Throws INVALID_AQL, AQL_NOT_SUPPORTED, GRAPH_NOT_SUPPORTED. */
export function translateAql(req: AqlRequest, d: TableDefaults): AqlPlan {
  const q: AqlQuery = parseAql(req.query);
  const params = req.params;
  const used = new Set<string>();
  let table: string;
  if (q.collection.kind === 'param') {
    const name = params[q.collection.name];
    if (!Object.hasOwn(params, q.collection.name)) throw bad(`bind parameter @@${q.collection.name} has no value in params`);
    if (typeof name !== 'string') throw bad(`bind parameter @@${q.collection.name} must be a collection name (a string)`);
    used.add(q.collection.name);
    table = tableOf(name, d);
  } else {
    table = tableOf(q.collection.name, d);
  }
  // The /query body's own shapes: equality values as strings, range bounds as written.
  const predicates: { column: string; value: string }[] = [];
  const range: Record<string, unknown>[] = [];
  const keys = new Set<string | null>();
  for (const f of q.filters) {
    let left = bind(f.left, params, used);
    let right = bind(f.right, params, used);
    let op = f.op;
    if (left.kind === 'value') {
      [left, right] = [right, left];
      op = FLIP[op];
    }
    if (left.kind !== 'field' || right.kind !== 'value') {
      throw unsupported(left.kind === 'field' ? 'a comparison of two fields' : 'a comparison without a field of the loop variable', f.at);
    }
    const column = left.path.join('.');
    const value = right.value;
    if (column === '_key') {
      if (op !== '==') throw unsupported(`_key ${op} (only _key == "<key>" is run, on the key's owner)`, f.at);
      keys.add(keyIn(table, value));
      continue;
    }
    if (value === null) throw unsupported('a comparison with null', f.at);
    if (op === '==') {
      predicates.push({ column, value: String(value) });
      continue;
    }
    if (typeof value === 'boolean') throw unsupported(`${op} with a boolean`, f.at);
    const strict = op === '<' || op === '>';
    range.push(op === '<' || op === '<=' ? { column, lte: value, includeUpper: !strict } : { column, gte: value, includeLower: !strict });
  }
  const sort = q.sort ? { column: q.sort.path.join('.'), desc: q.sort.desc } : undefined;
  if (sort?.column === '_key') throw unsupported('SORT by _key (without SORT the results come in key order)');
  const offset = q.limit?.offset ? bindCount(q.limit.offset, params, used, 'offset') : 0;
  const count = q.limit ? bindCount(q.limit.count, params, used, 'count') : undefined;
  for (const name of Object.keys(params)) {
    if (!used.has(name)) throw bad(`bind parameter "${name.slice(0, 64)}" is not used in the query`);
  }
  const query: Record<string, unknown> = {
    table,
    ...(predicates.length ? { predicates } : {}),
    ...(range.length ? { range } : {}),
    ...(sort ? { order_by: { column: sort.column, desc: sort.desc } } : {}),
    return: 'entities',
  };
  const key = keys.size === 0 ? undefined : keys.size === 1 ? [...keys][0]! : null;
  return { table, query, ...(key !== undefined ? { key } : {}), offset, ...(count !== undefined ? { count } : {}) };
}
