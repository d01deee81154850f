// GET /snapshot (our extension, node-local: not in the mesh's route table, so no sidecar forwards
// it): every entity of one LevelDB snapshot as NDJSON, with the snapshot's sequence number first
// and a count last, read while writes go on. `register=ID` registers a change-feed follower at
// that sequence number before the first entity is sent, so the log after it is kept for ID.
import type { ServerResponse } from 'node:http';
import type { Retention } from './retention.js';
import { rejectUnknownParams, singleParam, badParam } from './params.js';
import type { Answer } from './respond.js';
import { send } from './sse.js';
import type { Store } from './store.js';
import { splitEntityKey } from './layout.js';

export const SNAPSHOT_PATH = '/snapshot';
export const SNAPSHOT_FORMAT = 'themis-snapshot/1';
const FOLLOWER_ID = /^[A-Za-z0-9._:-]{1,200}$/;

export function parseSnapshotParams(q: URLSearchParams): { register?: string } {
  rejectUnknownParams(q, ['register']);
  const register = singleParam(q, 'register');
  if (register !== undefined && !FOLLOWER_ID.test(register)) throw badParam('register must be 1–200 characters of letters, digits, ".", "_", ":" or "-"');
  return register === undefined ? {} : { register };
}

/**
 * Streams the snapshot. Lines: `{"format","seq","committed_at"?,"trimmed_through"}` (committed_at:
 * the commit time of the change at seq, when the log still holds it), then one `{"key","blob"}`
 * per entity in key order, then `{"end":true,"keys":N}` — a reader without the last line has
 * a cut-off copy. A client that goes away stops the read.
 */
export async function exportSnapshot(store: Store, retention: Retention, res: ServerResponse, p: { register?: string }, signal: AbortSignal): Promise<Answer> {
  // Registered first at the head before the snapshot (≤ its sequence number), then exactly there:
  // the trimmer can never pass the snapshot in between.
  const early = p.register === undefined ? undefined : retention.register(p.register, store.lastSeq);
  early?.catch(() => undefined); // awaited below; a failure then is the request's
  const snap = await store.openSnapshot();
  try {
    if (p.register !== undefined) {
      await early;
      await retention.register(p.register, snap.seq);
    }
    res.writeHead(200, { 'content-type': 'application/x-ndjson; charset=utf-8', 'cache-control': 'no-store' });
    const committed = snap.committedAt === undefined ? {} : { committed_at: new Date(snap.committedAt).toISOString() };
    await send(res, JSON.stringify({ format: SNAPSHOT_FORMAT, seq: snap.seq, ...committed, trimmed_through: store.log.trimmedThrough }) + '\n', signal);
    let keys = 0;
    let chunk = '';
    for await (const [k, blob] of snap.entities()) {
      if (signal.aborted) break;
      const { table, uuid } = splitEntityKey(k);
      chunk += JSON.stringify({ key: `${table}:${uuid}`, blob }) + '\n';
      keys++;
      if (chunk.length >= 64 * 1024) {
        await send(res, chunk, signal);
        chunk = '';
      }
    }
    if (!signal.aborted) await send(res, chunk + JSON.stringify({ end: true, keys }) + '\n', signal);
  } finally {
    await snap.close();
    if (!res.destroyed) res.end();
  }
  return { streamed: true };
}
