// `themis-admin restore`: verify a backup against its signed manifest, then build the storage
// node's data directory beside the target and swap it in only when complete. Every check comes
// before the target is touched; a refusal or a crash midway leaves the target as it was.
import { createReadStream, existsSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { importStore, storeInUse } from '../../storage-node/restore-import.js';
import type { ChangeRecord } from '../../storage-node/layout.js';
import { recordsUntil, verifiedSegments } from './feed-segments.js';
import { DigestSink, digestFile } from './digests.js';
import { DATA_FILE, MANIFEST_CMS, MANIFEST_FILE, verifyManifest, type Manifest, type ManifestCheck } from './manifest.js';
import { BackupRefused } from './refusal.js';
import { seqAtTime } from './until-time.js';
import { fsyncPath } from '../fsync-path.js';

export interface RestoreOptions extends ManifestCheck {
  from: string;
  dataDir: string;
  /** Replace a data directory that holds data (moved aside, never deleted). */
  replace?: boolean;
  /** Replay the archived change feed (DIR/feed/) up to and including this sequence number, */
  until?: number;
  /** or up to the last change committed at or before this time (ms; until-time.ts). */
  untilTime?: number;
  now?: () => number;
}

export interface RestoreResult {
  manifest: Manifest;
  signer: string;
  lastSeq: number;
  entities: number;
  changes: number;
  /** With untilTime: the first archived change after it (left out), "SEQ at TIME". */
  firstAfter?: string;
  /** Where a replaced data directory was moved. */
  movedAside?: string;
}

function readBackupFile(dir: string, name: string): Buffer {
  try {
    return readFileSync(join(dir, name));
  } catch (e) {
    throw new BackupRefused('BACKUP_MALFORMED', `${join(dir, name)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** Checks manifest.cms, then every file's size and SHA-256 and the data's XXH64, reading each file once. */
export async function verifyBackup(dir: string, o: ManifestCheck): Promise<{ manifest: Manifest; signer: string }> {
  const text = readBackupFile(dir, MANIFEST_FILE).toString('utf8');
  const cms = readBackupFile(dir, MANIFEST_CMS);
  const v = await verifyManifest(text, new Uint8Array(cms), o);
  for (const [name, want] of Object.entries(v.manifest.files)) {
    const path = join(dir, name);
    if (!existsSync(path)) throw new BackupRefused('BACKUP_FILE_DIGEST', `${name} is missing`);
    const got = await digestFile(path);
    if (got.bytes !== want.bytes || got.sha256 !== want.sha256) {
      throw new BackupRefused('BACKUP_FILE_DIGEST', `${name} is ${got.bytes} bytes with SHA-256 ${got.sha256}; the manifest records ${want.bytes} bytes with ${want.sha256}`);
    }
    if (name === DATA_FILE && got.xxh64 !== v.manifest.data_xxh64) {
      throw new BackupRefused('BACKUP_DATA_DIGEST', `${name} has XXH64 ${got.xxh64}; the manifest records ${v.manifest.data_xxh64}`);
    }
  }
  return v;
}

/** The data file's entities, its XXH64 taken again as they are read (the file may not change after it was checked). */
async function* entitiesOf(path: string, sink: DigestSink): AsyncGenerator<{ key: string; blob: string }> {
  const input = createReadStream(path);
  input.on('data', (c) => sink.update(c as Buffer));
  let n = 0;
  for await (const line of createInterface({ input, crlfDelay: Infinity })) {
    n++;
    let v: { key?: unknown; blob?: unknown };
    try {
      v = JSON.parse(line) as typeof v;
    } catch {
      throw new BackupRefused('BACKUP_MALFORMED', `${DATA_FILE} line ${n} is not JSON`);
    }
    if (typeof v.key !== 'string' || typeof v.blob !== 'string' || !/^[A-Za-z0-9_.-]+:[0-9A-Za-z-]+$/.test(v.key)) {
      throw new BackupRefused('BACKUP_MALFORMED', `${DATA_FILE} line ${n} is not {key: "table:uuid", blob}`);
    }
    yield { key: v.key, blob: v.blob };
  }
}

/** Refuses a target a node holds open, or one holding data without `replace`. */
async function checkTarget(dataDir: string, replace: boolean): Promise<boolean> {
  if (!existsSync(dataDir)) return false;
  const held = readdirSync(dataDir);
  if (held.length === 0) return false;
  if (held.includes('LOCK') && (await storeInUse(dataDir))) {
    throw new BackupRefused('RESTORE_TARGET_IN_USE', `${dataDir} is open in a running storage node; stop it first (systemctl stop themis-storage)`);
  }
  if (!replace) throw new BackupRefused('RESTORE_TARGET_NOT_EMPTY', `${dataDir} holds ${held.length} files; pass --replace to move it aside and restore in its place`);
  return true;
}

export async function restoreBackup(o: RestoreOptions): Promise<RestoreResult> {
  const { manifest, signer } = await verifyBackup(o.from, o);
  let segments: string[] = [];
  let firstAfter: string | undefined;
  if (o.untilTime !== undefined) {
    const at = await seqAtTime(o.from, manifest, o.verifier, o.untilTime);
    o = { ...o, until: at.seq };
    firstAfter = at.firstAfter;
  }
  if (o.until !== undefined) {
    if (o.until < manifest.seq) throw new BackupRefused('RESTORE_UNTIL_UNREACHABLE', `the backup is at seq ${manifest.seq}, after ${o.until}; restore an older backup`);
    segments = await verifiedSegments(o.from, { cluster: manifest.cluster, shard: manifest.shard, baseSeq: manifest.seq }, o.verifier, o.until);
  }
  const dataDir = resolve(o.dataDir);
  const occupied = await checkTarget(dataDir, o.replace === true);
  const stamp = new Date((o.now ?? Date.now)()).toISOString().replace(/[:.]/g, '-');
  const building = join(dirname(dataDir), `.${basename(dataDir)}.restoring-${stamp}`);
  const sink = new DigestSink();
  let result;
  try {
    result = await importStore(building, { seq: manifest.seq, entities: entitiesOf(join(o.from, DATA_FILE), sink), ...(o.until !== undefined ? { changes: recordsUntil(segments, o.until) as AsyncIterable<ChangeRecord> } : {}) });
    const read = sink.digest();
    if (read.xxh64 !== manifest.data_xxh64 || result.entities !== manifest.keys) {
      throw new BackupRefused('BACKUP_DATA_DIGEST', `${DATA_FILE} changed while it was restored (XXH64 ${read.xxh64}, ${result.entities} keys; the manifest records ${manifest.data_xxh64}, ${manifest.keys})`);
    }
  } catch (e) {
    rmSync(building, { recursive: true, force: true });
    throw e;
  }
  let movedAside: string | undefined;
  if (occupied) {
    movedAside = `${dataDir}.replaced-${stamp}`;
    renameSync(dataDir, movedAside);
  } else if (existsSync(dataDir)) {
    rmSync(dataDir, { recursive: true }); // an empty directory
  }
  renameSync(building, dataDir);
  fsyncPath(dirname(dataDir)); // the renames: aside and into place
  return { manifest, signer, lastSeq: result.lastSeq, entities: result.entities, changes: result.changes, ...(firstAfter ? { firstAfter } : {}), ...(movedAside ? { movedAside } : {}) };
}
