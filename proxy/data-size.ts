// How many keys and blob bytes this shard's storage node holds, counted by a background scan (a
// page at a time) and reported with the shard's status in etcd: what `themis-admin shard
// add/remove` estimate a move's keys and bytes from. The scan runs again after 20 times as long
// as it took (it costs the node at most 5 % of one reader), and never more often than every
// `minIntervalMs`.
import type { NodeClient } from './feed/node-client.js';
import type { Logger } from '../src/log.js';

export interface DataSizeReport {
  keys: number;
  bytes: number;
  counted_at: string;
}

export class DataSize {
  private last: DataSizeReport | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly node: NodeClient,
    private readonly minIntervalMs: number,
    private readonly log: Logger,
  ) {}

  current(): DataSizeReport | undefined {
    return this.last;
  }

  start(): void {
    const run = async () => {
      const t0 = performance.now();
      try {
        this.last = await this.count();
      } catch (e) {
        this.log.debug({ err: (e as Error).message }, 'cannot count the storage node\'s keys now');
      }
      if (!this.stopped) {
        this.timer = setTimeout(() => void run(), Math.max(this.minIntervalMs, 20 * (performance.now() - t0)));
        this.timer.unref();
      }
    };
    this.timer = setTimeout(() => void run(), 1000);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private async count(): Promise<DataSizeReport> {
    let keys = 0;
    let bytes = 0;
    let after: string | null = null;
    do {
      if (this.stopped) break;
      const page = await this.node.scan(after, 1000);
      keys += page.entities.length;
      for (const e of page.entities) bytes += Buffer.byteLength(e.key) + Buffer.byteLength(e.blob);
      after = page.next;
    } while (after);
    return { keys, bytes, counted_at: new Date().toISOString() };
  }
}
