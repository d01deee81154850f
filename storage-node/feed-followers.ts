// POST /changefeed/followers: a follower (replica, range move, backup) registers or refreshes
// the checkpoint it still needs (`seq: null` unregisters); GET lists them with their lag.
import { ThemisError } from '../src/errors.js';
import type { Answer } from './respond.js';
import type { Retention } from './retention.js';

const ID = /^[A-Za-z0-9._:-]{1,200}$/;

function bad(message: string): ThemisError {
  return new ThemisError('INVALID_BODY', message);
}

export async function registerFollower(retention: Retention, body: Record<string, unknown>): Promise<Answer> {
  for (const k of Object.keys(body)) if (k !== 'id' && k !== 'seq') throw bad(`unknown field "${k.slice(0, 64)}"; known fields are id, seq`);
  const { id, seq } = body;
  if (typeof id !== 'string' || !ID.test(id)) throw bad('id must be 1–200 characters of letters, digits, ".", "_", ":" or "-"');
  if (seq === null) return { status: 200, body: { id, removed: await retention.unregister(id) } };
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) throw bad('seq must be an integer ≥ 0 (the sequence number whose successors the follower still needs), or null to unregister');
  const e = await retention.register(id, seq);
  const report = await retention.report();
  return { status: 200, body: { id, seq, expires_at: new Date(e.expiresAt).toISOString(), oldest_seq: report.oldest_seq, last_seq: report.last_seq } };
}

export async function listFollowers(retention: Retention): Promise<Answer> {
  return { status: 200, body: await retention.report() };
}
