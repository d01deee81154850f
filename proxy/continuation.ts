// Continuation tokens of paged scatter-gather queries: where the merged result stopped (the
// last emitted position, which is a position in every shard's order too), how many results
// were emitted, the topology epoch, and a hash of the query, so a token cannot resume another.
import { createHash } from 'node:crypto';
import { ThemisError } from '../src/errors.js';
import type { Position } from '../src/query/query.js';

export interface Continuation {
  epoch: number;
  query: string;
  after: Position;
  emitted: number;
}

/** A stable fingerprint of the query's meaning (not of its paging fields). */
export function queryFingerprint(query: Record<string, unknown>): string {
  return createHash('sha256').update(JSON.stringify(query)).digest('hex').slice(0, 32);
}

export function encodeContinuation(c: Continuation): string {
  return Buffer.from(JSON.stringify({ v: 1, e: c.epoch, q: c.query, a: c.after, n: c.emitted })).toString('base64url');
}

export function decodeContinuation(token: unknown, epoch: number, query: string): Continuation {
  const bad = (why: string) => new ThemisError('INVALID_CONTINUATION', `continuation: ${why}; send the token from the previous page unchanged`);
  if (typeof token !== 'string' || token.length > 4096) throw bad('must be the string a previous page returned');
  let o: { v?: unknown; e?: unknown; q?: unknown; a?: { uuid?: unknown; value?: { num?: unknown; str?: unknown } }; n?: unknown };
  try {
    o = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw bad('is not a token this mesh issued');
  }
  if (o?.v !== 1 || typeof o.e !== 'number' || typeof o.q !== 'string' || typeof o.n !== 'number' || typeof o.a?.uuid !== 'string') {
    throw bad('is not a token this mesh issued');
  }
  if (o.q !== query) throw bad('belongs to a different query');
  if (o.e !== epoch) {
    throw new ThemisError('CONTINUATION_STALE', `continuation was issued at topology epoch ${o.e}, the mesh is at ${epoch}: shards may have moved, so restart the query`);
  }
  const v = o.a.value;
  const value = v === undefined ? undefined : typeof v.num === 'number' ? { num: v.num } : typeof v.str === 'string' ? { str: v.str } : undefined;
  if (v !== undefined && value === undefined) throw bad('is not a token this mesh issued');
  return { epoch: o.e, query: o.q, after: { uuid: o.a.uuid, ...(value ? { value } : {}) }, emitted: o.n };
}
