// Scatter-gather for POST /query and POST /vector/search: the query runs on every owner in
// the topology in parallel (bounded fan-out, per-shard timeout) and the answers are merged
// as if one node held all the data — a k-way merge in the storage node's total order with the
// limit pushed down, counts summed, vector top-k by (distance, key). Every range is read once,
// from its owner: a node's rows of ranges it does not own (replica copies, data not yet cleaned
// up after a move) are dropped. Shards are read a page at a time, so merging holds about one
// page per shard; the answer streams out as it is merged.
import { once } from 'node:events';
import { ThemisError } from '../src/errors.js';
import { parseQuery, type Position, type Query, type ResultRow } from '../src/query/query.js';
import { MAX_K, parseVectorQuery, type VectorHit } from '../src/query/vector.js';
import type { Topology } from '../src/topology/topology.js';
import { compareStrings, compareValues } from '../src/query/ordering.js';
import { sha256Hex } from '../src/signing/sign.js';
import { parseJsonObject } from '../src/http-body.js';
import type { ShardResolver } from './resolver.js';
import { readAnswer } from './upstream.js';
import type { TopologySource } from './control/topology-source.js';
import type { Reply } from './respond.js';
import { decodeContinuation, encodeContinuation, queryFingerprint } from './continuation.js';
import { EPOCH_HEADER, SHARD_HEADER } from './mesh-headers.js';
import type { RequestObs } from './observability/request-record.js';
import type { StageSpan } from './observability/tracing.js';

/** A traced fan-out: its span, under which each shard call is a child. */
interface Fan {
  obs: RequestObs;
  span: StageSpan;
}

/** Runs `f` under a 'scatter-gather' span of the request (when traced), ended when it settles. */
async function fanOut(obs: RequestObs | undefined, shards: number, f: (fan: Fan | undefined) => Promise<void>): Promise<void> {
  if (!obs) return f(undefined);
  const span = obs.trace.child('scatter-gather');
  span.attr('themis.shards', shards);
  try {
    await f({ obs, span });
    span.end();
  } catch (e) {
    span.end((e as ThemisError).code ?? 'error');
    throw e;
  }
}

export interface ScatterOptions {
  /** Shard calls in flight at once for one query. */
  maxConcurrency: number;
  /** Each shard call (one page) must answer within this. */
  shardTimeoutMs: number;
  /** Rows fetched from a shard per call. */
  pageSize: number;
  /** Largest shard answer read. */
  maxAnswerBytes: number;
}

export interface ScatterDeps {
  topology: TopologySource;
  resolver: ShardResolver;
  options: ScatterOptions;
  /** Whether a node may hold rows of ranges it neither owns nor replicates (a range move in progress): counts are then filtered too. */
  foreignRows?: () => boolean;
}

/** Keys per page when a count must be filtered by ownership (about 6 MB of keys). */
const COUNT_PAGE = 100_000;

/** Our paging and failure fields, taken off the body before the storage node's validation. */
const EXTRA = ['page_size', 'continuation', 'allow_partial'] as const;

class ShardFailure extends Error {
  constructor(
    readonly shard: string,
    readonly reason: string,
  ) {
    super(`${shard}: ${reason}`);
  }
}

/** Runs `tasks` with at most `n` in flight; settles every one. */
async function bounded<T>(n: number, tasks: (() => Promise<T>)[]): Promise<PromiseSettledResult<T>[]> {
  const out: PromiseSettledResult<T>[] = new Array(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const i = next++;
      out[i] = await tasks[i]!().then(
        (value) => ({ status: 'fulfilled', value }) as const,
        (reason: unknown) => ({ status: 'rejected', reason }) as const,
      );
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, tasks.length) }, worker));
  return out;
}

function extras(body: Record<string, unknown>): { pageSize?: number; continuation?: unknown; allowPartial: boolean; rest: Record<string, unknown> } {
  const { page_size, continuation, allow_partial, ...rest } = body;
  if (page_size !== undefined && (typeof page_size !== 'number' || !Number.isInteger(page_size) || page_size < 1 || page_size > 100_000)) {
    throw new ThemisError('INVALID_QUERY', 'page_size must be an integer from 1 to 100000');
  }
  if (allow_partial !== undefined && typeof allow_partial !== 'boolean') throw new ThemisError('INVALID_QUERY', 'allow_partial must be true or false');
  return { pageSize: page_size as number | undefined, continuation, allowPartial: allow_partial === true, rest };
}

/** Where a shard's scan resumes after `row`: the `after` of the next page, or of a continuation. */
function positionOf(row: ResultRow): Position {
  return { uuid: row.uuid, ...(row.order ? { value: row.order } : {}) };
}

/** Does `shard` own `key` in the topology of this query? (Each node also holds copies it does not own.) */
function owns(topo: Topology, shard: string, key: string): boolean {
  try {
    return topo.ownerOfKey(key) === shard;
  } catch {
    return false;
  }
}

/** (table, uuid) of a `table:uuid` key: vector ties are ordered by that pair, not the string. */
function splitKey(key: string): [string, string] {
  const i = key.lastIndexOf(':');
  return [key.slice(0, i), key.slice(i + 1)];
}

export class ScatterGather {
  constructor(private readonly d: ScatterDeps) {}

  /** One call to one shard; resolves with its JSON answer or throws ShardFailure. */
  private async call(shard: string, path: string, body: unknown, fan?: Fan): Promise<any> {
    const bytes = Buffer.from(JSON.stringify(body));
    const span = fan?.obs.trace.child(`shard ${shard}`, 'internal', fan.span);
    try {
      const answer = await this.callShard(shard, path, bytes, fan && { obs: fan.obs, span: span! });
      span?.end();
      return answer;
    } catch (e) {
      span?.end((e as Error).message);
      throw e;
    }
  }

  private async callShard(shard: string, path: string, bytes: Buffer, fan?: Fan): Promise<any> {
    try {
      const up = await this.d.resolver.resolve(shard).upstream.request({
        ...(fan ? { obs: fan.obs, parent: fan.span } : {}),
        method: 'POST',
        path,
        headers: { 'content-type': 'application/json' },
        body: bytes,
        contentSha256: sha256Hex(bytes),
        timeoutMs: this.d.options.shardTimeoutMs,
      });
      const text = await readAnswer(up, this.d.options.maxAnswerBytes);
      if (up.status !== 200) {
        let code = `status ${up.status}`;
        try {
          code = JSON.parse(text.toString('utf8')).code ?? code;
        } catch {
          /* not JSON */
        }
        throw new ShardFailure(shard, code);
      }
      return JSON.parse(text.toString('utf8'));
    } catch (e) {
      if (e instanceof ShardFailure) throw e;
      throw new ShardFailure(shard, (e as ThemisError).code ?? (e as Error).message);
    }
  }

  private fail(missing: ShardFailure[]): ThemisError {
    return new ThemisError('SHARDS_UNAVAILABLE', `no answer from ${missing.map((m) => m.message).join('; ')}`, {
      missing_shards: missing.map((m) => m.shard),
    });
  }

  private headers(epoch: number, answered: string[], missing: ShardFailure[]): Record<string, string> {
    return {
      [EPOCH_HEADER]: String(epoch),
      [SHARD_HEADER]: answered.join(','),
      ...(missing.length ? { 'x-themis-partial': 'true' } : {}),
    };
  }

  async query(reply: Reply, buf: Buffer, obs?: RequestObs): Promise<void> {
    return fanOut(obs, this.d.topology.current().owners().length, (fan) => this.queryAll(reply, buf, fan));
  }

  private async queryAll(reply: Reply, buf: Buffer, fan: Fan | undefined): Promise<void> {
    const { pageSize, continuation, allowPartial, rest } = extras(parseJsonObject(buf, 'INVALID_QUERY'));
    const q = parseQuery(rest); // 400 before any fan-out
    const topo = this.d.topology.current();
    const shards = topo.owners();
    const fingerprint = queryFingerprint(rest);
    const resume = continuation === undefined ? undefined : decodeContinuation(continuation, topo.epoch, fingerprint);
    if (q.return === 'count') {
      if (pageSize !== undefined || resume !== undefined) throw new ThemisError('INVALID_QUERY', 'return "count" is one number: it is not paged (drop page_size and continuation)');
      return this.count(reply, q, rest, shards, allowPartial, topo, fan);
    }
    if (q.return === 'rows') throw new ThemisError('INVALID_QUERY', 'return must be "keys", "entities" or "count"');

    const total = q.orderBy?.limit ?? Infinity;
    const emittedBefore = resume?.emitted ?? 0;
    const want = Math.min(total - emittedBefore, pageSize ?? Infinity);
    const shardQuery = (after: Position | undefined, limit: number) => ({
      ...rest,
      ...(q.orderBy ? { order_by: { column: q.orderBy.column, desc: q.orderBy.desc } } : {}),
      return: 'rows',
      blobs: q.return === 'entities',
      limit,
      ...(after ? { after } : {}),
    });
    const pageLimit = Math.max(1, Math.min(this.d.options.pageSize, want));
    const cursors = shards.map((shard) => ({ shard, rows: [] as ResultRow[], next: 0, more: true, after: resume?.after }));
    const missing: ShardFailure[] = [];
    /** The shard's next page of rows it owns (pages of only other shards' copies are skipped). */
    const fetchPage = async (c: (typeof cursors)[number]) => {
      do {
        const answer = (await this.call(c.shard, '/query', shardQuery(c.after, pageLimit), fan)) as { rows: ResultRow[] };
        c.rows = answer.rows.filter((r) => owns(topo, c.shard, r.key));
        c.next = 0;
        c.more = answer.rows.length === pageLimit;
        if (answer.rows.length) {
          const last = answer.rows[answer.rows.length - 1]!;
          c.after = positionOf(last);
        }
      } while (c.rows.length === 0 && c.more);
    };
    // First pages from every shard before answering, so a failure can still set the status.
    const first = want > 0 ? await bounded(this.d.options.maxConcurrency, cursors.map((c) => () => fetchPage(c))) : [];
    first.forEach((r, i) => {
      if (r.status === 'rejected') {
        missing.push(r.reason instanceof ShardFailure ? r.reason : new ShardFailure(cursors[i]!.shard, String(r.reason)));
        cursors[i]!.more = false;
        cursors[i]!.rows = [];
      }
    });
    if (missing.length && !allowPartial) throw this.fail(missing);

    const sign = q.orderBy?.desc ? -1 : 1;
    const cmp = (a: ResultRow, b: ResultRow) => (q.orderBy ? sign * compareValues(a.order!, b.order!) : 0) || compareStrings(a.uuid, b.uuid);
    const live = cursors.filter((c) => !missing.some((m) => m.shard === c.shard));
    const answered = live.map((c) => c.shard);
    const listField = q.return === 'entities' ? 'entities' : 'keys';
    const res = reply.begin(200, this.headers(topo.epoch, answered, missing));
    const write = async (s: string) => {
      if (!res.write(s)) await once(res, 'drain');
    };
    await write(`{"table":${JSON.stringify(q.table)},"${listField}":[`);
    let emitted = 0;
    let last: ResultRow | undefined;
    let lost = false;
    while (emitted < want) {
      let best: (typeof live)[number] | undefined;
      for (const c of live) {
        if (c.next >= c.rows.length && c.more) {
          try {
            await fetchPage(c);
          } catch (e) {
            // Mid-stream the status is sent: a lost shard can only be reported in the body.
            missing.push(e instanceof ShardFailure ? e : new ShardFailure(c.shard, String(e)));
            c.more = false;
            c.rows = [];
            lost = true;
          }
        }
        if (c.next < c.rows.length && (!best || cmp(c.rows[c.next]!, best.rows[best.next]!) < 0)) best = c;
      }
      if (!best) break;
      last = best.rows[best.next++]!;
      await write((emitted ? ',' : '') + JSON.stringify(q.return === 'entities' ? last.blob : last.key));
      emitted++;
    }
    if (lost && !allowPartial) {
      res.destroy(); // never end an answer as complete when a shard's part is missing
      return;
    }
    const more = emitted === want && emitted + emittedBefore < total && live.some((c) => c.next < c.rows.length || c.more);
    const token =
      more && last ? encodeContinuation({ epoch: topo.epoch, query: fingerprint, after: positionOf(last), emitted: emittedBefore + emitted }) : null;
    const tail: Record<string, unknown> = { count: emitted, continuation: token };
    if (missing.length) Object.assign(tail, { partial: true, missing_shards: missing.map((m) => m.shard) });
    res.end(`],${JSON.stringify(tail).slice(1)}`);
  }

  /**
   * Sums each shard's rows. Without replicas in the topology a node holds only its own ranges and
   * its count is taken as it is; with replicas, its keys are paged (COUNT_PAGE at a time: each
   * page is a pass over the table on the node) and only those of ranges it owns are counted.
   */
  private async count(reply: Reply, q: Query, rest: Record<string, unknown>, shards: string[], allowPartial: boolean, topo: Topology, fan: Fan | undefined): Promise<void> {
    const pageSize = COUNT_PAGE;
    const copies = topo.ranges.some((r) => r.replicas.length > 0) || (this.d.foreignRows?.() ?? false);
    const countShard = async (shard: string): Promise<number> => {
      if (!copies) return ((await this.call(shard, '/query', rest, fan)) as { count: number }).count;
      let n = 0;
      let after: Position | undefined;
      for (;;) {
        const body = { ...rest, ...(q.orderBy ? { order_by: { column: q.orderBy.column, desc: q.orderBy.desc } } : {}), return: 'rows', blobs: false, limit: pageSize, ...(after ? { after } : {}) };
        const { rows } = (await this.call(shard, '/query', body, fan)) as { rows: ResultRow[] };
        for (const r of rows) if (owns(topo, shard, r.key)) n++;
        if (rows.length < pageSize) return n;
        const last = rows[rows.length - 1]!;
        after = positionOf(last);
      }
    };
    const results = await bounded(this.d.options.maxConcurrency, shards.map((s) => () => countShard(s)));
    const missing: ShardFailure[] = [];
    let sum = 0;
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') sum += r.value;
      else missing.push(r.reason instanceof ShardFailure ? r.reason : new ShardFailure(shards[i]!, String(r.reason)));
    });
    if (missing.length && !allowPartial) throw this.fail(missing);
    const count = Math.min(sum, q.orderBy?.limit ?? Infinity);
    const answered = shards.filter((s) => !missing.some((m) => m.shard === s));
    reply.json(200, { table: q.table, count, ...(missing.length ? { partial: true, missing_shards: missing.map((m) => m.shard) } : {}) }, this.headers(topo.epoch, answered, missing));
  }

  /** A shard's k nearest among the rows it owns: asks for more while its copies of other ranges crowd them out. */
  private async nearestOwned(shard: string, rest: Record<string, unknown>, k: number, topo: Topology, fan: Fan | undefined): Promise<VectorHit[]> {
    for (let ask = k; ; ask = Math.min(ask * 4, MAX_K)) {
      const { results } = (await this.call(shard, '/vector/search', { ...rest, k: ask }, fan)) as { results: VectorHit[] };
      const owned = results.filter((h) => owns(topo, shard, h.key));
      if (owned.length >= k || results.length < ask || ask === MAX_K) return owned.slice(0, k);
    }
  }

  async vector(reply: Reply, buf: Buffer, obs?: RequestObs): Promise<void> {
    return fanOut(obs, this.d.topology.current().owners().length, (fan) => this.vectorAll(reply, buf, fan));
  }

  private async vectorAll(reply: Reply, buf: Buffer, fan: Fan | undefined): Promise<void> {
    const { pageSize, continuation, allowPartial, rest: body } = extras(parseJsonObject(buf, 'INVALID_QUERY'));
    if (pageSize !== undefined || continuation !== undefined) throw new ThemisError('INVALID_QUERY', 'vector search is not paged by page_size; ask for a larger k, or page with use_cursor');
    // ThemisDB's cursor: pages of k, each after the last; the cursor is a continuation token.
    const { use_cursor: useCursor, cursor, ...rest } = body;
    if (useCursor !== undefined && typeof useCursor !== 'boolean') throw new ThemisError('INVALID_QUERY', 'use_cursor must be true or false');
    const vq = parseVectorQuery(rest);
    const topo = this.d.topology.current();
    const shards = topo.owners();
    const paged = useCursor === true || cursor !== undefined;
    const fingerprint = queryFingerprint(rest);
    const skip = cursor === undefined ? 0 : decodeContinuation(cursor, topo.epoch, fingerprint).emitted;
    const depth = skip + vq.k;
    if (depth > MAX_K) throw new ThemisError('NOT_SUPPORTED', `vector search pages reach rank ${MAX_K} at most (this page would end at rank ${depth}); narrow the search with filter or table`);
    const results = await bounded(this.d.options.maxConcurrency, shards.map((s) => () => this.nearestOwned(s, rest, paged ? Math.min(depth + 1, MAX_K) : depth, topo, fan)));
    const missing: ShardFailure[] = [];
    const hits: VectorHit[] = [];
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') hits.push(...r.value);
      else missing.push(r.reason instanceof ShardFailure ? r.reason : new ShardFailure(shards[i]!, String(r.reason)));
    });
    if (missing.length && !allowPartial) throw this.fail(missing);
    // Each shard sent its nearest up to the page's end; the global ones up to it are among them.
    const keyed = hits.map((h) => ({ h, t: splitKey(h.key) }));
    keyed.sort((a, b) => (a.h.distance < b.h.distance ? -1 : a.h.distance > b.h.distance ? 1 : 0) || compareStrings(a.t[0], b.t[0]) || compareStrings(a.t[1], b.t[1]));
    const top = keyed.slice(skip, depth).map((x) => x.h);
    const answered = shards.filter((s) => !missing.some((m) => m.shard === s));
    // Each shard was asked for one more than the page needs: more exist when the union holds it.
    const more = keyed.length > depth;
    const last = top[top.length - 1];
    const page = paged
      ? { has_more: more, next_cursor: more && last ? encodeContinuation({ epoch: topo.epoch, query: fingerprint, after: { uuid: last.key, value: { num: last.distance } }, emitted: depth }) : null }
      : {};
    reply.json(200, { results: top, k: vq.k, count: top.length, ...page, ...(missing.length ? { partial: true, missing_shards: missing.map((m) => m.shard) } : {}) }, this.headers(topo.epoch, answered, missing));
  }
}
