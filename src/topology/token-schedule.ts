// Who gets which tokens: equal shares of the token space, and a layout that fills free token
// spans with shards' demands, each only inside its certified range (earliest range end first).
import { TOKEN_MAX, tokenHex } from '../hash.js';

export const SPACE = TOKEN_MAX + 1n;

/** Inclusive token bounds. */
export interface Span {
  readonly start: bigint;
  readonly end: bigint;
}

export interface Piece extends Span {
  readonly owner: string;
}

/** A shard wants `amount` tokens inside `window`; among equal windows, the smaller `order` goes first. */
export interface Demand {
  readonly shard: string;
  readonly amount: bigint;
  readonly window: Span;
  readonly order: readonly (number | bigint | string)[];
}

/** The planner cannot do what it was asked; the message says why and what is in the way. */
export class PlanError extends Error {
  override name = 'PlanError';
}

export const WHOLE: Span = Object.freeze({ start: 0n, end: TOKEN_MAX });

export function spanSize(s: Span): bigint {
  return s.end - s.start + 1n;
}

export function spanText(s: Span): string {
  return `${tokenHex(s.start)}…${tokenHex(s.end)}`;
}

export function sharePct(tokens: bigint): string {
  return `${((Number(tokens) / 2 ** 64) * 100).toFixed(3)}%`;
}

/**
 * Splits `total` into one integer part per id, differing by at most one token. The parts
 * one token larger go to the ids first in `extraFirst` (default: id order), so a caller can
 * give them to shards that already hold the token and move nothing for the rounding.
 */
export function equalShares(ids: readonly string[], total = SPACE, extraFirst: readonly string[] = [...ids].sort()): Map<string, bigint> {
  const n = BigInt(ids.length);
  const base = total / n;
  let extra = total % n;
  const out = new Map(ids.map((id) => [id, base]));
  for (const id of extraFirst) {
    if (extra === 0n) break;
    out.set(id, base + 1n);
    extra--;
  }
  return out;
}

/**
 * Lays the demands over `free` (sorted, disjoint spans), leaving none of it unowned: at each
 * token, of the shards whose window has started and that still need tokens, the one whose
 * window ends first takes it (earliest deadline first, which finds a layout whenever one
 * exists). The demands must add up to the free tokens. Returns merged pieces in token order.
 */
export function layTokens(free: readonly Span[], demands: readonly Demand[]): Piece[] {
  const pending = demands.filter((d) => d.amount > 0n).sort((a, b) => cmp(a.window.start, b.window.start));
  const heap = new Heap<{ d: Demand; left: bigint }>((a, b) => before(a.d, b.d));
  const out: Piece[] = [];
  let next = 0;
  for (const span of free) {
    let t = span.start;
    while (t <= span.end) {
      while (next < pending.length && pending[next]!.window.start <= t) {
        heap.push({ d: pending[next]!, left: pending[next]!.amount });
        next++;
      }
      const top = heap.peek();
      const release = next < pending.length ? pending[next]!.window.start : undefined;
      if (!top) {
        const end = release !== undefined && release - 1n < span.end ? release - 1n : span.end;
        throw new PlanError(`no shard that still needs tokens may own ${spanText({ start: t, end })}: it lies outside their certified token ranges`);
      }
      if (top.d.window.end < t) throw missed(top.d);
      let end = min(span.end, top.d.window.end, t + top.left - 1n);
      if (release !== undefined && release - 1n < end) end = release - 1n;
      push(out, { start: t, end, owner: top.d.shard });
      top.left -= end - t + 1n;
      if (top.left === 0n) heap.pop();
      t = end + 1n;
    }
  }
  const short = heap.peek() ?? (next < pending.length ? { d: pending[next]! } : undefined);
  if (short) throw missed(short.d);
  return out;
}

function missed(d: Demand): PlanError {
  return new PlanError(
    `${d.shard} cannot get its share inside its certified token range ${spanText(d.window)}: ` +
      'together with the shards whose ranges end no later, it needs more tokens than that part of the space can give',
  );
}

function push(out: Piece[], p: Piece): void {
  const last = out[out.length - 1];
  if (last && last.owner === p.owner && last.end + 1n === p.start) out[out.length - 1] = { ...last, end: p.end };
  else out.push(p);
}

function before(a: Demand, b: Demand): boolean {
  if (a.window.end !== b.window.end) return a.window.end < b.window.end;
  for (let i = 0; i < Math.min(a.order.length, b.order.length); i++) {
    const c = cmp(a.order[i]!, b.order[i]!);
    if (c !== 0) return c < 0;
  }
  return a.shard < b.shard;
}

function cmp<T extends number | bigint | string>(a: T, b: T): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function min(...xs: bigint[]): bigint {
  return xs.reduce((a, b) => (b < a ? b : a));
}

/** A binary min-heap under `less`. */
class Heap<T> {
  private readonly items: T[] = [];
  constructor(private readonly less: (a: T, b: T) => boolean) {}

  peek(): T | undefined {
    return this.items[0];
  }

  push(x: T): void {
    const a = this.items;
    a.push(x);
    for (let i = a.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (!this.less(a[i]!, a[p]!)) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }

  pop(): void {
    const a = this.items;
    const last = a.pop()!;
    if (a.length === 0) return;
    a[0] = last;
    for (let i = 0; ; ) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < a.length && this.less(a[l]!, a[m]!)) m = l;
      if (r < a.length && this.less(a[r]!, a[m]!)) m = r;
      if (m === i) break;
      [a[i], a[m]] = [a[m]!, a[i]!];
      i = m;
    }
  }
}

/** The tokens `a` and `b` share, or undefined. */
export function intersect(a: Span, b: Span): Span | undefined {
  const start = a.start > b.start ? a.start : b.start;
  const end = a.end < b.end ? a.end : b.end;
  return start <= end ? { start, end } : undefined;
}
