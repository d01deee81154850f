// Two nodes compared over a set of token ranges by walking both ordered scans side by side (a
// merge join in the storage node's (table, uuid) order): every key whose value differs, or that
// only one side has. The follower's full copy repairs with it; a digest check counts with it.
import type { NodeClient } from './node-client.js';
import type { TokenRanges } from './token-ranges.js';

export type Difference =
  | { key: string; kind: 'missing'; blob: string } // on the source only
  | { key: string; kind: 'extra' } // on the target only
  | { key: string; kind: 'changed'; blob: string }; // both, different values (blob: the source's)

/** The node's order: `table!uuid` compared as strings (names are ASCII above "!"). */
const order = (key: string) => key.replace(':', '!');

class Cursor {
  private page: { key: string; blob: string }[] = [];
  private i = 0;
  private next: string | null | undefined;

  constructor(
    private readonly node: NodeClient,
    private readonly ranges: TokenRanges,
    private readonly pageSize: number,
  ) {}

  /** The next entity in range, or undefined at the end. */
  async peek(): Promise<{ key: string; blob: string } | undefined> {
    for (;;) {
      while (this.i < this.page.length) {
        const e = this.page[this.i]!;
        if (this.ranges.hasKey(e.key)) return e;
        this.i++;
      }
      if (this.next === null) return undefined;
      const p = await this.node.scan(this.next ?? null, this.pageSize);
      this.page = p.entities;
      this.i = 0;
      this.next = p.next;
    }
  }

  advance(): void {
    this.i++;
  }
}

/** Calls `onDiff` for every difference, in key order; resolves with how many keys both sides hold alike. */
export async function diffRanges(source: NodeClient, target: NodeClient, ranges: TokenRanges, onDiff: (d: Difference) => Promise<void>, pageSize = 1000): Promise<{ same: number; different: number }> {
  const a = new Cursor(source, ranges, pageSize);
  const b = new Cursor(target, ranges, pageSize);
  let same = 0;
  let different = 0;
  for (;;) {
    const [x, y] = [await a.peek(), await b.peek()];
    if (!x && !y) return { same, different };
    const cmp = !x ? 1 : !y ? -1 : order(x.key) < order(y.key) ? -1 : order(x.key) > order(y.key) ? 1 : 0;
    if (cmp < 0) {
      different++;
      await onDiff({ key: x!.key, kind: 'missing', blob: x!.blob });
      a.advance();
    } else if (cmp > 0) {
      different++;
      await onDiff({ key: y!.key, kind: 'extra' });
      b.advance();
    } else {
      if (x!.blob === y!.blob) same++;
      else {
        different++;
        await onDiff({ key: x!.key, kind: 'changed', blob: x!.blob });
      }
      a.advance();
      b.advance();
    }
  }
}
