// `themis-admin backup`: one shard's data at one change-feed sequence number, read from its
// storage node's snapshot export while writes go on, into a directory with a signed manifest.
// The directory is built under DIR.partial and renamed when complete: DIR exists only whole.
import type { webcrypto } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fsyncPath } from '../fsync-path.js';
import { DATA_FILE, MANIFEST_CMS, MANIFEST_FILE, BACKUP_FORMAT, manifestText, signManifest, type Manifest } from './manifest.js';
import { downloadSnapshot } from './snapshot-download.js';

export interface BackupOptions {
  storageUrl: string;
  out: string;
  cluster: string;
  shard: string;
  topologyEpoch: number;
  chain: readonly Uint8Array[];
  key: webcrypto.CryptoKey;
  /** Register a change-feed follower under this id at the snapshot's sequence number (for --follow). */
  register?: string;
  now?: () => number;
}

export interface BackupResult {
  manifest: Manifest;
  trimmedThrough: number;
  ms: number;
}

function writeDurable(path: string, data: string | Uint8Array): void {
  writeFileSync(path, data, { flag: 'wx', mode: 0o600 });
  fsyncPath(path);
}

export async function takeBackup(o: BackupOptions): Promise<BackupResult> {
  const now = o.now ?? Date.now;
  const t0 = performance.now();
  if (existsSync(o.out)) throw new Error(`--out ${o.out} exists already; a backup goes into a new directory`);
  const partial = `${o.out}.partial`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true, mode: 0o700 });
  try {
    const got = await downloadSnapshot(o.storageUrl, join(partial, DATA_FILE), o.register ? { register: o.register } : {});
    const manifest: Manifest = {
      format: BACKUP_FORMAT,
      cluster: o.cluster,
      shard: o.shard,
      seq: got.seq,
      ...(got.committedAt ? { seq_committed_at: got.committedAt } : {}),
      topology_epoch: o.topologyEpoch,
      keys: got.keys,
      created_at: new Date(now()).toISOString(),
      data_xxh64: got.digest.xxh64,
      files: { [DATA_FILE]: { bytes: got.digest.bytes, sha256: got.digest.sha256 } },
    };
    const text = manifestText(manifest);
    writeDurable(join(partial, MANIFEST_FILE), text);
    writeDurable(join(partial, MANIFEST_CMS), await signManifest(text, o.chain, o.key));
    fsyncPath(partial); // the three files' names
    renameSync(partial, o.out);
    fsyncPath(dirname(resolve(o.out))); // the rename
    return { manifest, trimmedThrough: got.trimmedThrough, ms: performance.now() - t0 };
  } catch (e) {
    rmSync(partial, { recursive: true, force: true });
    throw e;
  }
}
