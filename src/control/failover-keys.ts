// The failover state in etcd, under /themis/{cluster}/failover/ (readable with etcdctl):
//   acting/{group}             {"shard","epoch","since","gen"} on the acting primary's lease;
//                              its create revision is the group's term
//   last/{group}               {"shard","gen"}: who acted last (no lease: it outlives the
//                              holder); its mod revision equals that holder's term
//   candidates/{group}/{shard} {"position","source","source_term"} on the candidate's lease
//   rolled-back/{group}        {"gen","holder","by"} (no lease): a copy saw a later generation of
//                              the group than etcd holds — etcd was restored from an older
//                              snapshot; nobody takes or holds a term of the group until an
//                              operator resolves it (docs/disaster-recovery.md)
//
// `gen` counts the terms of a group (1 for the first, +1 at each take). Terms are etcd
// revisions, which start again lower after a restore; the generation is carried in the values,
// so it goes back with a restored etcd and every sidecar can tell by the one it kept
// (replication.stateDir/failover-generations.json).

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
    rolledBack: (group: string) => `${base}rolled-back/${group}`,
  };
}

export interface Acting {
  shard: string;
  term: number;
  lease: string;
  /** The term's generation (0: written before generations were kept). */
  gen: number;
}

/** A copy's record that etcd went back for a group. */
export interface RolledBack {
  /** The highest generation a copy saw, and who held it. */
  gen: number;
  holder: string;
  by: string;
  /** The key's mod revision (for a compare-and-swap). */
  mod: string;
}

export interface FailoverSnapshot {
  acting: Map<string, Acting>;
  last: Map<string, { shard: string; term: number; gen: number }>;
  candidates: Map<string, Candidate[]>;
  rolledBack: Map<string, RolledBack>;
}

const gen = (v: unknown): number => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : 0);

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
  const s: FailoverSnapshot = { acting: new Map(), last: new Map(), candidates: new Map(), rolledBack: new Map() };
  for (const kv of kvs) {
    const key = kv.key.toString();
    if (!key.startsWith(base)) continue;
    const parts = key.slice(base.length).split('/');
    const v = json(kv.value);
    if (parts[0] === 'rolled-back' && parts.length === 2) {
      // Any value counts: a record that does not parse still stops the group (fail closed).
      s.rolledBack.set(parts[1]!, { gen: gen(v?.gen), holder: typeof v?.holder === 'string' ? v.holder : '?', by: typeof v?.by === 'string' ? v.by : '?', mod: String(kv.mod_revision) });
      continue;
    }
    if (!v) continue;
    if (parts[0] === 'acting' && parts.length === 2 && typeof v.shard === 'string') {
      s.acting.set(parts[1]!, { shard: v.shard, term: Number(kv.create_revision), lease: String(kv.lease), gen: gen(v.gen) });
    } else if (parts[0] === 'last' && parts.length === 2 && typeof v.shard === 'string') {
      s.last.set(parts[1]!, { shard: v.shard, term: Number(kv.mod_revision), gen: gen(v.gen) });
    } else if (parts[0] === 'candidates' && parts.length === 3 && typeof v.position === 'number' && typeof v.source === 'string' && typeof v.source_term === 'number') {
      const list = s.candidates.get(parts[1]!) ?? [];
      list.push({ shard: parts[2]!, position: v.position, source: v.source, sourceTerm: v.source_term });
      s.candidates.set(parts[1]!, list);
    }
  }
  return s;
}
