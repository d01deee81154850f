// `themis-admin shards`: the registered shards as etcd holds them — endpoint, liveness,
// certificate serial and expiry, and whether the certificate verifies now (the seed's
// discoverShards / verifyShard), checked against the root and the CRLs given.
import { readerCertPem } from './reader-identity.js';
import { connectEtcd, etcdKeys } from '../control/etcd.js';
import { failoverKeys, parseSnapshot } from '../control/failover-keys.js';
import type { ThemisIdentity } from '../pki/identity-extension.js';
import { parsePem } from '../pki/pem.js';
import { PeerVerifier } from '../pki/verify.js';
import { systemClock } from '../runtime.js';
import { SHARD_ID_RE } from '../topology/topology.js';
import { parseFlags, requireFlag, readFlagFile, crlsFlag, etcdCall, etcdFlag, UsageError } from './cli-common.js';

export const SHARDS_USAGE = `themis-admin shards --etcd https://HOST:2379 --ca ROOT.pem --cert CHAIN.pem --key KEY.pem
        --cluster NAME --crls A.pem,B.pem,… [--shard ID] [--json | --serial-only]
  Lists registered shards: endpoint, alive (lease), certificate serial, expiry, status
  (valid, or why the certificate no longer verifies: revoked, expired, …), and as a replica
  which primaries it follows and how many changes it is behind each; "acting for": the replica
  groups it is the acting primary of (failover; --json lists them with their terms).
  --shard ID shows that shard alone (exit 1 if it is not registered); --serial-only prints just
  the registered certificate serials, one a line, for scripts (the serial to revoke after a
  rotation: OLD=$(themis-admin shards --shard shard-002 --serial-only)).`;

interface Row {
  shard: string;
  endpoint: string | null;
  alive: boolean;
  serial: string | null;
  notAfter: string | null;
  /** The CA that issued the registered certificate, when it verifies: which generation it is of during a root rotation. */
  issuer: string | null;
  status: string;
  /** As a replica: per primary, the follower's state and how many changes it is behind. */
  replication: Record<string, { state: string; position: number; lag_changes: number }> | null;
  /** Replica groups it is the acting primary of (failover), with their terms. */
  acting: { group: string; term: number }[];
}


export async function shardsCommand(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, {
    etcd: { type: 'string' }, ca: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' },
    cluster: { type: 'string' }, crls: { type: 'string' }, json: { type: 'boolean' },
    shard: { type: 'string' }, 'serial-only': { type: 'boolean' },
  });
  if (values.json && values['serial-only']) throw new UsageError('--json and --serial-only exclude each other');
  if (values.shard !== undefined && !SHARD_ID_RE.test(values.shard)) throw new UsageError(`--shard: "${values.shard}" is not a shard id (e.g. shard-002)`);
  const endpoints = etcdFlag(values.etcd);
  const cluster = requireFlag(values.cluster, 'cluster', 'cluster-prod');
  const caPem = readFlagFile(requireFlag(values.ca, 'ca', 'pki/root/cert.pem'), 'ca');
  const crls = crlsFlag(values.crls);
  const etcd = connectEtcd({
    endpoints,
    certPem: readerCertPem(values),
    keyPem: readFlagFile(requireFlag(values.key, 'key', 'pki/operators/readonly/key.pem'), 'key'),
    caPem,
  });
  const verifier = new PeerVerifier({ root: caPem, crls, clock: systemClock });
  const k = etcdKeys(cluster);
  try {
    const all = await etcdCall(etcd.getAll().prefix(k.shardsPrefix).strings());
    const fk = failoverKeys(cluster);
    const failover = parseSnapshot(fk.base, (await etcdCall(etcd.getAll().prefix(fk.base).exec())).kvs as never);
    let ids = [...new Set(Object.keys(all).map((key) => key.slice(k.shardsPrefix.length).split('/')[0]!))].sort();
    if (values.shard !== undefined) {
      if (!ids.includes(values.shard)) throw new Error(`${values.shard} is not registered in cluster ${cluster} (themis-admin shards lists those that are)`);
      ids = [values.shard];
    }
    const rows: Row[] = ids.map((id) => {
      const cert = parseJson(all[k.shardCertificate(id)]) as { cert_pem?: string; serial_number?: string; not_after?: string } | undefined;
      const ep = parseJson(all[k.shardEndpoint(id)]) as { host?: string; port?: number } | undefined;
      let status = 'no certificate registered';
      let issuer: string | null = null;
      if (cert?.cert_pem) {
        try {
          const chain = parsePem(cert.cert_pem, `${id} certificate`).map((b) => new Uint8Array(b.der));
          const r = verifier.verify(chain, 'serverAuth');
          status = r.ok ? shardStatus(id, r.peer.identity) : r.reason;
          if (r.ok) issuer = r.peer.issuer;
        } catch (e) {
          status = `malformed: ${(e as Error).message}`;
        }
      }
      return {
        shard: id,
        endpoint: ep?.host ? `${ep.host}:${ep.port}` : null,
        alive: all[k.shardAlive(id)] !== undefined,
        serial: cert?.serial_number ?? null,
        notAfter: cert?.not_after ?? null,
        issuer,
        status,
        replication: replicationOf(parseJson(all[k.shardReplication(id)])),
        acting: [...failover.acting].filter(([, a]) => a.shard === id).map(([group, a]) => ({ group, term: a.term })),
      };
    });
    if (values.json) {
      process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
      return;
    }
    if (values['serial-only']) {
      const missing = rows.filter((r) => r.serial === null).map((r) => r.shard);
      if (missing.length > 0) throw new Error(`no certificate registered for ${missing.join(', ')}`);
      process.stdout.write(rows.map((r) => `${r.serial}\n`).join(''));
      return;
    }
    process.stdout.write(`${'shard'.padEnd(12)} ${'endpoint'.padEnd(22)} ${'alive'.padEnd(6)} ${'serial'.padEnd(34)} ${'expires'.padEnd(25)} ${'status'.padEnd(16)} ${'acting for'.padEnd(12)} replica of (changes behind)\n`);
    for (const r of rows) {
      const rep = Object.entries(r.replication ?? {}).map(([p, f]) => (f.state === 'following' ? `${p} (${f.lag_changes})` : `${p} (${f.state})`)).join(', ') || '-';
      process.stdout.write(`${r.shard.padEnd(12)} ${(r.endpoint ?? '-').padEnd(22)} ${(r.alive ? 'yes' : 'no').padEnd(6)} ${(r.serial ?? '-').padEnd(34)} ${(r.notAfter ?? '-').padEnd(25)} ${r.status.padEnd(16)} ${`${r.acting.length} group${r.acting.length === 1 ? '' : 's'}`.padEnd(12)} ${rep}\n`);
    }
  } finally {
    etcd.close();
  }
}

/** A verified certificate (role already bound to its issuing CA) registered under shards/{id}/. */
function shardStatus(id: string, identity: ThemisIdentity): string {
  if (identity.role !== 'primary' && identity.role !== 'replica') return `not a shard certificate (role ${identity.role})`;
  return identity.shardId === id ? 'valid' : `certificate is for ${identity.shardId}`;
}

/** The `shards/{id}/replication` value a sidecar reports: its followers by primary. */
function replicationOf(v: unknown): Row['replication'] {
  const followers = (v as { followers?: Record<string, { state?: unknown; position?: unknown; latest?: unknown }> } | undefined)?.followers;
  if (!followers || typeof followers !== 'object') return null;
  const out: NonNullable<Row['replication']> = {};
  for (const [p, f] of Object.entries(followers)) {
    const position = Number(f?.position);
    const latest = Number(f?.latest);
    out[p] = { state: String(f?.state), position, lag_changes: Number.isFinite(latest) && latest >= 0 ? Math.max(0, latest - position) : -1 };
  }
  return out;
}

function parseJson(v: string | undefined): unknown {
  if (v === undefined) return undefined;
  try {
    return JSON.parse(v);
  } catch {
    return undefined;
  }
}
