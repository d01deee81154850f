// `themis-admin backup` and `themis-admin restore`: the CLI side of src/backup/ — flags, the
// operator's session (the topology in force gives the epoch the manifest records), and one
// summary line with the rates measured.
import { systemClock } from '../runtime.js';
import { PeerVerifier } from '../pki/verify.js';
import { takeBackup } from '../backup/take-backup.js';
import { restoreBackup } from '../backup/restore.js';
import { crlsFlag, parseFlags, readFlagFile, requireFlag, UsageError } from './cli-common.js';
import { openOperatorSession, SESSION_FLAGS } from './operator-session.js';

export const BACKUP_USAGE = `themis-admin backup --shard ID --out DIR --storage http://127.0.0.1:PORT
        --cluster NAME --etcd https://HOST:2379 --ca ROOT.pem --crls A.pem,… --operator-cert CHAIN.pem --operator-key KEY.pem
  Copies the shard's data as of one change-feed sequence number from its storage node's
  snapshot export (run it on the shard's host; writes go on meanwhile) into the new directory
  DIR: data.ndjson, manifest.json (cluster, shard, seq, topology epoch, key count, every file's
  SHA-256, the data's XXH64) and manifest.cms, the manifest signed by you (docs/disaster-recovery.md).
themis-admin restore --from DIR --data-dir PATH [--shard ID] [--replace]
        --cluster NAME --ca ROOT.pem --crls A.pem,…
  Verifies the backup (signature by an operator with admin, chain and CRLs, cluster, every
  digest) and only then builds a storage node's data directory at PATH from it, offline (stop
  the node first). --replace moves a directory holding data aside (PATH.replaced-TIME) instead
  of refusing. Refusals name a stable code, e.g. refused (BACKUP_WRONG_CLUSTER).`;

const MB = 1024 * 1024;

function rates(keys: number, bytes: number, ms: number): string {
  const s = Math.max(ms, 1) / 1000;
  return `${(keys / s).toFixed(0)} keys/s, ${(bytes / MB / s).toFixed(1)} MB/s`;
}

export async function backupCommand(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, { shard: { type: 'string' }, out: { type: 'string' }, storage: { type: 'string' }, ...SESSION_FLAGS });
  const shard = requireFlag(values.shard, 'shard', 'shard-001');
  const out = requireFlag(values.out, 'out', '/var/backups/themis/shard-001-2026-12-06');
  const storage = requireFlag(values.storage, 'storage', 'http://127.0.0.1:7001');
  if (!/^http:\/\/(127(\.\d{1,3}){3}|localhost|\[::1\]):\d+\/?$/.test(storage)) throw new UsageError(`--storage: "${storage}" must be http://127.0.0.1:PORT (the storage node on this host)`);
  const session = await openOperatorSession(values);
  try {
    if (!(shard in session.topology.shards)) throw new UsageError(`--shard: ${shard} is not in the topology of ${session.cluster} (epoch ${session.topology.epoch})`);
    const r = await takeBackup({ storageUrl: storage, out, cluster: session.cluster, shard, topologyEpoch: session.topology.epoch, chain: session.operator.chain, key: session.operator.key.privateKey });
    const m = r.manifest;
    const bytes = m.files['data.ndjson']!.bytes;
    process.stdout.write(`backup of ${shard} at seq ${m.seq} (topology epoch ${m.topology_epoch}): ${m.keys} keys, ${bytes} bytes in ${(r.ms / 1000).toFixed(2)} s (${rates(m.keys, bytes, r.ms)}) → ${out}\n`);
  } finally {
    session.close();
  }
}

export async function restoreCommand(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, { from: { type: 'string' }, 'data-dir': { type: 'string' }, shard: { type: 'string' }, replace: { type: 'boolean' }, cluster: { type: 'string' }, ca: { type: 'string' }, crls: { type: 'string' } });
  const from = requireFlag(values.from, 'from', '/var/backups/themis/shard-001-2026-12-06');
  const dataDir = requireFlag(values['data-dir'], 'data-dir', '/var/lib/themis/storage');
  const cluster = requireFlag(values.cluster, 'cluster', 'cluster-prod');
  const verifier = new PeerVerifier({ root: readFlagFile(requireFlag(values.ca, 'ca', 'pki/root/cert.pem'), 'ca'), crls: crlsFlag(values.crls), clock: systemClock });
  const t0 = performance.now();
  const r = await restoreBackup({ from, dataDir, verifier, cluster, ...(values.shard ? { shard: values.shard } : {}), replace: values.replace === true });
  const ms = performance.now() - t0;
  const m = r.manifest;
  process.stdout.write(`verified ${from}: ${m.shard} of ${m.cluster} at seq ${m.seq}, signed by ${r.signer}\n`);
  if (r.movedAside) process.stdout.write(`moved the old data directory aside to ${r.movedAside}\n`);
  process.stdout.write(`restored ${r.entities} keys to ${dataDir} at seq ${r.lastSeq} in ${(ms / 1000).toFixed(2)} s (${rates(r.entities, m.files['data.ndjson']!.bytes, ms)}); start the storage node\n`);
}
