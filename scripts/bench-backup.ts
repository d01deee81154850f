// Backup and restore rates of one shard, and the recovery time they give: a storage node filled
// with N keys, `themis-admin backup`'s code reading its snapshot export over HTTP, then restore's
// (verify, build the data directory) into a fresh one, and the node started on it. Prints keys/s
// and MB/s of each and the RTO of a 1 GB shard, extrapolated linearly from the measured size.
// `npm run bench -- backup [--keys 100000] [--blob-bytes 1024]`.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { mintDevPki } from '../src/pki/dev-pki.js';
import { loadPrivateKey } from '../src/pki/keys.js';
import { parsePem } from '../src/pki/pem.js';
import { PeerVerifier } from '../src/pki/verify.js';
import { systemClock } from '../src/runtime.js';
import { takeBackup } from '../src/backup/take-backup.js';
import { restoreBackup } from '../src/backup/restore.js';
import { Store } from '../storage-node/store.js';
import { MAIN, startListening } from './processes.js';

const MB = 1024 * 1024;
const GB = 1024 * MB;

async function startNode(dataDir: string) {
  const t0 = performance.now();
  const p = await startListening<{ port: number }>(MAIN.storage, ['--port', '0', '--data-dir', dataDir], 'storage node', { env: { THEMIS_LOG_LEVEL: 'warn' } });
  return { p, url: `http://127.0.0.1:${p.ready.port}`, startMs: performance.now() - t0 };
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { keys: { type: 'string' }, 'blob-bytes': { type: 'string' } } });
  const keys = Number(values.keys ?? 100_000);
  const blobBytes = Number(values['blob-bytes'] ?? 1024);
  const dir = mkdtempSync(join(tmpdir(), 'themis-bench-backup-'));
  try {
    const pki = await mintDevPki({ dir: join(dir, 'pki'), cluster: 'cluster-bench', shards: [{ id: 'shard-001', ip: '127.0.0.1' }], passphrase: 'bench-passphrase', kdfIterations: 1000 });
    const admin = pki.operators.admin;
    const chain = parsePem(readFileSync(admin.chainPath, 'utf8'), 'admin').map((b) => new Uint8Array(b.der));
    const key = (await loadPrivateKey(readFileSync(admin.keyPath, 'utf8'), undefined, admin.keyPath)).privateKey;

    const source = join(dir, 'source');
    const store = await Store.open(source);
    const pad = 'x'.repeat(Math.max(0, blobBytes - 20));
    const fill0 = performance.now();
    for (let i = 0; i < keys; i += 2000) {
      await Promise.all(Array.from({ length: Math.min(2000, keys - i) }, (_, j) => store.put('document.bench.items', randomUUID(), JSON.stringify({ i: i + j, pad }))));
    }
    await store.close();
    console.log(`filled ${keys} keys of ~${blobBytes} bytes in ${((performance.now() - fill0) / 1000).toFixed(1)} s`);

    const node = await startNode(source);
    const backup = await takeBackup({ storageUrl: node.url, out: join(dir, 'backup'), cluster: 'cluster-bench', shard: 'shard-001', topologyEpoch: 1, chain, key });
    await node.p.kill('SIGTERM');
    const bytes = backup.manifest.files['data.ndjson']!.bytes;

    const crls = ['root', 'cluster', 'operator', 'client'].map((c) => readFileSync(pki.layout.caCrl(c as 'root'), 'utf8'));
    const verifier = new PeerVerifier({ root: readFileSync(pki.layout.caCert('root'), 'utf8'), crls, clock: systemClock });
    const r0 = performance.now();
    const restored = await restoreBackup({ from: join(dir, 'backup'), dataDir: join(dir, 'restored'), verifier, cluster: 'cluster-bench' });
    const restoreMs = performance.now() - r0;
    const again = await startNode(join(dir, 'restored'));
    await again.p.kill('SIGTERM');
    if (restored.entities !== keys) throw new Error(`restored ${restored.entities} keys, expected ${keys}`);

    const rate = (ms: number) => `${(keys / (ms / 1000)).toFixed(0).padStart(8)} keys/s  ${(bytes / MB / (ms / 1000)).toFixed(1).padStart(6)} MB/s`;
    const scale = GB / bytes;
    console.log(`data: ${keys} keys, ${(bytes / MB).toFixed(1)} MB in data.ndjson`);
    console.log(`backup  (snapshot export over HTTP, digests, signed manifest) ${(backup.ms / 1000).toFixed(2).padStart(7)} s  ${rate(backup.ms)}`);
    console.log(`restore (verify signature and digests, build LevelDB)         ${(restoreMs / 1000).toFixed(2).padStart(7)} s  ${rate(restoreMs)}`);
    console.log(`node start on the restored directory                          ${(again.startMs / 1000).toFixed(2).padStart(7)} s`);
    console.log(`RTO for a 1 GB shard (restore × ${scale.toFixed(1)} + node start, extrapolated): ${((restoreMs * scale + again.startMs) / 1000).toFixed(1)} s; a 1 GB backup takes ${((backup.ms * scale) / 1000).toFixed(1)} s`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
