// A backup's manifest: what was copied (cluster, shard, sequence number, topology epoch, key
// count), the size and SHA-256 of every file and the XXH64 of the data, signed by an operator
// as a detached CMS (manifest.cms over manifest.json's exact bytes, as topologies are signed).
import type { webcrypto } from 'node:crypto';
import { openDetached, signDetached } from '../pki/cms.js';
import type { PeerVerifier } from '../pki/verify.js';
import { BackupRefused } from './refusal.js';
import type { FileDigest } from './digests.js';

export const BACKUP_FORMAT = 'themis-backup/1';
export const MANIFEST_FILE = 'manifest.json';
export const MANIFEST_CMS = 'manifest.cms';
export const DATA_FILE = 'data.ndjson';
/** The capability an operator needs for a backup to be restored. */
export const BACKUP_CAPABILITY = 'admin';

export interface Manifest {
  format: typeof BACKUP_FORMAT;
  cluster: string;
  shard: string;
  /** Every change up to this sequence number of the shard's node is in the data, none after. */
  seq: number;
  /**
   * The storage node's commit time of the change at `seq` (ISO 8601): no change in the data is
   * younger. Absent in older backups, and when the node's log no longer held that record.
   */
  seq_committed_at?: string;
  topology_epoch: number;
  keys: number;
  created_at: string;
  /** XXH64 (seed 0) of data.ndjson, 16 hex digits: `xxhsum -H1 data.ndjson`. */
  data_xxh64: string;
  /** Every file of the backup but the manifest and its signature. */
  files: Record<string, FileDigest>;
}

export function manifestText(m: Manifest): string {
  return JSON.stringify(m, null, 2) + '\n';
}

export async function signManifest(text: string, chainDer: readonly Uint8Array[], key: webcrypto.CryptoKey): Promise<Uint8Array> {
  return signDetached(Buffer.from(text, 'utf8'), chainDer, key);
}

const FILE_NAME = /^[a-z0-9][a-z0-9._-]{0,127}$/;

/** Parses and checks every field; BACKUP_MALFORMED names the one that is wrong. */
export function parseManifest(text: string): Manifest {
  const bad = (what: string) => new BackupRefused('BACKUP_MALFORMED', `${MANIFEST_FILE}: ${what}`);
  let d: Record<string, unknown>;
  try {
    d = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw bad('not JSON');
  }
  if (!d || typeof d !== 'object' || Array.isArray(d)) throw bad('not a JSON object');
  if (d.format !== BACKUP_FORMAT) throw bad(`format must be "${BACKUP_FORMAT}"`);
  for (const f of ['cluster', 'shard', 'created_at'] as const) if (typeof d[f] !== 'string' || !d[f]) throw bad(`${f} must be a non-empty string`);
  for (const f of ['seq', 'topology_epoch', 'keys'] as const) if (!Number.isSafeInteger(d[f]) || (d[f] as number) < 0) throw bad(`${f} must be an integer ≥ 0`);
  if (d.seq_committed_at !== undefined && (typeof d.seq_committed_at !== 'string' || !Number.isFinite(Date.parse(d.seq_committed_at)))) throw bad('seq_committed_at must be an ISO 8601 time');
  if (typeof d.data_xxh64 !== 'string' || !/^[0-9a-f]{16}$/.test(d.data_xxh64)) throw bad('data_xxh64 must be 16 lower-case hex digits');
  const files = d.files as Record<string, FileDigest> | undefined;
  if (!files || typeof files !== 'object' || Array.isArray(files)) throw bad('files must be an object');
  for (const [name, f] of Object.entries(files)) {
    if (!FILE_NAME.test(name) || name === MANIFEST_FILE || name === MANIFEST_CMS) throw bad(`files: "${name.slice(0, 64)}" is not a plain file name of the backup`);
    if (!Number.isSafeInteger(f?.bytes) || f.bytes < 0 || typeof f.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(f.sha256)) throw bad(`files.${name}: needs bytes and a hex sha256`);
  }
  if (!files[DATA_FILE]) throw bad(`files must list ${DATA_FILE}`);
  return d as unknown as Manifest;
}

export interface ManifestCheck {
  verifier: PeerVerifier;
  cluster: string;
  /** When given, the backup must be of this shard. */
  shard?: string;
}

/**
 * Verifies a detached signature over `text` (the file `what`): a valid signature, by a
 * certificate that chains to the root, is not revoked, is an operator's and carries `admin`.
 * Resolves with the signer's subject.
 */
export async function verifySigned(text: string, cms: Uint8Array, verifier: PeerVerifier, what: string): Promise<string> {
  const sig = `${what.replace(/\.json$/, '')}.cms`;
  let parts;
  try {
    parts = await openDetached(cms, Buffer.from(text, 'utf8'));
  } catch (e) {
    throw new BackupRefused('BACKUP_SIGNATURE_INVALID', `${sig} is not a CMS signature (${(e as Error).message})`);
  }
  if (!parts.signatureValid) throw new BackupRefused('BACKUP_SIGNATURE_INVALID', `${sig} does not verify over ${what}: it was changed after it was signed`);
  const chain = parts.chain.length ? verifier.verify(parts.chain, 'clientAuth') : undefined;
  if (!chain) throw new BackupRefused('BACKUP_SIGNER_UNTRUSTED', `${sig} carries no signer certificate`);
  if (!chain.ok) throw new BackupRefused('BACKUP_SIGNER_UNTRUSTED', `the signer's certificate is refused (${chain.reason}): ${chain.message}`);
  const { identity, subject } = chain.peer;
  if (identity.role !== 'operator') throw new BackupRefused('BACKUP_SIGNER_UNTRUSTED', `${subject} is a ${identity.role} certificate, not an operator's`);
  if (!(identity.capabilities as readonly string[]).includes(BACKUP_CAPABILITY)) throw new BackupRefused('BACKUP_SIGNER_UNTRUSTED', `${subject} lacks the ${BACKUP_CAPABILITY} capability`);
  return subject;
}

/** verifySigned over manifest.json, then the cluster (and shard) it names. */
export async function verifyManifest(text: string, cms: Uint8Array, o: ManifestCheck): Promise<{ manifest: Manifest; signer: string }> {
  const subject = await verifySigned(text, cms, o.verifier, MANIFEST_FILE);
  const manifest = parseManifest(text);
  if (manifest.cluster !== o.cluster) throw new BackupRefused('BACKUP_WRONG_CLUSTER', `the backup is of cluster "${manifest.cluster}", not "${o.cluster}"`);
  if (o.shard !== undefined && manifest.shard !== o.shard) throw new BackupRefused('BACKUP_WRONG_SHARD', `the backup is of ${manifest.shard}, not ${o.shard}`);
  return { manifest, signer: subject };
}
