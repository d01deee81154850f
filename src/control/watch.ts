// A watch on etcd that survives what etcd3 does not resume by itself. etcd3 reconnects a
// watch after a dropped connection, but a watch only reports what happens after it is
// (re)established, and one that etcd cancels (its start revision compacted away) is gone for
// good. So: `resync` runs on creation and on every reconnect, and a failed watch is created
// again after a second.
import type { IKeyValue, WatchBuilder, Watcher } from 'etcd3';
import type { Logger } from '../log.js';

export interface KeepWatchingOptions {
  /** A fresh builder for the watch (key or prefix). */
  build: () => WatchBuilder;
  onPut: (kv: IKeyValue) => void;
  /** Reads the watched keys again; must not throw. */
  resync: () => void;
  /** What is watched, for the logs ("topology", "CRL"). */
  what: string;
  log: Logger;
}

export class KeepWatching {
  private watcher: Watcher | undefined;
  private closed = false;

  constructor(private readonly o: KeepWatchingOptions) {
    this.start();
  }

  private start(): void {
    if (this.closed) return;
    this.o
      .build()
      .create()
      .then((w) => {
        if (this.closed) return void w.cancel().catch(() => undefined);
        this.watcher = w;
        w.on('put', (kv) => this.o.onPut(kv));
        w.on('error', (err) => {
          this.o.log.warn({ err: err.message }, `${this.o.what} watch failed; watching again`);
          if (this.watcher !== w) return;
          this.watcher = undefined;
          void w.cancel().catch(() => undefined);
          setTimeout(() => this.start(), 1000).unref();
        });
        w.on('connected', () => this.o.resync());
        this.o.resync();
      })
      .catch((e: Error) => {
        this.o.log.warn({ err: e.message }, `cannot watch the ${this.o.what} yet; retrying`);
        setTimeout(() => this.start(), 2000).unref();
      });
  }

  close(): void {
    this.closed = true;
    void this.watcher?.cancel().catch(() => undefined);
  }
}
