// `themis-admin backup` and `themis-admin restore`: the CLI side of src/backup/ — flags, the
// operator's session (the topology in force gives the epoch the manifest records), and one
// summary line with the rates measured.
import { systemClock } from '../runtime.js';
import { PeerVerifier } from '../pki/verify.js';
import { takeBackup } from '../backup/take-backup.js';
import { restoreBackup } from '../backup/restore.js';
import { followFeed } from '../backup/follow-feed.js';
import { parseUntil } from '../backup/until-time.js';
import { parseManifest, MANIFEST_FILE } from '../backup/manifest.js';
import { createLogger } from '../log.js';
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { crlsFlag, intFlag, parseFlags, readFlagFile, requireFlag, UsageError } from './cli-common.js';
import { openOperatorSession, SESSION_FLAGS } from './operator-session.js';

export const BACKUP_USAGE = `themis-admin backup --shard ID --out DIR --storage http://127.0.0.1:PORT
        --cluster NAME --etcd https://HOST:2379 --ca ROOT.pem --crls A.pem,… --operator-cert CHAIN.pem --operator-key KEY.pem
  Copies the shard's data as of one change-feed sequence number from its storage node's
  snapshot export (run it on the shard's host; writes go on meanwhile) into the new directory
  DIR: data.ndjson, manifest.json (cluster, shard, seq, topology epoch, key count, every file's
  SHA-256, the data's XXH64) and manifest.cms, the manifest signed by you (docs/disaster-recovery.md).
  --follow then archives the change feed after that seq into DIR/feed/ until stopped (SIGINT,
  SIGTERM), in signed segments closed every --segment-records (10000) changes or
  --segment-seconds (5); with an existing DIR it resumes where its archive ends.
themis-admin restore --from DIR --data-dir PATH [--until SEQ|TIME] [--shard ID] [--replace]
        --cluster NAME --ca ROOT.pem --crls A.pem,…
  Verifies the backup (signature by an operator with admin, chain and CRLs, cluster, every
  digest) and only then builds a storage node's data directory at PATH from it, offline (stop
  the node first). --replace moves a directory holding data aside (PATH.replaced-TIME) instead
  of refusing. --until SEQ replays the archived feed's signed segments up to SEQ (inclusive);
  --until TIME (RFC 3339, e.g. 2026-12-06T14:02:00Z) up to the last change the storage node
  committed at or before TIME.
  Refusals name a stable code, e.g. refused (BACKUP_WRONG_CLUSTER).`;

const MB = 1024 * 1024;

function rates(keys: number, bytes: number, ms: number): string {
  const s = Math.max(ms, 1) / 1000;
  return `${(keys / s).toFixed(0)} keys/s, ${(bytes / MB / s).toFixed(1)} MB/s`;
}

export async function backupCommand(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, {
    shard: { type: 'string' }, out: { type: 'string' }, storage: { type: 'string' }, ...SESSION_FLAGS,
    follow: { type: 'boolean' }, 'segment-records': { type: 'string' }, 'segment-seconds': { type: 'string' },
  });
  const shard = requireFlag(values.shard, 'shard', 'shard-001');
  const out = requireFlag(values.out, 'out', '/var/backups/themis/shard-001-2026-12-06');
  const storage = requireFlag(values.storage, 'storage', 'http://127.0.0.1:7001');
  if (!/^http:\/\/(127(\.\d{1,3}){3}|localhost|\[::1\]):\d+\/?$/.test(storage)) throw new UsageError(`--storage: "${storage}" must be http://127.0.0.1:PORT (the storage node on this host)`);
  const opened = await openOperatorSession(values);
  let open = true;
  const session = { ...opened, close: () => void (open && (opened.close(), (open = false))) };
  try {
    if (!(shard in session.topology.shards)) throw new UsageError(`--shard: ${shard} is not in the topology of ${session.cluster} (epoch ${session.topology.epoch})`);
    const registerAs = `backup:${shard}:${basename(out).replace(/[^A-Za-z0-9._:-]/g, '_').slice(0, 150)}`;
    const signer = { chain: session.operator.chain, key: session.operator.key.privateKey };
    let base: number;
    if (values.follow && existsSync(join(out, MANIFEST_FILE))) {
      const m = parseManifest(readFileSync(join(out, MANIFEST_FILE), 'utf8'));
      if (m.cluster !== session.cluster || m.shard !== shard) throw new UsageError(`--out ${out} holds a backup of ${m.shard} of ${m.cluster}, not of ${shard} of ${session.cluster}`);
      base = m.seq;
    } else {
      const r = await takeBackup({ storageUrl: storage, out, cluster: session.cluster, shard, topologyEpoch: session.topology.epoch, ...signer, ...(values.follow ? { register: registerAs } : {}) });
      const m = r.manifest;
      const bytes = m.files['data.ndjson']!.bytes;
      process.stdout.write(`backup of ${shard} at seq ${m.seq} (topology epoch ${m.topology_epoch}): ${m.keys} keys, ${bytes} bytes in ${(r.ms / 1000).toFixed(2)} s (${rates(m.keys, bytes, r.ms)}) → ${out}\n`);
      base = m.seq;
    }
    session.close();
    if (!values.follow) return;
    const limits = { maxRecords: intFlag(values['segment-records'], 'segment-records', 10_000, 1, 10_000_000), maxMs: intFlag(values['segment-seconds'], 'segment-seconds', 5, 1, 86_400) * 1000 };
    const stop = new Promise<void>((r) => ['SIGINT', 'SIGTERM'].forEach((sig) => process.once(sig, () => r())));
    const last = await followFeed({
      storageUrl: storage, backupDir: out, id: { cluster: session.cluster, shard, baseSeq: base }, registerAs, signer, limits, stop,
      log: createLogger('themis-admin').child({ component: 'backup-follow' }),
      onStarted: (from) => process.stdout.write(`following the change feed of ${shard} from seq ${from} into ${join(out, 'feed')} (SIGINT or SIGTERM stops)\n`),
    });
    process.stdout.write(`archived the change feed of ${shard} through seq ${last}\n`);
  } finally {
    session.close();
  }
}

export async function restoreCommand(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, { from: { type: 'string' }, 'data-dir': { type: 'string' }, shard: { type: 'string' }, replace: { type: 'boolean' }, until: { type: 'string' }, cluster: { type: 'string' }, ca: { type: 'string' }, crls: { type: 'string' } });
  const from = requireFlag(values.from, 'from', '/var/backups/themis/shard-001-2026-12-06');
  const dataDir = requireFlag(values['data-dir'], 'data-dir', '/var/lib/themis/storage');
  const cluster = requireFlag(values.cluster, 'cluster', 'cluster-prod');
  const verifier = new PeerVerifier({ root: readFlagFile(requireFlag(values.ca, 'ca', 'pki/root/cert.pem'), 'ca'), crls: crlsFlag(values.crls), clock: systemClock });
  const until = values.until === undefined ? undefined : parseUntil(values.until, Date.now());
  const t0 = performance.now();
  const r = await restoreBackup({ from, dataDir, verifier, cluster, ...(values.shard ? { shard: values.shard } : {}), replace: values.replace === true, ...(until && 'seq' in until ? { until: until.seq } : {}), ...(until && 'timeMs' in until ? { untilTime: until.timeMs } : {}) });
  const ms = performance.now() - t0;
  const m = r.manifest;
  process.stdout.write(`verified ${from}: ${m.shard} of ${m.cluster} at seq ${m.seq}, signed by ${r.signer}\n`);
  if (r.movedAside) process.stdout.write(`moved the old data directory aside to ${r.movedAside}\n`);
  if (until && 'timeMs' in until) process.stdout.write(`${until.text} is seq ${r.lastSeq}: the last change committed at or before it (the next, ${r.firstAfter}, is left out)\n`);
  if (r.changes) process.stdout.write(`replayed ${r.changes} archived changes after seq ${m.seq}\n`);
  process.stdout.write(`restored ${r.entities} keys to ${dataDir} at seq ${r.lastSeq} in ${(ms / 1000).toFixed(2)} s (${rates(r.entities, m.files['data.ndjson']!.bytes, ms)}); start the storage node\n`);
}
