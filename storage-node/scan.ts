// GET /entities?table=&after=&limit=: an ordered scan of one table, or of the whole node in
// (table, uuid) order, page by page with a continuation key; the sidecar copies shards with it.
import { parseKey, parseTable } from '../src/urn/urn.js';
import { badParam, intParam, rejectUnknownParams, singleParam as single } from './params.js';
import type { Answer } from './respond.js';
import type { Store } from './store.js';

export interface ScanParams {
  readonly table?: string;
  readonly after?: { table: string; uuid: string };
  readonly limit: number;
}

export const SCAN_DEFAULT_LIMIT = 100;
export const SCAN_MAX_LIMIT = 1000;
const KNOWN = ['table', 'after', 'limit'];

/** Validates the scan's query string; INVALID_PARAMETER naming the bad parameter. */
export function parseScanParams(q: URLSearchParams): ScanParams {
  rejectUnknownParams(q, KNOWN);
  const table = single(q, 'table');
  if (table !== undefined) {
    try {
      parseTable(table);
    } catch (err) {
      throw badParam(`table: ${(err as Error).message}`);
    }
  }
  const afterText = single(q, 'after');
  let after: ScanParams['after'];
  if (afterText !== undefined) {
    try {
      const k = parseKey(afterText);
      after = { table: k.table, uuid: k.uuid };
    } catch (err) {
      throw badParam(`after: ${(err as Error).message}`);
    }
    if (table !== undefined && after.table !== table) {
      throw badParam(`after names table ${after.table}, but the scan is of table ${table}; pass the "next" of the previous page`);
    }
  }
  const limit = intParam(q, 'limit', SCAN_DEFAULT_LIMIT, 1, SCAN_MAX_LIMIT);
  return { table, after, limit };
}

/**
 * Answers `{entities: [{key, blob}], count, next}`; `next` is the key (`table:uuid`) to pass
 * as `after` for the following page, or null when the scan reached the end.
 */
export async function scan(store: Store, p: ScanParams, budgetBytes: number): Promise<Answer> {
  const page = await store.scan({ table: p.table, after: p.after, limit: p.limit, budgetBytes });
  const entities = page.items.map((e) => ({ key: `${e.table}:${e.uuid}`, blob: e.blob }));
  const last = entities[entities.length - 1];
  const next = page.more && last !== undefined ? last.key : null;
  return { status: 200, body: { entities, count: entities.length, next } };
}
