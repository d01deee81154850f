// What a storage node held at a sequence number, derived from its own change feed (the log it
// acknowledged writes into): the reference restores and backups are judged against.
import { call } from './storage-process.js';

export interface FeedRecord {
  operation: 'PUT' | 'DELETE';
  key: string;
  sequence: number;
  new_val: string | null;
}

/** Every record of the node's change feed from `fromSeq` on, page by page. */
export async function readFeed(url: string, fromSeq = 0): Promise<FeedRecord[]> {
  const out: FeedRecord[] = [];
  let from = fromSeq;
  for (;;) {
    const r = await call(url, 'GET', `/changefeed?from_seq=${from}&limit=1000`);
    if (r.status !== 200) throw new Error(`changefeed answered ${r.status}: ${r.text.slice(0, 200)}`);
    const changes = r.body.changes as FeedRecord[];
    if (changes.length === 0) return out;
    out.push(...changes);
    from = r.body.last_seq as number;
  }
}

/** Key → blob after applying every record with sequence ≤ `seq`. */
export function stateAt(records: readonly FeedRecord[], seq: number): Map<string, string> {
  const m = new Map<string, string>();
  for (const c of records) {
    if (c.sequence > seq) break;
    if (c.operation === 'DELETE' || c.new_val === null) m.delete(c.key);
    else m.set(c.key, c.new_val);
  }
  return m;
}

/** Key → blob of everything the node holds now (a full scan). */
export async function scanAll(url: string): Promise<Map<string, string>> {
  const m = new Map<string, string>();
  let after: string | null = null;
  for (;;) {
    const r = await call(url, 'GET', `/entities?limit=1000${after ? `&after=${encodeURIComponent(after)}` : ''}`);
    if (r.status !== 200) throw new Error(`scan answered ${r.status}: ${r.text.slice(0, 200)}`);
    for (const e of r.body.entities as { key: string; blob: string }[]) m.set(e.key, e.blob);
    after = r.body.next as string | null;
    if (!after) return m;
  }
}

/** The keys whose values differ between two states (present in one only, or different). */
export function differences(a: Map<string, string>, b: Map<string, string>): string[] {
  const keys = new Set([...a.keys(), ...b.keys()]);
  return [...keys].filter((k) => a.get(k) !== b.get(k));
}
