// Deleting a node's copies of keys it no longer serves: a source's moved keys after cutover, a
// target's copied keys after an abort. Only keys inside `ranges` that `keep` does not claim go.
import { parseKey, tokenOf } from '../../src/urn/urn.js';
import type { Topology } from '../../src/topology/topology.js';
import type { NodeClient } from '../feed/node-client.js';
import type { TokenRanges } from '../feed/token-ranges.js';

/** Deletes from `node` every key in `ranges` whose token `keep` does not claim; the count deleted. */
export async function sweep(node: NodeClient, ranges: TokenRanges, keep: (token: bigint) => boolean, counted?: (n: number) => void): Promise<number> {
  let deleted = 0;
  let after: string | null = null;
  for (;;) {
    const page = await node.scan(after, 1000);
    for (const e of page.entities) {
      if (!ranges.hasKey(e.key)) continue;
      if (keep(tokenOf(parseKey(e.key)))) continue;
      await node.delete(e.key);
      deleted++; // not inside counted?.(…): without `counted` its argument is never evaluated
      counted?.(deleted);
    }
    if (!page.next) return deleted;
    after = page.next;
  }
}

/** Whether `self` owns or replicates `token` in `t`, or is receiving it (`incoming`). */
export function servedBy(t: Topology, self: string, incoming: () => readonly { start: bigint; end: bigint }[]): (token: bigint) => boolean {
  return (token) => {
    const r = t.rangeOf(token);
    return r.owner === self || r.replicas.includes(self) || incoming().some((x) => token >= x.start && token <= x.end);
  };
}
