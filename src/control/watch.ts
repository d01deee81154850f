// A watch on etcd that survives what etcd3 does not resume by itself. etcd3 reconnects a
// watch after a dropped connection, but a watch only reports what happens after it is
// (re)established, and one that etcd cancels (its start revision compacted away) is gone for
// good. So: `resync` runs on creation and on every reconnect, and a failed watch is created
// again after a second.
//
// etcd that went back (restored from a snapshot, `etcdctl snapshot restore`): etcd3 resumes a
// watch at the revision after the last one it saw, and etcd accepts a future start revision
// and waits for it — so a watch resumed on a restored etcd, whose revisions start again below
// that, reports nothing until etcd's revision passes the old one. The create answer's header
// tells: its revision (etcd's current one) is below one already seen, or its cluster ID is
// another. Then the watch is dropped and made again from etcd's current revision, and the keys
// are read again (resync). What the keys then hold is judged as any value is (an older
// topology epoch or CRL number stays refused); only the delivery is repaired here. (A member
// of a multi-member etcd that lags the one seen before may also answer lower: the watch is then
// made again needlessly, which costs one read and loses nothing.)
import type { IKeyValue, IResponseHeader, WatchBuilder, Watcher } from 'etcd3';
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
  /** The highest etcd revision a response header of this watch showed, and the cluster that sent it. */
  private seen: { revision: bigint; cluster: string | undefined } | undefined;
  /** Watches made again because etcd went back (for tests and logs). */
  rewatches = 0;

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
        // create() resolves on the create answer, whose header revision etcd3 keeps (+1) as the resume point.
        this.note(BigInt(w.lastRevision() ?? 1) - 1n, undefined);
        w.on('put', (kv) => this.o.onPut(kv));
        w.on('data', (res: { header: IResponseHeader }) => this.note(BigInt(res.header.revision), res.header.cluster_id));
        w.on('error', (err) => {
          this.o.log.warn({ err: err.message }, `${this.o.what} watch failed; watching again`);
          if (this.watcher !== w) return;
          this.watcher = undefined;
          void w.cancel().catch(() => undefined);
          setTimeout(() => this.start(), 1000).unref();
        });
        w.on('connected', (res: { header: IResponseHeader }) => {
          if (this.watcher === w && this.wentBack(res.header)) return this.rewatch(w, res.header);
          this.o.resync();
        });
        this.o.resync();
      })
      .catch((e: Error) => {
        this.o.log.warn({ err: e.message }, `cannot watch the ${this.o.what} yet; retrying`);
        setTimeout(() => this.start(), 2000).unref();
      });
  }

  private note(revision: bigint, cluster: string | undefined): void {
    if (!this.seen || revision > this.seen.revision) this.seen = { revision, cluster: cluster ?? this.seen?.cluster };
    else if (cluster && !this.seen.cluster) this.seen.cluster = cluster;
  }

  /** Whether a reconnected watch's etcd is behind what this watch saw, or is another cluster. */
  private wentBack(h: IResponseHeader): boolean {
    const s = this.seen;
    if (!s) return false;
    const revision = BigInt(h.revision);
    return revision < s.revision || (!!s.cluster && !!h.cluster_id && h.cluster_id !== s.cluster);
  }

  private rewatch(w: Watcher, h: IResponseHeader): void {
    const s = this.seen!;
    this.o.log.warn(
      { revision: String(h.revision), seen: String(s.revision), cluster: h.cluster_id, seen_cluster: s.cluster },
      `etcd went back (restored from a snapshot, or another cluster): watching the ${this.o.what} again from its current revision and reading it again; older values stay refused`,
    );
    this.rewatches++;
    this.watcher = undefined;
    this.seen = undefined;
    void w.cancel().catch(() => undefined);
    this.start();
  }

  close(): void {
    this.closed = true;
    void this.watcher?.cancel().catch(() => undefined);
  }
}
