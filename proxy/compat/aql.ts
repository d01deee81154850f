// POST /query/aql for ThemisDB's clients: the AQL subset translated (src/query/aql-translate.ts)
// and run by the mesh's own paths — scatter-gather over every shard for a table, or the one
// owner's read for `x._key == "<key>"` — answered in ThemisDB's shapes: {table, count, entities}
// or, with use_cursor, {items, batch_size, has_more, next_cursor} where the cursor is the
// scatter-gather's continuation token (any sidecar continues it; stale after a topology change).
import type { OutgoingHttpHeaders } from 'node:http';
import { ERRORS, ThemisError, type ErrorCode } from '../../src/errors.js';
import { parseJsonObject } from '../../src/http-body.js';
import { parseQuery, runQuery } from '../../src/query/query.js';
import { DEFAULT_BATCH, MAX_BATCH, parseAqlRequest, translateAql, type AqlPlan, type AqlRequest, type TableDefaults } from '../../src/query/aql-translate.js';
import { unsupported } from '../../src/query/aql-parser.js';
import { EPOCH_HEADER, SHARD_HEADER } from '../mesh-headers.js';
import type { Reply } from '../respond.js';
import type { ScatterGather } from '../scatter-gather.js';
import { captureReply, type Captured } from './capture-reply.js';

export interface AqlDeps {
  scatter: ScatterGather;
  /** GET /entities/{key}, routed to its owner like an app's read. */
  readEntity(key: string): Promise<Captured>;
  defaults: TableDefaults;
  /** Largest answer held while it is reshaped. */
  maxAnswerBytes: number;
}

interface Page {
  table: string;
  entities: string[];
  continuation: string | null;
  headers: OutgoingHttpHeaders;
}

/** The mesh's headers of a captured answer. */
function meshHeaders(c: Captured): OutgoingHttpHeaders {
  const h: OutgoingHttpHeaders = {};
  for (const name of [SHARD_HEADER, EPOCH_HEADER, 'x-themis-partial']) if (c.headers[name] !== undefined) h[name] = c.headers[name];
  return h;
}

export class AqlService {
  constructor(private readonly d: AqlDeps) {}

  async serve(reply: Reply, buf: Buffer): Promise<void> {
    const req = parseAqlRequest(parseJsonObject(buf, 'INVALID_AQL'));
    const plan = translateAql(req, this.d.defaults);
    if (req.useCursor && plan.offset > 0) throw unsupported('LIMIT offset with use_cursor (page with the cursor instead)');
    const pageSize = Math.min(MAX_BATCH, req.batchSize ?? (plan.count !== undefined ? Math.max(1, plan.count) : DEFAULT_BATCH));
    const page = plan.key !== undefined ? await this.byKey(plan) : req.useCursor ? await this.cursorPage(plan, req, pageSize) : await this.all(plan);
    if (req.useCursor) {
      const items = plan.key !== undefined ? page.entities.slice(0, pageSize) : page.entities;
      reply.json(200, { table: page.table, items, batch_size: items.length, count: items.length, has_more: page.continuation !== null, next_cursor: page.continuation }, page.headers);
      return;
    }
    reply.json(200, { table: page.table, count: page.entities.length, entities: page.entities }, page.headers);
  }

  /** One scatter-gather call (a /query body), its answer read whole. */
  private async query(body: Record<string, unknown>): Promise<Page> {
    const cap = captureReply(this.d.maxAnswerBytes, () => new ThemisError('PAYLOAD_TOO_LARGE', `the answer exceeds ${this.d.maxAnswerBytes} bytes: add a LIMIT, or page it with use_cursor and batch_size`));
    // A refusal before the answer began rejects the call; one mid-answer rejects the capture.
    const [c] = await Promise.all([cap.answer, this.d.scatter.query(cap.reply, Buffer.from(JSON.stringify(body)))]);
    const a = JSON.parse(c.body.toString('utf8')) as { table: string; entities: string[]; continuation?: string | null };
    return { table: a.table, entities: a.entities, continuation: a.continuation ?? null, headers: meshHeaders(c) };
  }

  /** Everything, or LIMIT offset, count: the first offset + count results, without the first offset. */
  private async all(plan: AqlPlan): Promise<Page> {
    if (plan.count === 0) return { table: plan.table, entities: [], continuation: null, headers: {} };
    if (plan.count === undefined) return this.query(plan.query);
    const want = plan.offset + plan.count;
    // order_by.limit lets every shard stop at `want`; without SORT, pages of at most MAX_BATCH.
    const base = plan.query.order_by ? { ...plan.query, order_by: { ...(plan.query.order_by as object), limit: want } } : plan.query;
    const entities: string[] = [];
    let continuation: string | null = null;
    let last: Page;
    do {
      last = await this.query({ ...base, page_size: Math.min(MAX_BATCH, want - entities.length), ...(continuation ? { continuation } : {}) });
      entities.push(...last.entities);
      continuation = last.continuation;
    } while (continuation !== null && entities.length < want);
    return { ...last, entities: entities.slice(plan.offset, want), continuation: null };
  }

  /** One page of a cursor walk: the continuation token is the cursor. */
  private cursorPage(plan: AqlPlan, req: AqlRequest, pageSize: number): Promise<Page> {
    return this.query({ ...plan.query, page_size: pageSize, ...(req.cursor !== undefined ? { continuation: req.cursor } : {}) });
  }

  /** x._key == "<key>": read the one entity from its owner and apply the other filters to it. */
  private async byKey(plan: AqlPlan): Promise<Page> {
    const none: Page = { table: plan.table, entities: [], continuation: null, headers: {} };
    if (plan.key === null || plan.count === 0 || plan.offset > 0) return none;
    const c = await this.d.readEntity(plan.key!);
    if (c.status === 404) return { ...none, headers: meshHeaders(c) };
    const body = JSON.parse(c.body.toString('utf8')) as { blob?: string; code?: string; message?: string };
    if (c.status !== 200 || typeof body.blob !== 'string') {
      // The owner's refusal, as it gave it (e.g. a 421 that stood after every re-route).
      if (typeof body.code === 'string' && Object.hasOwn(ERRORS, body.code)) throw new ThemisError(body.code as ErrorCode, body.message ?? `reading ${plan.key} failed`);
      throw new ThemisError('UPSTREAM_PROTOCOL_ERROR', `reading ${plan.key} answered ${c.status}`);
    }
    const uuid = plan.key!.slice(plan.key!.lastIndexOf(':') + 1);
    const answer = await runQuery(parseQuery(plan.query), [{ uuid, blob: body.blob }]);
    return { ...none, entities: 'entities' in answer ? answer.entities : [], headers: meshHeaders(c) };
  }
}
