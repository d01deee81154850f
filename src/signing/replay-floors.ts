// Replay protection across restarts: each sender's high-water mark, persisted (fsync, rename)
// before any request above it is accepted, and reserved ahead so that steady traffic never waits.
// A restarted sidecar refuses every request of a sender at or below its mark (replay-guard.ts).
//
// Why marks and not nonces: fsyncing every nonce before acceptance would put a disk flush on
// every request. A mark is written only when a sender's newest timestamp comes within half of
// `reserveMs` of its reserved mark (twice per `reserveMs` per active sender, all senders in one
// write), and a request waits only when its timestamp is above the mark on disk. The price: after
// a restart, a sender's requests up to `reserveMs` newer than its last accepted one are refused
// too — which is why the mesh port opens only `quietMs()` after start (see proxy/sidecar.ts).
import { readFile, unlink, writeFile } from 'node:fs/promises';
import { writeFileDurably } from '../durable-write.js';
import { ThemisError } from '../errors.js';
import type { Clock } from '../runtime.js';

export interface ReplayFloorsOptions {
  file: string;
  clock: Clock;
  /** How far ahead of a sender's newest accepted timestamp its persisted mark is reserved. */
  reserveMs: number;
  /** The replay window: marks older than now − window can refuse nothing and are dropped. */
  windowMs: number;
  /** Told of each failed write (the requests that needed it are refused). */
  onWriteError?: (err: Error) => void;
}

/** What the file held at start. */
export interface LoadedFloors {
  /** Per sender: requests with a timestamp at or below it are refused. */
  floors: Map<string, number>;
  /** For every sender (the file was unreadable): refuse timestamps at or below it. */
  floorAll: number;
  /** When the last write was made (receiver's clock), if there was one. */
  writtenAt: number | undefined;
  /** Why the file could not be used, when it could not. */
  problem: string | undefined;
}

interface Deferred {
  promise: Promise<void>;
  resolve(): void;
  reject(e: Error): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A write nobody waits for (a renewal ahead of need) may fail without an unhandled rejection.
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

export class ReplayFloors {
  /** The marks on disk: a request at or below its sender's is covered. */
  private readonly durable = new Map<string, number>();
  /** Marks wanted and not yet in a write. */
  private readonly pending = new Map<string, number>();
  private writing: { marks: Map<string, number>; done: Promise<void> } | undefined;
  private queued: Deferred | undefined;

  constructor(
    private readonly o: ReplayFloorsOptions,
    readonly loaded: LoadedFloors,
  ) {
    // What the previous run reserved stays reserved: never write a lower mark over it.
    for (const [sender, mark] of loaded.floors) this.durable.set(sender, mark);
  }

  /**
   * Reads the marks the previous run left. A missing file means no previous run (or a first
   * start); an unreadable one fails closed: every sender's floor becomes now + window, the
   * newest timestamp the previous run could have accepted.
   */
  static async open(o: ReplayFloorsOptions): Promise<ReplayFloors> {
    let text: string;
    try {
      text = await readFile(o.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new ReplayFloors(o, { floors: new Map(), floorAll: -Infinity, writtenAt: undefined, problem: undefined });
      return new ReplayFloors(o, failClosed(o, `cannot read ${o.file}: ${(e as Error).message}`));
    }
    try {
      const doc = JSON.parse(text) as { version?: unknown; written_at?: unknown; floors?: unknown };
      if (doc.version !== 1 || typeof doc.written_at !== 'number' || doc.floors === null || typeof doc.floors !== 'object') throw new Error('not a version 1 replay state');
      const floors = new Map<string, number>();
      for (const [sender, mark] of Object.entries(doc.floors as Record<string, unknown>)) {
        if (typeof mark !== 'number' || !Number.isFinite(mark)) throw new Error(`bad mark for ${sender}`);
        floors.set(sender, mark);
      }
      return new ReplayFloors(o, { floors, floorAll: -Infinity, writtenAt: doc.written_at, problem: undefined });
    } catch (e) {
      return new ReplayFloors(o, failClosed(o, `${o.file} is not a replay state file (${(e as Error).message})`));
    }
  }

  /** Throws unless the state file's folder takes a write (a probe file, written and removed): a sidecar checks it at start. */
  async probe(): Promise<void> {
    const probe = `${this.o.file}.probe`;
    await writeFile(probe, '', { mode: 0o600 });
    await unlink(probe);
  }

  /**
   * How long to wait before serving signed requests, so that a sender whose clock runs at a
   * constant offset from ours is past its mark with its first request: until `reserveMs` after
   * the previous run's last write, never longer than `reserveMs` (our clock may have stepped back).
   */
  quietMs(): number {
    const w = this.loaded.writtenAt;
    if (w === undefined) return 0;
    return Math.max(0, Math.min(this.o.reserveMs, w + this.o.reserveMs + 1 - this.o.clock.now()));
  }

  /**
   * Makes sure `sender`'s persisted mark covers `timestamp` (call it for a request that passed
   * every other check). Returns nothing when it does already; otherwise a promise that settles
   * once a write covering it is on disk, or rejects with REPLAY_STATE_UNAVAILABLE.
   */
  cover(sender: string, timestamp: number): void | Promise<void> {
    const durable = this.durable.get(sender) ?? -Infinity;
    const planned = Math.max(durable, this.pending.get(sender) ?? -Infinity, this.writing?.marks.get(sender) ?? -Infinity);
    // Renew ahead of need: once the newest timestamp is within half the reserve of the mark.
    if (timestamp + this.o.reserveMs / 2 > planned) {
      this.pending.set(sender, timestamp + this.o.reserveMs);
      this.schedule();
    }
    if (timestamp <= durable) return;
    const inWrite = this.writing?.marks.get(sender);
    const wait = inWrite !== undefined && inWrite >= timestamp ? this.writing!.done : this.schedule();
    return wait.catch((e: Error) => {
      throw new ThemisError('REPLAY_STATE_UNAVAILABLE', `the replay guard cannot persist its high-water mark (${e.message}); retry shortly`);
    });
  }

  /** The write that will take the pending marks (started now, or after the one in progress). */
  private schedule(): Promise<void> {
    if (this.queued) return this.queued.promise;
    const d = (this.queued = deferred());
    if (!this.writing) this.startWrite();
    return d.promise;
  }

  private startWrite(): void {
    const d = this.queued!;
    this.queued = undefined;
    const now = this.o.clock.now();
    const marks = new Map<string, number>();
    for (const [sender, mark] of this.durable) marks.set(sender, mark);
    for (const [sender, mark] of this.pending) marks.set(sender, Math.max(mark, marks.get(sender) ?? -Infinity));
    this.pending.clear();
    // A mark below now − window refuses nothing the timestamp check does not refuse already.
    for (const [sender, mark] of marks) if (mark < now - this.o.windowMs) marks.delete(sender);
    // Durable before any request it covers is accepted: fsync, rename, folder fsync.
    const done = writeFileDurably(this.o.file, JSON.stringify({ version: 1, written_at: now, floors: Object.fromEntries(marks) }) + '\n');
    this.writing = { marks, done: d.promise };
    done.then(
      () => {
        this.durable.clear();
        for (const [sender, mark] of marks) this.durable.set(sender, mark);
        d.resolve();
      },
      (e: Error) => {
        // Wanted still: the next request of these senders tries again.
        for (const [sender, mark] of marks) if (mark > (this.durable.get(sender) ?? -Infinity)) this.pending.set(sender, Math.max(mark, this.pending.get(sender) ?? -Infinity));
        this.o.onWriteError?.(e);
        d.reject(e);
      },
    ).finally(() => {
      this.writing = undefined;
      if (this.queued) this.startWrite();
    });
  }

  /** Resolves when no write is in progress or queued (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.writing || this.queued) await (this.writing?.done ?? this.queued?.promise)?.catch(() => undefined);
  }
}

function failClosed(o: ReplayFloorsOptions, problem: string): LoadedFloors {
  return { floors: new Map(), floorAll: o.clock.now() + o.windowMs, writtenAt: undefined, problem };
}
