// `themis-admin etcd snapshot save|restore`: etcd's own snapshot tool (etcdctl, API v3) with the
// operator's TLS flags filled in, and a restore into a new data directory. What a restored etcd
// holds is checked afterwards by the sidecars (an older topology or CRL is refused) and by
// `themis-admin check` (it names the rollback and the signed decision that ends it).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { etcdFlag, parseFlags, readFlagFile, requireFlag, UsageError } from './cli-common.js';
import { OPERATOR_FLAGS, operatorIdentity } from './operator-identity.js';

export const ETCD_SNAPSHOT_USAGE = `themis-admin etcd snapshot save --out FILE --etcd https://HOST:2379 --ca ROOT.pem --operator-cert CHAIN.pem --operator-key KEY.pem [--etcdctl PATH]
  etcdctl snapshot save through one endpoint, as the operator (admin: etcd's root role).
themis-admin etcd snapshot restore --from FILE --data-dir DIR --name MEMBER --initial-cluster NAME=PEER-URL,… --initial-advertise-peer-urls PEER-URL [--etcdctl PATH]
  etcdctl snapshot restore into the new DIR (per member; start etcd on it). Then run
  themis-admin check: a snapshot older than the topology the shards serve is reported, and the
  sidecars refuse it until you publish the topology in force at a newer epoch (docs/disaster-recovery.md).`;

function etcdctl(path: string, args: string[], env: NodeJS.ProcessEnv = {}): string {
  const r = spawnSync(path, args, { encoding: 'utf8', timeout: 120_000, env: { ...process.env, ETCDCTL_API: '3', ...env } });
  if (r.error) throw new Error(`cannot run ${path}: ${r.error.message} (install etcd-client, or pass --etcdctl PATH)`);
  if (r.status !== 0) throw new Error(`${path} ${args[0]} ${args[1]} failed: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' ')}`);
  return r.stdout + r.stderr;
}

export async function etcdSnapshotCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === 'save') {
    const { values } = parseFlags(rest, { out: { type: 'string' }, etcd: { type: 'string' }, ca: { type: 'string' }, etcdctl: { type: 'string' }, ...OPERATOR_FLAGS });
    const out = requireFlag(values.out, 'out', 'etcd-2026-12-06.db');
    if (existsSync(out)) throw new UsageError(`--out ${out} exists already`);
    const endpoint = etcdFlag(values.etcd)[0]!;
    const caPath = requireFlag(values.ca, 'ca', 'pki/root/cert.pem');
    readFlagFile(caPath, 'ca');
    const op = await operatorIdentity(values);
    // etcdctl reads the key from a file: the decrypted key goes to a private temporary one.
    const tmp = mkdtempSync(join(tmpdir(), 'themis-etcdctl-'));
    try {
      const key = join(tmp, 'key.pem');
      writeFileSync(key, op.keyPem, { mode: 0o600 });
      etcdctl(values.etcdctl ?? 'etcdctl', ['snapshot', 'save', out, '--endpoints', endpoint, '--cacert', caPath, '--cert', op.certPath, '--key', key]);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
    process.stdout.write(`saved etcd's snapshot from ${endpoint} to ${out}\n`);
    return;
  }
  if (sub === 'restore') {
    const { values } = parseFlags(rest, { from: { type: 'string' }, 'data-dir': { type: 'string' }, name: { type: 'string' }, 'initial-cluster': { type: 'string' }, 'initial-advertise-peer-urls': { type: 'string' }, etcdctl: { type: 'string' } });
    const from = requireFlag(values.from, 'from', 'etcd-2026-12-06.db');
    const dataDir = requireFlag(values['data-dir'], 'data-dir', '/var/lib/etcd/restored');
    if (existsSync(dataDir)) throw new UsageError(`--data-dir ${dataDir} exists; etcd restores into a new directory`);
    const name = requireFlag(values.name, 'name', 'etcd-1');
    const cluster = requireFlag(values['initial-cluster'], 'initial-cluster', 'etcd-1=https://10.0.0.5:2380');
    const peer = requireFlag(values['initial-advertise-peer-urls'], 'initial-advertise-peer-urls', 'https://10.0.0.5:2380');
    etcdctl(values.etcdctl ?? 'etcdctl', ['snapshot', 'restore', from, '--data-dir', dataDir, '--name', name, '--initial-cluster', cluster, '--initial-advertise-peer-urls', peer]);
    process.stdout.write(`restored ${from} into ${dataDir}; start etcd on it, then run themis-admin check\n`);
    return;
  }
  throw new UsageError(`unknown etcd snapshot command "${sub ?? ''}"; use etcd snapshot save or etcd snapshot restore`);
}
