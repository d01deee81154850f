// A storage node in memory, as an Upstream answering the calls a change-feed follower makes
// (proxy/feed/node-client.ts): its change feed, scans, writes and follower registrations. Tests
// of the follower's and the replica manager's logic hold a feed page or a write on its way with
// `holdFeed` / `holdWrite`, to put them in the order a race would.
import { Readable } from 'node:stream';
import type { Change } from '../../proxy/feed/node-client.js';
import type { Upstream, UpstreamRequest, UpstreamResponse } from '../../proxy/upstream.js';

/** The node's scan order: `table!uuid` compared as strings. */
const order = (key: string) => key.replace(':', '!');

export class MemoryNode implements Upstream {
  readonly entities = new Map<string, string>();
  readonly log: Change[] = [];
  /** Registrations at this node by name (null: removed), in the order made. */
  readonly registrations: { id: string; seq: number | null }[] = [];
  /** Before a change-feed page is read (not a head read): resolve it to let the page go. */
  holdFeed: ((fromSeq: number) => Promise<void>) | undefined;
  /** Before a write lands: resolve it to let the write go. */
  holdWrite: ((key: string, blob: string | null) => Promise<void>) | undefined;

  /** Long polls waiting for a change. */
  private readonly waiting = new Set<() => void>();

  constructor(readonly name: string) {}

  /** A write made on this node directly (a client's write to a primary). */
  write(key: string, blob: string | null): void {
    if (blob === null) this.entities.delete(key);
    else this.entities.set(key, blob);
    this.log.push({ operation: blob === null ? 'DELETE' : 'PUT', key, sequence: this.log.length + 1, new_val: blob });
    for (const w of this.waiting) w();
  }

  /** Until a change after `from` or `ms` (a long poll). */
  private async changeAfter(from: number, ms: number): Promise<void> {
    if (this.log.length > from || ms <= 0) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.waiting.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.waiting.add(done);
    });
  }

  async request(req: UpstreamRequest): Promise<UpstreamResponse> {
    const url = new URL(req.path, 'http://node');
    const body = Buffer.isBuffer(req.body) ? (JSON.parse(req.body.toString('utf8')) as Record<string, unknown>) : {};
    if (req.method === 'GET' && url.pathname === '/changefeed') {
      const from = Number(url.searchParams.get('from_seq'));
      const limit = Number(url.searchParams.get('limit'));
      if (from <= this.log.length) {
        await this.changeAfter(from, Number(url.searchParams.get('long_poll_ms')));
        await this.holdFeed?.(from);
      }
      const changes = this.log.filter((c) => c.sequence > from).slice(0, limit);
      return answer(200, { changes, last_seq: changes.length ? changes[changes.length - 1]!.sequence : Math.min(from, this.log.length), latest_seq: this.log.length });
    }
    if (req.method === 'POST' && url.pathname === '/changefeed/followers') {
      this.registrations.push({ id: body.id as string, seq: body.seq as number | null });
      return answer(200, {});
    }
    if (req.method === 'GET' && url.pathname === '/entities') {
      const after = url.searchParams.get('after');
      const limit = Number(url.searchParams.get('limit'));
      const keys = [...this.entities.keys()].sort((a, b) => (order(a) < order(b) ? -1 : 1)).filter((k) => after === null || order(k) > order(after));
      const page = keys.slice(0, limit);
      return answer(200, { entities: page.map((key) => ({ key, blob: this.entities.get(key) })), next: keys.length > limit ? page[page.length - 1] : null });
    }
    const key = decodeURIComponent(url.pathname.slice('/entities/'.length));
    if (req.method === 'PUT') {
      await this.holdWrite?.(key, body.blob as string);
      this.write(key, body.blob as string);
      return answer(201, { key });
    }
    if (req.method === 'DELETE') {
      await this.holdWrite?.(key, null);
      this.write(key, null);
      return answer(200, {});
    }
    return answer(404, { code: 'NOT_FOUND' });
  }
}

function answer(status: number, json: unknown): UpstreamResponse {
  return { status, headers: {}, body: Readable.from([Buffer.from(JSON.stringify(json))]), complete: () => true };
}

/** A promise and the function that resolves it: a gate a test opens. */
export function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}
