// The cluster on one screen (`themis-admin status`): built from what etcd holds — the verified
// topology, each shard's registration and status report, the range moves' statuses and the CRLs —
// into one JSON document, and drawn as text. Pure: read-status.ts reads etcd, for both the
// command (src/cli/admin-status.ts) and the sidecar's web console (proxy/console/).
import { tokenHex } from '../hash.js';
import type { Topology } from '../topology/topology.js';

const SPACE = 2n ** 64n;
/** Phases after which a move's shard has nothing left to do. */
export const SETTLED: ReadonlySet<string> = new Set(['done', 'cleaned', 'aborted', 'refused', 'failed', 'stale']);

export interface ShardReport {
  shard: string;
  endpoint: string | null;
  alive: boolean;
  /** The epoch the sidecar reported serving (its status report), or null when it reports none. */
  epoch: number | null;
  /** Keys on its storage node, from its last count; null before the first. */
  keys: number | null;
  certNotAfter: string | null;
  /** As a replica: changes behind each primary it follows (-1: unknown). */
  replication: Record<string, { state: string; lag_changes: number }> | null;
}

export interface MoveRow {
  op: string;
  shard: string;
  phase: string;
  /** A target's copy, summed over its sources (its status report); absent for a source. */
  progress?: MoveProgress;
}

export interface MoveProgress {
  keys_copied: number;
  /** Changes the copy is behind its sources; null before it follows them all. */
  lag_changes: number | null;
  eta_seconds: number | null;
}

/** A token range an operation moves, as its verified document says (tokens as 16 hex digits). */
export interface MovedRange {
  from: string;
  to: string;
  start: string;
  end: string;
  role: 'owner' | 'replica';
}

export interface StatusInput {
  cluster: string;
  /** The published topology, verified; or why it is refused, or null when none is published. */
  topology: { ok: true; topology: Topology } | { ok: false; reason: string } | null;
  shards: ShardReport[];
  moves: MoveRow[];
  /** Each operation's moved ranges, from its verified document (an operation missing here shows none). */
  moveRanges?: Record<string, MovedRange[]>;
  crls: { name: string; nextUpdate: string | null }[];
  now: number;
  /** A certificate expiring within this many days is flagged. */
  expiringDays: number;
}

export interface ShardStatus {
  shard: string;
  alive: boolean;
  endpoint: string | null;
  epoch: number | null;
  /** Serving an older epoch than the published one (or none at all while alive). */
  lagging: boolean;
  ranges: number;
  replica_ranges: number;
  /** Share of the token space this shard owns, 0–1. */
  token_share: number;
  keys: number | null;
  /** Share of all counted keys, 0–1; null when any shard has no count. */
  key_share: number | null;
  cert_not_after: string | null;
  cert_days_left: number | null;
  cert_expiring: boolean;
  replication: ShardReport['replication'];
}

export interface ClusterStatus {
  cluster: string;
  at: string;
  epoch: number | null;
  topology: 'verified' | 'refused' | 'none';
  shards: ShardStatus[];
  /** The verified topology's ranges (tokens as 16 hex digits), for drawing the ring; [] without one. */
  ranges: { start: string; end: string; owner: string; replicas: readonly string[] }[];
  moves: { op: string; shards: Record<string, string>; progress: Record<string, MoveProgress>; ranges: MovedRange[] }[];
  crls: { name: string; next_update: string | null; stale: boolean }[];
  /** Everything above that needs an operator, one line each. */
  warnings: string[];
}

export function buildStatus(i: StatusInput): ClusterStatus {
  const topo = i.topology?.ok ? i.topology.topology : undefined;
  const warnings: string[] = [];
  if (!i.topology) warnings.push('no topology published');
  else if (!i.topology.ok) warnings.push(`the published topology is refused: ${i.topology.reason}`);
  const ids = [...new Set([...i.shards.map((s) => s.shard), ...(topo ? topo.owners() : [])])].sort();
  const byId = new Map(i.shards.map((s) => [s.shard, s]));
  const counted = ids.every((id) => typeof byId.get(id)?.keys === 'number');
  const totalKeys = ids.reduce((n, id) => n + (byId.get(id)?.keys ?? 0), 0);
  const shards = ids.map((id): ShardStatus => {
    const r = byId.get(id);
    const owned = topo?.ranges.filter((x) => x.owner === id) ?? [];
    const tokens = owned.reduce((n, x) => n + (x.end - x.start + 1n), 0n);
    const daysLeft = r?.certNotAfter ? Math.floor((Date.parse(r.certNotAfter) - i.now) / 86_400_000) : null;
    const epoch = r?.epoch ?? null;
    const alive = r?.alive ?? false;
    const lagging = topo !== undefined && alive && (epoch === null || epoch < topo.epoch);
    const s: ShardStatus = {
      shard: id,
      alive,
      endpoint: r?.endpoint ?? null,
      epoch,
      lagging,
      ranges: owned.length,
      replica_ranges: topo?.ranges.filter((x) => x.replicas.includes(id)).length ?? 0,
      token_share: Number((tokens * 1_000_000n) / SPACE) / 1_000_000,
      keys: r?.keys ?? null,
      key_share: counted && totalKeys > 0 ? (r!.keys as number) / totalKeys : null,
      cert_not_after: r?.certNotAfter ?? null,
      cert_days_left: daysLeft,
      cert_expiring: daysLeft !== null && daysLeft < i.expiringDays,
      replication: r?.replication ?? null,
    };
    if (!r) warnings.push(`${id} owns ranges but is not registered`);
    else if (!alive) warnings.push(`${id} is not alive (no lease)`);
    if (lagging) warnings.push(`${id} serves epoch ${epoch ?? 'none'}, the published one is ${topo!.epoch}`);
    if (s.cert_expiring) warnings.push(`${id}'s certificate expires in ${daysLeft} days (${s.cert_not_after})`);
    for (const [p, f] of Object.entries(s.replication ?? {})) if (f.state !== 'following') warnings.push(`${id} as replica of ${p}: ${f.state}`);
    return s;
  });
  const ops = new Map<string, { shards: Record<string, string>; progress: Record<string, MoveProgress> }>();
  for (const m of i.moves) {
    const o = ops.get(m.op) ?? { shards: {}, progress: {} };
    o.shards[m.shard] = m.phase;
    if (m.progress) o.progress[m.shard] = m.progress;
    ops.set(m.op, o);
  }
  const moves = [...ops]
    .filter(([, o]) => Object.values(o.shards).some((p) => !SETTLED.has(p)))
    .map(([op, o]) => ({ op, shards: o.shards, progress: o.progress, ranges: i.moveRanges?.[op] ?? [] }));
  const ranges = (topo?.ranges ?? []).map((r) => ({ start: tokenHex(r.start), end: tokenHex(r.end), owner: r.owner, replicas: r.replicas }));
  const crls = i.crls.map((c) => ({ name: c.name, next_update: c.nextUpdate, stale: c.nextUpdate !== null && Date.parse(c.nextUpdate) < i.now }));
  for (const c of crls) if (c.stale) warnings.push(`the ${c.name} CRL in etcd is stale (nextUpdate ${c.next_update}): chains through that CA fail closed`);
  return { cluster: i.cluster, at: new Date(i.now).toISOString(), epoch: topo?.epoch ?? null, topology: !i.topology ? 'none' : i.topology.ok ? 'verified' : 'refused', shards, ranges, moves, crls, warnings };
}

/** A target's copy progress, as text after its phase. */
function progressText(p: MoveProgress | undefined): string {
  if (!p) return '';
  const eta = p.eta_seconds === null ? '' : `, ETA ${p.eta_seconds} s`;
  return ` (${p.keys_copied} keys copied, ${p.lag_changes ?? '?'} changes behind${eta})`;
}

const pct = (v: number | null) => (v === null ? '-' : `${(v * 100).toFixed(1)}%`);

/** The status as text: a header, one line per shard, moves, CRLs and warnings. */
export function renderStatus(s: ClusterStatus): string {
  const out = [`cluster ${s.cluster}   epoch ${s.epoch ?? '-'} (${s.topology})   ${s.at}`, ''];
  out.push(`${'shard'.padEnd(12)} ${'alive'.padEnd(5)} ${'epoch'.padEnd(7)} ${'ranges'.padEnd(7)} ${'tokens'.padEnd(7)} ${'keys'.padEnd(16)} ${'cert (days)'.padEnd(11)} replica of (changes behind)`);
  for (const r of s.shards) {
    const epoch = `${r.epoch ?? '-'}${r.lagging ? '!' : ''}`;
    const keys = r.keys === null ? '-' : `${r.keys} (${pct(r.key_share)})`;
    const cert = r.cert_days_left === null ? '-' : `${r.cert_days_left}${r.cert_expiring ? '!' : ''}`;
    const rep = Object.entries(r.replication ?? {}).map(([p, f]) => (f.state === 'following' ? `${p} (${f.lag_changes})` : `${p} (${f.state})`)).join(', ') || '-';
    out.push(`${r.shard.padEnd(12)} ${(r.alive ? 'yes' : 'NO').padEnd(5)} ${epoch.padEnd(7)} ${`${r.ranges}+${r.replica_ranges}`.padEnd(7)} ${pct(r.token_share).padEnd(7)} ${keys.padEnd(16)} ${cert.padEnd(11)} ${rep}`);
  }
  out.push('', s.moves.length ? 'moves in progress:' : 'moves in progress: none');
  for (const m of s.moves) out.push(`  ${m.op}  ${Object.entries(m.shards).map(([sh, p]) => `${sh} ${p}${progressText(m.progress[sh])}`).join(', ')}`);
  out.push(`CRLs: ${s.crls.map((c) => `${c.name} ${c.stale ? 'STALE' : 'ok'}`).join(', ') || 'none in etcd'}`);
  out.push('', s.warnings.length ? `warnings (${s.warnings.length}):` : 'warnings: none');
  for (const w of s.warnings) out.push(`  ! ${w}`);
  return out.join('\n') + '\n';
}
