// `themis-admin status [--json] [--watch]`: the cluster on one screen, read from etcd with a
// reader's certificate: shards and liveness, each one's share of ranges and keys, the epoch each
// sidecar serves (lagging ones flagged), replication lag, moves in progress, certificates expiring
// soon and stale CRLs. cluster-status.ts builds and draws it.
import type { Etcd3 } from 'etcd3';
import { readerCertPem } from './reader-identity.js';
import { connectEtcd, etcdKeys } from '../control/etcd.js';
import { readStoredCrls, verifiedCrls } from '../control/crl-store.js';
import { readSignedTopology } from '../control/topology-store.js';
import { CrlTrust } from '../pki/crl-trust.js';
import { PeerVerifier } from '../pki/verify.js';
import { systemClock } from '../runtime.js';
import { verifySignedTopology } from '../topology/signed.js';
import { parseFlags, requireFlag, readFlagFile, crlsFlag, etcdCall, etcdFlag, intFlag } from './cli-common.js';
import { buildStatus, renderStatus, type ClusterStatus, type MoveRow, type ShardReport } from './cluster-status.js';

export const STATUS_USAGE = `themis-admin status --etcd https://HOST:2379 --ca ROOT.pem --cert CHAIN.pem --key KEY.pem
        --cluster NAME --crls A.pem,B.pem,… [--json] [--watch [--every MS]] [--expiring-days 30]
  The cluster on one screen: shards and liveness, each shard's share of ranges, tokens and keys,
  the epoch each sidecar serves (! lagging behind the published one), replication lag, moves
  in progress, certificates expiring within --expiring-days (!) and stale CRLs, then warnings.
  --watch draws it again every --every ms (default 2000) until interrupted; with --json, one
  JSON document per line each time. Exit status 1 when there is any warning (without --watch).`;

function parseJson(v: string | undefined): Record<string, any> | undefined {
  if (v === undefined) return undefined;
  try {
    const o = JSON.parse(v) as unknown;
    return o !== null && typeof o === 'object' ? (o as Record<string, any>) : undefined;
  } catch {
    return undefined;
  }
}

async function read(etcd: Etcd3, cluster: string, caPem: string, crls: string[], expiringDays: number): Promise<ClusterStatus> {
  const k = etcdKeys(cluster);
  const now = systemClock.now();
  const all = await etcdCall(etcd.getAll().prefix(k.shardsPrefix).strings());
  const ids = [...new Set(Object.keys(all).map((key) => key.slice(k.shardsPrefix.length).split('/')[0]!))];
  const shards: ShardReport[] = ids.map((id) => {
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
  const stored = await etcdCall(readSignedTopology(etcd, k.topology));
  let topology: Parameters<typeof buildStatus>[0]['topology'] = null;
  if (stored) {
    const v = await verifySignedTopology(stored.signed ?? null, { verifier: new PeerVerifier({ root: caPem, crls, clock: systemClock }), cluster });
    topology = v.ok ? { ok: true, topology: v.topology } : { ok: false, reason: `${v.reason}: ${v.message}` };
  }
  const statuses = await etcdCall(etcd.getAll().prefix(k.rebalanceStatusPrefix).strings());
  const moves: MoveRow[] = Object.entries(statuses).map(([key, v]) => {
    const [op, shard] = key.slice(k.rebalanceStatusPrefix.length).split('/');
    return { op: op!, shard: shard!, phase: String(parseJson(v)?.phase ?? 'unreadable') };
  });
  // Only CRLs that verify against the root count; their nextUpdate says whether they are stale.
  const trusted = verifiedCrls(await etcdCall(readStoredCrls(etcd, cluster)), new CrlTrust(caPem, systemClock));
  const crlRows = [...trusted.values()].map((c) => ({ name: c.name, nextUpdate: c.value.crl.nextUpdate?.toISOString() ?? null })).sort((a, b) => a.name.localeCompare(b.name));
  return buildStatus({ cluster, topology, shards, moves, crls: crlRows, now, expiringDays });
}

export async function statusCommand(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, {
    etcd: { type: 'string' }, ca: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' },
    cluster: { type: 'string' }, crls: { type: 'string' }, json: { type: 'boolean' }, watch: { type: 'boolean' },
    every: { type: 'string' }, 'expiring-days': { type: 'string' },
  });
  const endpoints = etcdFlag(values.etcd);
  const cluster = requireFlag(values.cluster, 'cluster', 'cluster-prod');
  const caPem = readFlagFile(requireFlag(values.ca, 'ca', 'pki/root/cert.pem'), 'ca');
  const crls = crlsFlag(values.crls);
  const everyMs = intFlag(values.every, 'every', 2000, 200, 3_600_000);
  const expiringDays = intFlag(values['expiring-days'], 'expiring-days', 30, 0, 3650);
  const etcd = connectEtcd({
    endpoints,
    certPem: readerCertPem(values),
    keyPem: readFlagFile(requireFlag(values.key, 'key', 'pki/operators/readonly/key.pem'), 'key'),
    caPem,
  });
  const draw = (s: ClusterStatus) => process.stdout.write(values.json ? JSON.stringify(s, null, values.watch ? undefined : 2) + '\n' : (values.watch ? '\x1b[2J\x1b[H' : '') + renderStatus(s));
  try {
    if (!values.watch) {
      const s = await read(etcd, cluster, caPem, crls, expiringDays);
      draw(s);
      if (s.warnings.length) process.exitCode = 1;
      return;
    }
    let stop = false;
    process.once('SIGINT', () => (stop = true));
    process.once('SIGTERM', () => (stop = true));
    while (!stop) {
      // An etcd outage is shown and waited out, not fatal: the screen says what it cannot read.
      await read(etcd, cluster, caPem, crls, expiringDays).then(draw, (e: Error) => process.stdout.write(values.json ? JSON.stringify({ cluster, at: new Date().toISOString(), error: e.message }) + '\n' : `cannot read the cluster's state: ${e.message}\n`));
      const until = Date.now() + everyMs;
      while (!stop && Date.now() < until) await new Promise((r) => setTimeout(r, Math.min(100, until - Date.now())));
    }
  } finally {
    etcd.close();
  }
}
