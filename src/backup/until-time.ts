// `restore --until`: a sequence number, or an RFC 3339 time turned into one. The time is
// compared with the storage node's commit time of each archived change (`committed_at`, stamped
// by its writer, non-decreasing along the log): the restore point is the last change before the
// first one committed after the time — every change committed at or before it, none after.
import { readFileSync } from 'node:fs';
import { committedMs } from '../../storage-node/layout.js';
import type { PeerVerifier } from '../pki/verify.js';
import { signedSegments, type FeedRecord } from './feed-segments.js';
import type { Manifest } from './manifest.js';
import { BackupRefused } from './refusal.js';

export type UntilPoint = { seq: number } | { timeMs: number; text: string };

// RFC 3339 date-time: full date, "T" (or a space, or "t"), time with optional fraction, and an offset.
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|([+-])(\d{2}):(\d{2}))$/;

/** The instant an RFC 3339 date-time names (ms; finer digits cut off), or a reason it names none. */
export function parseRfc3339(text: string): number | string {
  const m = RFC3339.exec(text);
  if (!m) return 'not an RFC 3339 date-time with an offset (e.g. 2026-12-06T14:02:00Z or 2026-12-06T15:02:00+01:00)';
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  if (mo < 1 || mo > 12) return `month ${mo} does not exist`;
  const days = new Date(Date.UTC(y, mo, 0)).getUTCDate();
  if (d < 1 || d > days) return `day ${d} does not exist in ${m[1]}-${m[2]}`;
  if (h > 23 || mi > 59) return `${m[4]}:${m[5]} is not a time of day`;
  if (s > 59) return `second ${s} is not supported (a leap second: give :59.999)`;
  let offsetMin = 0;
  if (m[9]) {
    const oh = Number(m[10]);
    const om = Number(m[11]);
    if (oh > 23 || om > 59) return `offset ${m[9]}${m[10]}:${m[11]} is not an offset`;
    offsetMin = (m[9] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  const ms = m[7] ? Number(m[7].slice(1, 4).padEnd(3, '0')) : 0;
  const at = new Date(Date.UTC(2000, mo - 1, d, h, mi, s, ms));
  at.setUTCFullYear(y, mo - 1, d); // Date.UTC reads years 0–99 as 1900–1999
  return at.getTime() - offsetMin * 60_000;
}

/** `--until`'s value: digits are a sequence number, anything else must be an RFC 3339 time no later than now. */
export function parseUntil(text: string, nowMs: number): UntilPoint {
  if (/^\d{1,16}$/.test(text) && Number.isSafeInteger(Number(text))) return { seq: Number(text) };
  const t = parseRfc3339(text);
  if (typeof t === 'string') throw new BackupRefused('RESTORE_UNTIL_MALFORMED', `--until "${text.slice(0, 64)}" is neither a sequence number nor a time: ${t}`);
  if (t > nowMs) throw new BackupRefused('RESTORE_UNTIL_FUTURE', `--until ${text} is ${new Date(t).toISOString()}, later than now (${new Date(nowMs).toISOString()}): changes up to then may still come`);
  return { timeMs: t, text };
}

/** The newest change the backup's data may hold, in ms: its seq's commit time, else (older backups) when it was made. */
function backupTimeMs(m: Manifest): number {
  if (m.seq === 0) return -Infinity;
  return Date.parse(m.seq_committed_at ?? m.created_at);
}

/**
 * The sequence number to restore to for the time `timeMs`: the change before the first archived
 * one committed after it. Refuses a time before the backup's newest change
 * (RESTORE_UNTIL_BEFORE_BACKUP), records without a commit time before the point is found
 * (RESTORE_TIME_UNKNOWN), and a time the signed segments do not reach past
 * (RESTORE_UNTIL_UNREACHABLE: without a later change, changes up to the time may be missing).
 */
export async function seqAtTime(backupDir: string, m: Manifest, verifier: PeerVerifier, timeMs: number): Promise<{ seq: number; firstAfter: string }> {
  const base = backupTimeMs(m);
  if (timeMs < base) {
    const what = m.seq_committed_at ? `its newest change (seq ${m.seq}) was committed at ${m.seq_committed_at}` : `it was taken at ${m.created_at} (it records no commit time)`;
    throw new BackupRefused('RESTORE_UNTIL_BEFORE_BACKUP', `${new Date(timeMs).toISOString()} is before the backup: ${what}; restore an older backup`);
  }
  let last = m.seq;
  let lastAt = m.seq_committed_at ?? '(no time)';
  for await (const s of signedSegments(backupDir, { cluster: m.cluster, shard: m.shard, baseSeq: m.seq }, verifier)) {
    for (const line of readFileSync(s.file, 'utf8').split('\n')) {
      if (!line) continue;
      const r = JSON.parse(line) as FeedRecord;
      const at = committedMs(r);
      if (at === undefined) throw new BackupRefused('RESTORE_TIME_UNKNOWN', `archived change ${r.sequence} carries no commit time (written by a node before commit times were stamped); restore to a sequence number instead (--until SEQ)`);
      if (at > timeMs) return { seq: r.sequence - 1, firstAfter: `${r.sequence} at ${r.committed_at}` };
      last = r.sequence;
      lastAt = r.committed_at!;
    }
  }
  throw new BackupRefused('RESTORE_UNTIL_UNREACHABLE', `the signed segments of the archived feed end at seq ${last} (committed at ${lastAt}) with no change after ${new Date(timeMs).toISOString()}: later changes up to then may not be archived yet; wait for the next segment, or restore to seq ${last}`);
}
