// Reads the cluster's state from etcd into a ClusterStatus (cluster-status.ts builds it): the
// shards' registrations and reports, the published topology and the moves' operations (both
// verified), the moves' statuses and the CRLs. `themis-admin status` and the console both use it.
import type { Etcd3 } from 'etcd3';
import { etcdKeys } from '../control/etcd-keys.js';
import { readStoredCrls, verifiedCrls } from '../control/crl-store.js';
import { readSignedTopology } from '../control/topology-store.js';
import { tokenHex } from '../hash.js';
import { CrlTrust } from '../pki/crl-trust.js';
import type { PeerVerifier } from '../pki/verify.js';
import { verifyOperation } from '../rebalance/operation.js';
import type { Clock } from '../runtime.js';
import { verifySignedTopology } from '../topology/signed.js';
import type { Topology } from '../topology/topology.js';
import { buildStatus, SETTLED, type ClusterStatus, type MovedRange, type MoveProgress, type MoveRow, type ShardReport } from './cluster-status.js';

export interface StatusSource {
  etcd: Etcd3;
  cluster: string;
  /** The root CA (PEM): CRLs in etcd count only when they verify against it. */
  caPem: string;
  /** Verifies the topology's and the operations' signers (root and CRLs). */
  verifier: PeerVerifier;
  clock: Clock;
  /** A certificate expiring within this many days is flagged. */
  expiringDays: number;
}

/** An etcd failure, said as such (the command prints it; the console answers 503). */
export class StatusReadError extends Error {}

async function etcdCall<T>(call: Promise<T>): Promise<T> {
  try {
    return await call;
  } catch (e) {
    throw new StatusReadError(`etcd: ${(e as Error).message}`);
  }
}

function parseJson(v: string | undefined): Record<string, any> | undefined {
  if (v === undefined) return undefined;
  try {
    const o = JSON.parse(v) as unknown;
    return o !== null && typeof o === 'object' ? (o as Record<string, any>) : undefined;
  } catch {
    return undefined;
  }
}

const count = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : null);

/** A target's report `{sources: {shard: {keys_copied, lag_changes, eta_seconds}}}`, summed over its sources. */
export function moveProgress(report: Record<string, any> | undefined): MoveProgress | undefined {
  const sources = report?.sources;
  if (!sources || typeof sources !== 'object') return undefined;
  const all = Object.values(sources as Record<string, any>);
  if (all.length === 0) return undefined;
  const lags = all.map((s) => count(s?.lag_changes));
  const etas = all.map((s) => count(s?.eta_seconds));
  return {
    keys_copied: all.reduce((n: number, s) => n + (count(s?.keys_copied) ?? 0), 0),
    lag_changes: lags.every((l) => l !== null) ? lags.reduce((n, l) => n + l!, 0) : null,
    eta_seconds: etas.every((e) => e !== null) ? Math.max(...etas.map((e) => e!)) : null,
  };
}

function shardReports(all: Record<string, string>, prefix: string, k: ReturnType<typeof etcdKeys>): ShardReport[] {
  const ids = [...new Set(Object.keys(all).map((key) => key.slice(prefix.length).split('/')[0]!))];
  return ids.map((id) => {
    const ep = parseJson(all[k.shardEndpoint(id)]);
    const cert = parseJson(all[k.shardCertificate(id)]);
    const report = parseJson(all[k.shardReplication(id)]);
    const followers = report?.followers && typeof report.followers === 'object' ? (report.followers as Record<string, any>) : undefined;
    return {
      shard: id,
      endpoint: ep?.host ? `${ep.host}:${ep.port}` : null,
      alive: all[k.shardAlive(id)] !== undefined,
      epoch: Number.isSafeInteger(report?.topology_epoch) ? (report!.topology_epoch as number) : null,
      keys: Number.isSafeInteger(report?.data?.keys) ? (report!.data.keys as number) : null,
      certNotAfter: typeof cert?.not_after === 'string' ? cert.not_after : null,
      replication: followers
        ? Object.fromEntries(Object.entries(followers).map(([p, f]) => {
            const position = Number(f?.position);
            const latest = Number(f?.latest);
            return [p, { state: String(f?.state), lag_changes: Number.isFinite(latest) && latest >= 0 ? Math.max(0, latest - position) : -1 }];
          }))
        : null,
    };
  });
}

/** The moved ranges of each operation in `ops`, from its document if it verifies (signer and signatures). */
async function movedRanges(s: StatusSource, current: Topology, ops: readonly string[]): Promise<Record<string, MovedRange[]>> {
  const k = etcdKeys(s.cluster);
  const out: Record<string, MovedRange[]> = {};
  for (const id of ops) {
    const stored = parseJson((await etcdCall(s.etcd.get(k.rebalance(id)).string())) ?? undefined);
    const v = await verifyOperation(stored, { verifier: s.verifier, current, cluster: s.cluster, certifiedRange: async () => undefined, past: true });
    if (!v.ok || v.op.id !== id) continue;
    out[id] = v.op.moves.map((m) => ({ from: m.from, to: m.to, start: tokenHex(m.start), end: tokenHex(m.end), role: m.role ?? 'owner' }));
  }
  return out;
}

export async function readClusterStatus(s: StatusSource): Promise<ClusterStatus> {
  const k = etcdKeys(s.cluster);
  const now = s.clock.now();
  const shards = shardReports(await etcdCall(s.etcd.getAll().prefix(k.shardsPrefix).strings()), k.shardsPrefix, k);
  const stored = await etcdCall(readSignedTopology(s.etcd, k.topology));
  let topology: Parameters<typeof buildStatus>[0]['topology'] = null;
  if (stored) {
    const v = await verifySignedTopology(stored.signed ?? null, { verifier: s.verifier, cluster: s.cluster });
    topology = v.ok ? { ok: true, topology: v.topology } : { ok: false, reason: `${v.reason}: ${v.message}` };
  }
  const statuses = await etcdCall(s.etcd.getAll().prefix(k.rebalanceStatusPrefix).strings());
  const moves: MoveRow[] = Object.entries(statuses).map(([key, v]) => {
    const [op, shard] = key.slice(k.rebalanceStatusPrefix.length).split('/');
    const report = parseJson(v);
    const progress = moveProgress(report);
    return { op: op!, shard: shard!, phase: String(report?.phase ?? 'unreadable'), ...(progress ? { progress } : {}) };
  });
  const open = [...new Set(moves.filter((m) => !SETTLED.has(m.phase)).map((m) => m.op))];
  const moveRanges = topology?.ok && open.length ? await movedRanges(s, topology.topology, open) : {};
  // Only CRLs that verify against the root count; their nextUpdate says whether they are stale.
  const trusted = verifiedCrls(await etcdCall(readStoredCrls(s.etcd, s.cluster)), new CrlTrust(s.caPem, s.clock));
  const crlRows = [...trusted.values()].map((c) => ({ name: c.name, nextUpdate: c.value.crl.nextUpdate?.toISOString() ?? null })).sort((a, b) => a.name.localeCompare(b.name));
  return buildStatus({ cluster: s.cluster, topology, shards, moves, moveRanges, crls: crlRows, now, expiringDays: s.expiringDays });
}
