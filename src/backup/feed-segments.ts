// A backup's archived change feed (`backup --follow`): every change after the backup's sequence
// number, in order, in segments under DIR/feed/. The open segment (open.ndjson) is appended and
// fsynced page by page; a full or old one is renamed to FIRST-LAST.ndjson (16-digit sequence
// numbers) and gets a signed manifest (FIRST-LAST.json + .cms) with its digest. A restart keeps
// the open segment (a torn last line is cut) and signs a closed one that lacks its manifest, so
// the archive's last sequence number is always where following resumes.
import type { webcrypto } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { digestFile } from './digests.js';
import { signManifest, verifySigned } from './manifest.js';
import type { PeerVerifier } from '../pki/verify.js';
import { BackupRefused } from './refusal.js';

export const FEED_DIR = 'feed';
export const SEGMENT_FORMAT = 'themis-feed-segment/1';
const OPEN = 'open.ndjson';
const SEGMENT = /^(\d{16})-(\d{16})\.ndjson$/;

/** One change record as the feed serves it (storage-node/layout.ts ChangeRecord). */
export interface FeedRecord {
  operation: 'PUT' | 'DELETE';
  key: string;
  sequence: number;
  old_val?: string | null;
  new_val: string | null;
  /** The node's commit time (ISO 8601), in records of nodes that stamp it (docs/storage-api.md). */
  committed_at?: string;
}

export interface SegmentManifest {
  format: typeof SEGMENT_FORMAT;
  cluster: string;
  shard: string;
  /** The backup's sequence number: the archive continues it. */
  base_seq: number;
  first: number;
  last: number;
  records: number;
  bytes: number;
  sha256: string;
  closed_at: string;
}

export interface ArchiveIdentity {
  cluster: string;
  shard: string;
  baseSeq: number;
}

const pad = (n: number) => String(n).padStart(16, '0');
const segmentName = (first: number, last: number) => `${pad(first)}-${pad(last)}`;

export class SegmentWriter {
  private readonly dir: string;
  private fd: number | undefined;
  private first = 0;
  private records = 0;
  private openedAt = 0;
  /** Every change up to here is in the archive, durably. */
  lastSeq: number;

  constructor(
    backupDir: string,
    private readonly id: ArchiveIdentity,
    private readonly signer: { chain: readonly Uint8Array[]; key: webcrypto.CryptoKey },
    private readonly limits: { maxRecords: number; maxMs: number },
    private readonly now: () => number = Date.now,
  ) {
    this.dir = join(backupDir, FEED_DIR);
    this.lastSeq = id.baseSeq;
  }

  /** Finds where the archive ends: closed segments (signing any left unsigned), then the open one. */
  async open(): Promise<void> {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    for (const name of readdirSync(this.dir).filter((f) => SEGMENT.test(f)).sort()) {
      const [, , last] = SEGMENT.exec(name)!;
      const base = name.replace(/\.ndjson$/, '');
      if (!existsSync(join(this.dir, `${base}.cms`))) await this.sign(base);
      this.lastSeq = Number(last);
    }
    const open = join(this.dir, OPEN);
    if (!existsSync(open)) return;
    const text = readFileSync(open, 'utf8');
    const whole = text.slice(0, text.lastIndexOf('\n') + 1);
    if (whole.length !== text.length) truncateSync(open, Buffer.byteLength(whole));
    const lines = whole.split('\n').filter(Boolean).map((l) => JSON.parse(l) as FeedRecord);
    if (lines.length) {
      if (lines[0]!.sequence !== this.lastSeq + 1) throw new Error(`${open} starts at ${lines[0]!.sequence}, not at ${this.lastSeq + 1}`);
      this.first = lines[0]!.sequence;
      this.records = lines.length;
      this.lastSeq = lines[lines.length - 1]!.sequence;
      this.openedAt = this.now();
      this.fd = openSync(open, 'a', 0o600);
    }
  }

  /** Appends a page (durable when this resolves), closing the segment when it is full or old. */
  async append(changes: readonly FeedRecord[]): Promise<void> {
    if (changes.length) {
      let text = '';
      for (const c of changes) {
        if (c.sequence !== this.lastSeq + 1) throw new Error(`the feed skipped from ${this.lastSeq} to ${c.sequence}; the archive would have a gap`);
        text += JSON.stringify(c) + '\n';
        this.lastSeq = c.sequence;
      }
      if (this.fd === undefined) {
        this.fd = openSync(join(this.dir, OPEN), 'a', 0o600);
        this.first = changes[0]!.sequence;
        this.openedAt = this.now();
        this.records = 0;
      }
      writeSync(this.fd, text);
      fsyncSync(this.fd);
      this.records += changes.length;
    }
    if (this.fd !== undefined && (this.records >= this.limits.maxRecords || this.now() - this.openedAt >= this.limits.maxMs)) await this.close();
  }

  /** Closes the open segment, if any: renamed, then its manifest signed. */
  async close(): Promise<void> {
    if (this.fd === undefined) return;
    closeSync(this.fd);
    this.fd = undefined;
    const base = segmentName(this.first, this.lastSeq);
    renameSync(join(this.dir, OPEN), join(this.dir, `${base}.ndjson`));
    await this.sign(base);
  }

  private async sign(base: string): Promise<void> {
    const [, first, last] = SEGMENT.exec(`${base}.ndjson`)!;
    const d = await digestFile(join(this.dir, `${base}.ndjson`));
    const m: SegmentManifest = {
      format: SEGMENT_FORMAT, cluster: this.id.cluster, shard: this.id.shard, base_seq: this.id.baseSeq,
      first: Number(first), last: Number(last), records: Number(last) - Number(first) + 1, bytes: d.bytes, sha256: d.sha256,
      closed_at: new Date(this.now()).toISOString(),
    };
    const text = JSON.stringify(m, null, 2) + '\n';
    writeFileSync(join(this.dir, `${base}.json`), text, { mode: 0o600 });
    writeFileSync(join(this.dir, `${base}.cms`), await signManifest(text, this.signer.chain, this.signer.key), { mode: 0o600 });
  }
}

/**
 * The archive's signed segments, checked in order as they are reached — each manifest signed by
 * an operator with admin, of this cluster, shard and backup, continuing the previous one, its
 * data file of the size and SHA-256 recorded. Ends at the first segment not signed yet (the
 * open one is never used).
 */
export async function* signedSegments(backupDir: string, id: ArchiveIdentity, verifier: PeerVerifier): AsyncGenerator<{ file: string; manifest: SegmentManifest }> {
  const dir = join(backupDir, FEED_DIR);
  const names = existsSync(dir) ? readdirSync(dir).filter((f) => SEGMENT.test(f)).sort() : [];
  let last = id.baseSeq;
  for (const name of names) {
    const base = name.replace(/\.ndjson$/, '');
    if (!existsSync(join(dir, `${base}.json`)) || !existsSync(join(dir, `${base}.cms`))) return;
    const text = readFileSync(join(dir, `${base}.json`), 'utf8');
    await verifySigned(text, new Uint8Array(readFileSync(join(dir, `${base}.cms`))), verifier, `${FEED_DIR}/${base}.json`);
    const m = JSON.parse(text) as SegmentManifest;
    if (m.format !== SEGMENT_FORMAT || m.cluster !== id.cluster || m.shard !== id.shard || m.base_seq !== id.baseSeq) {
      throw new BackupRefused('BACKUP_MALFORMED', `${FEED_DIR}/${base}.json is a segment of ${m.shard} of ${m.cluster} after seq ${m.base_seq}, not of this backup`);
    }
    if (`${segmentName(m.first, m.last)}.ndjson` !== name || m.first !== last + 1) throw new BackupRefused('BACKUP_MALFORMED', `${FEED_DIR}/${name} does not continue the archive at ${last + 1}`);
    const d = await digestFile(join(dir, name));
    if (d.bytes !== m.bytes || d.sha256 !== m.sha256) throw new BackupRefused('BACKUP_FILE_DIGEST', `${FEED_DIR}/${name} is ${d.bytes} bytes with SHA-256 ${d.sha256}; its manifest records ${m.bytes} bytes with ${m.sha256}`);
    yield { file: join(dir, name), manifest: m };
    last = m.last;
  }
}

/**
 * The signed segments (signedSegments) up to the one holding `until`. Refuses with
 * RESTORE_UNTIL_UNREACHABLE when they end before it.
 */
export async function verifiedSegments(backupDir: string, id: ArchiveIdentity, verifier: PeerVerifier, until: number): Promise<string[]> {
  const out: string[] = [];
  let last = id.baseSeq;
  if (last < until) {
    for await (const s of signedSegments(backupDir, id, verifier)) {
      out.push(s.file);
      last = s.manifest.last;
      if (last >= until) break;
    }
  }
  if (last < until) throw new BackupRefused('RESTORE_UNTIL_UNREACHABLE', `the signed segments of the archived feed reach seq ${last}; ${until} was asked for`);
  return out;
}

/** The records of verified segments, in order, up to and including `until`. */
export async function* recordsUntil(segments: readonly string[], until: number): AsyncGenerator<FeedRecord> {
  for (const file of segments) {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (!line) continue;
      const r = JSON.parse(line) as FeedRecord;
      if (r.sequence > until) return;
      yield r;
    }
  }
}
