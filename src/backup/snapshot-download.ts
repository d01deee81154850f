// Reads a storage node's GET /snapshot (storage-node/snapshot-export.ts) into a backup's data
// file: the entity lines exactly as sent, their digests taken while writing, and the stream's
// own framing checked (a header first, an end line whose count matches), so a cut-off or
// garbled export is never mistaken for a backup.
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { BackupRefused } from './refusal.js';
import { DigestSink, type FileDigest } from './digests.js';

export const SNAPSHOT_FORMAT = 'themis-snapshot/1';

export interface Downloaded {
  seq: number;
  /** The commit time of the change at seq (ISO 8601), when the node's export said it. */
  committedAt?: string;
  trimmedThrough: number;
  keys: number;
  digest: FileDigest & { xxh64: string };
}

function failed(detail: string): BackupRefused {
  return new BackupRefused('BACKUP_SOURCE_FAILED', detail);
}

/** Streams `storageUrl`/snapshot into `file` (created; fsynced at the end). */
export async function downloadSnapshot(storageUrl: string, file: string, o: { register?: string } = {}): Promise<Downloaded> {
  const url = `${storageUrl.replace(/\/$/, '')}/snapshot${o.register ? `?register=${encodeURIComponent(o.register)}` : ''}`;
  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
    throw failed(`${url}: ${((e as Error).cause as Error | undefined)?.message ?? (e as Error).message}`);
  }
  if (res.status !== 200 || !res.body) throw failed(`${url} answered ${res.status}: ${(await res.text()).slice(0, 300)}`);
  const fd = openSync(file, 'wx', 0o600);
  const sink = new DigestSink();
  let header: { seq: number; committed_at?: unknown; trimmed_through: number } | undefined;
  let end: { keys: number } | undefined;
  let keys = 0;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const flush = () => {
    const b = Buffer.concat(pending);
    writeSync(fd, b);
    sink.update(b);
    pending = [];
    pendingBytes = 0;
  };
  try {
    const lines = createInterface({ input: Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), crlfDelay: Infinity });
    for await (const line of lines) {
      if (end) throw failed('the export sent lines after its end line');
      const v = JSON.parse(line) as Record<string, unknown>;
      if (!header) {
        if (v.format !== SNAPSHOT_FORMAT || !Number.isSafeInteger(v.seq)) throw failed(`the export does not start with a ${SNAPSHOT_FORMAT} header`);
        header = v as unknown as { seq: number; trimmed_through: number };
        continue;
      }
      if (v.end === true) {
        end = v as { keys: number };
        continue;
      }
      if (typeof v.key !== 'string' || typeof v.blob !== 'string') throw failed(`line ${keys + 2} of the export is not {key, blob}`);
      const b = Buffer.from(line + '\n', 'utf8');
      pending.push(b);
      pendingBytes += b.length;
      keys++;
      if (pendingBytes >= 1 << 20) flush();
    }
    flush();
    fsyncSync(fd);
  } catch (e) {
    if (e instanceof BackupRefused) throw e;
    throw failed(`reading the export from ${url}: ${(e as Error).message}`);
  } finally {
    closeSync(fd);
  }
  if (!header) throw failed('the export was empty');
  if (!end) throw failed(`the export was cut off after ${keys} entities (no end line)`);
  if (end.keys !== keys) throw failed(`the export's end line counts ${end.keys} entities; ${keys} arrived`);
  const committedAt = typeof header.committed_at === 'string' && Number.isFinite(Date.parse(header.committed_at)) ? { committedAt: header.committed_at } : {};
  return { seq: header.seq, ...committedAt, trimmedThrough: header.trimmed_through, keys, digest: sink.digest() };
}
