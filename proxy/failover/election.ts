// Who takes over a replica group whose acting primary is gone: a pure decision over what the
// live copies published in etcd, made the same way by every copy, so that exactly one of them
// tries to create the next term (and etcd's compare-and-swap makes sure only one succeeds).
//
// Positions are sequence numbers in the change feed of the last acting primary ("the holder"),
// so they compare only among copies that followed it. A write was acknowledged once `needed`
// copies held it, the holder among them; so it is on at least needed − 1 of the other copies,
// and any N − needed + 1 of those (N = all copies) include one that holds it. The copy with the
// highest position among that many is therefore sure to hold every acknowledged write. The
// holder itself, if it is back, holds them all, and wins.

import type { Candidate } from '../../src/control/failover-keys.js';

export type { Candidate };

export interface LastTerm {
  shard: string;
  term: number;
}

export type Decision = { winner: string; why: string } | { wait: string };

export function decide(o: { copies: readonly string[]; last: LastTerm; candidates: readonly Candidate[]; needed: number }): Decision {
  const valid = o.candidates.filter((c) => o.copies.includes(c.shard));
  if (valid.some((c) => c.shard === o.last.shard)) return { winner: o.last.shard, why: 'the last acting primary is back and holds every write it acknowledged' };
  const counted = valid.filter((c) => c.source === o.last.shard && c.sourceTerm === o.last.term && c.position >= 0);
  const quorum = o.copies.length - o.needed + 1;
  const others = o.copies.filter((c) => c !== o.last.shard).length;
  if (quorum > others) return { wait: `an acknowledgement needs ${o.needed} of ${o.copies.length} copies, so only ${o.last.shard} is sure to hold every acknowledged write; waiting for it to return` };
  if (counted.length < quorum) {
    return { wait: `${counted.length} of the ${quorum} positions needed from copies other than ${o.last.shard} are published (${counted.map((c) => c.shard).join(', ') || 'none'})` };
  }
  const best = [...counted].sort((a, b) => b.position - a.position || (a.shard < b.shard ? -1 : 1))[0]!;
  return { winner: best.shard, why: `highest position ${best.position} in ${o.last.shard}'s feed among ${counted.map((c) => `${c.shard}@${c.position}`).join(', ')}` };
}
