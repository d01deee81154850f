// The query builder: immutable (each step returns a new Query), checked as it is built, and
// read as async iterators that follow the sidecar's continuation tokens page by page across
// every shard (docs/queries.md). A page is one idempotent call, so a failed page is retried
// with the same token; CONTINUATION_STALE (the shards moved) ends the iteration.
import type { CallOptions } from './call.js';
import { ThemisClientError } from './errors.js';

export type QueryRunner = (body: Record<string, unknown>, o: CallOptions) => Promise<Record<string, unknown>>;

export interface RangeBounds {
  gte?: number | string;
  lte?: number | string;
  /** Whether gte itself matches (default true). */
  includeLower?: boolean;
  /** Whether lte itself matches (default true). */
  includeUpper?: boolean;
}

interface Spec {
  readonly table: string;
  readonly predicates?: readonly { column: string; value: string }[];
  readonly range?: readonly ({ column: string } & RangeBounds)[];
  readonly order_by?: { column: string; desc: boolean; limit?: number };
  readonly page_size?: number;
  readonly allow_partial?: boolean;
}

export interface QueryPage<T> {
  items: T[];
  /** Pass to page() for the next one; null on the last. */
  continuation: string | null;
  /** With allowPartial(): shards that did not answer (their rows are missing). */
  missingShards: string[];
}

export interface EntityRow<T = unknown> {
  value: T;
  blob: string;
}

const bad = (message: string) => new ThemisClientError('INVALID_QUERY', message);

function column(c: string): string {
  if (typeof c !== 'string' || c.length === 0 || c.length > 256) throw bad('a column is a non-empty string of at most 256 characters');
  return c;
}

function bound(v: unknown, name: string): void {
  if (v !== undefined && !(typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v)))) throw bad(`${name} must be a finite number or a string`);
}

export class Query {
  constructor(
    private readonly run: QueryRunner,
    private readonly spec: Spec,
  ) {}

  private with(s: Partial<Spec>): Query {
    return new Query(this.run, { ...this.spec, ...s });
  }

  /** Equality: the column's value, as a string, equals `value` (numbers and booleans compare as their text). */
  where(col: string, value: string | number | boolean): Query {
    if (!['string', 'number', 'boolean'].includes(typeof value)) throw bad('where() compares with a string, number or boolean');
    const predicates = [...(this.spec.predicates ?? []), { column: column(col), value: String(value) }];
    if (predicates.length > 64) throw bad('at most 64 where() conditions');
    return this.with({ predicates });
  }

  /** A range on a column; no bound at all means "has the column". */
  range(col: string, b: RangeBounds): Query {
    bound(b.gte, 'gte');
    bound(b.lte, 'lte');
    const range = [...(this.spec.range ?? []), { column: column(col), ...b }];
    if (range.length > 64) throw bad('at most 64 range() conditions');
    return this.with({ range });
  }

  /** Sort by a column (ties by key, ascending), optionally keeping only the first `limit`. */
  orderBy(col: string, o: { desc?: boolean; limit?: number } = {}): Query {
    if (o.limit !== undefined && !(Number.isInteger(o.limit) && o.limit >= 0 && o.limit <= 1_000_000)) throw bad('limit must be an integer 0…1,000,000');
    return this.with({ order_by: { column: column(col), desc: o.desc === true, ...(o.limit !== undefined ? { limit: o.limit } : {}) } });
  }

  /** Results per page (per call), 1…100,000 (default: the sidecar answers all at once). */
  pageSize(n: number): Query {
    if (!(Number.isInteger(n) && n >= 1 && n <= 100_000)) throw bad('pageSize must be an integer 1…100,000');
    return this.with({ page_size: n });
  }

  /** Accept answers that lack a shard that did not answer (each page lists it in missingShards). */
  allowPartial(): Query {
    return this.with({ allow_partial: true });
  }

  /** The query's JSON body (as sent, without paging state). */
  toJSON(): Record<string, unknown> {
    return { ...this.spec };
  }

  /** One page of keys (`table:uuid`). */
  async keysPage(continuation?: string | null, o: CallOptions = {}): Promise<QueryPage<string>> {
    const r = await this.page('keys', continuation, o);
    return { ...r, items: r.items as string[] };
  }

  /** One page of entities. */
  async entitiesPage<T = unknown>(continuation?: string | null, o: CallOptions = {}): Promise<QueryPage<EntityRow<T>>> {
    const r = await this.page('entities', continuation, o);
    return { ...r, items: (r.items as string[]).map((blob) => ({ blob, value: JSON.parse(blob) as T })) };
  }

  /** Every matching key, following continuation tokens. */
  async *keys(o: CallOptions = {}): AsyncGenerator<string> {
    for (let token: string | null | undefined; ; ) {
      const p = await this.keysPage(token, o);
      yield* p.items;
      if (!(token = p.continuation)) return;
    }
  }

  /** Every matching entity, following continuation tokens. */
  async *entities<T = unknown>(o: CallOptions = {}): AsyncGenerator<EntityRow<T>> {
    for (let token: string | null | undefined; ; ) {
      const p = await this.entitiesPage<T>(token, o);
      yield* p.items;
      if (!(token = p.continuation)) return;
    }
  }

  /** How many entities match (after orderBy's limit). */
  async count(o: CallOptions = {}): Promise<number> {
    const { page_size: _p, ...rest } = this.spec;
    const r = await this.run({ ...rest, return: 'count' }, o);
    if (typeof r.count !== 'number') throw new ThemisClientError('BAD_RESPONSE', 'a count query answered no count');
    return r.count;
  }

  private async page(ret: 'keys' | 'entities', continuation: string | null | undefined, o: CallOptions): Promise<QueryPage<unknown>> {
    if (continuation !== undefined && continuation !== null && typeof continuation !== 'string') throw new ThemisClientError('INVALID_CONTINUATION', 'a continuation token is a string');
    const r = await this.run({ ...this.spec, return: ret, ...(continuation ? { continuation } : {}) }, o);
    const items = r[ret];
    if (!Array.isArray(items)) throw new ThemisClientError('BAD_RESPONSE', `a query for ${ret} answered no ${ret} list`);
    const next = r.continuation;
    const missing = r.missing_shards;
    return {
      items,
      continuation: typeof next === 'string' ? next : null,
      missingShards: Array.isArray(missing) ? missing.filter((s): s is string => typeof s === 'string') : [],
    };
  }
}
