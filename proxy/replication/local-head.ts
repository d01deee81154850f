// The newest sequence number of this shard's storage node, read after a write has completed:
// every write acknowledged before the read is at or below it. Concurrent writers share reads
// (a write joins the next read that starts after it completed), so a burst costs a few.
import type { NodeClient } from '../feed/node-client.js';

export class LocalHead {
  private next: Promise<number> | undefined;
  private running: Promise<number> | undefined;
  /** The last head read; -1 before the first. */
  latest = -1;
  private readonly lowered: ((head: number) => void)[] = [];

  constructor(private readonly node: NodeClient) {}

  /** Called when a read finds the head lower than before: the node lost or replaced its history. */
  onLowered(l: (head: number) => void): void {
    this.lowered.push(l);
  }

  /** A head read that starts after this call: at or above every write completed before it. */
  after(): Promise<number> {
    if (!this.running) return (this.running = this.read());
    this.next ??= this.running.catch(() => undefined).then(() => {
      this.next = undefined;
      return (this.running = this.read());
    });
    return this.next;
  }

  private read(): Promise<number> {
    const p = this.node.head().then((h) => {
      const before = this.latest;
      this.latest = h;
      if (h < before) for (const l of this.lowered) l(h);
      return h;
    });
    void p.finally(() => {
      if (this.running === p) this.running = undefined;
    }).catch(() => undefined);
    return p;
  }
}
