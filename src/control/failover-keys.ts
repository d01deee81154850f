// The failover state in etcd, under /themis/{cluster}/failover/ (readable with etcdctl):
//   acting/{group}             {"shard","epoch","since"} on the acting primary's lease; its
//                              create revision is the group's term
//   last/{group}               {"shard"}: who acted last (no lease: it outlives the holder);
//                              its mod revision equals that holder's term
//   candidates/{group}/{shard} {"position","source","source_term"} on the candidate's lease

/** A copy standing in a failover election, as it published itself. */
export interface Candidate {
  shard: string;
  /** Position in the holder's feed; -1 when the copy has no position there (it cannot count). */
  position: number;
  /** The holder it measured `position` against, and that holder's term. */
  source: string;
  sourceTerm: number;
}

export function failoverKeys(cluster: string) {
  const base = `/themis/${cluster}/failover/`;
  return {
    base,
    acting: (group: string) => `${base}acting/${group}`,
    last: (group: string) => `${base}last/${group}`,
    candidates: (group: string) => `${base}candidates/${group}/`,
    candidate: (group: string, shard: string) => `${base}candidates/${group}/${shard}`,
  };
}

export interface Acting {
  shard: string;
  term: number;
  lease: string;
}

export interface FailoverSnapshot {
  acting: Map<string, Acting>;
  last: Map<string, { shard: string; term: number }>;
  candidates: Map<string, Candidate[]>;
}

interface Kv {
  key: Buffer | string;
  value: Buffer | string;
  create_revision: string;
  mod_revision: string;
  lease: string;
}

function json(v: Buffer | string): Record<string, unknown> | undefined {
  try {
    const o: unknown = JSON.parse(v.toString());
    return o && typeof o === 'object' && !Array.isArray(o) ? (o as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Parses the failover prefix; entries that do not parse are left out (they count for nothing). */
export function parseSnapshot(base: string, kvs: readonly Kv[]): FailoverSnapshot {
  const s: FailoverSnapshot = { acting: new Map(), last: new Map(), candidates: new Map() };
  for (const kv of kvs) {
    const key = kv.key.toString();
    if (!key.startsWith(base)) continue;
    const parts = key.slice(base.length).split('/');
    const v = json(kv.value);
    if (!v) continue;
    if (parts[0] === 'acting' && parts.length === 2 && typeof v.shard === 'string') {
      s.acting.set(parts[1]!, { shard: v.shard, term: Number(kv.create_revision), lease: String(kv.lease) });
    } else if (parts[0] === 'last' && parts.length === 2 && typeof v.shard === 'string') {
      s.last.set(parts[1]!, { shard: v.shard, term: Number(kv.mod_revision) });
    } else if (parts[0] === 'candidates' && parts.length === 3 && typeof v.position === 'number' && typeof v.source === 'string' && typeof v.source_term === 'number') {
      const list = s.candidates.get(parts[1]!) ?? [];
      list.push({ shard: parts[2]!, position: v.position, source: v.source, sourceTerm: v.source_term });
      s.candidates.set(parts[1]!, list);
    }
  }
  return s;
}
