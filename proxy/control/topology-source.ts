// Where the sidecar's topology comes from. The request path only calls current(); a
// source swaps in a newer, validated topology atomically. FileTopologySource reads a
// document written by `themis-admin topology plan --out`; the etcd source (signed) slots in
// behind the same interface.
import { readFileSync, watchFile, unwatchFile } from 'node:fs';
import { parseTopology } from '../../src/topology/document.js';
import { ConfigError } from '../../src/config/validate.js';
import type { Topology } from '../../src/topology/topology.js';
import type { Logger } from '../../src/log.js';
import type { TopologySigner } from '../../src/topology/signed.js';

/** A change or refusal, with the signer when the source is signed (audited with it). */
export type ChangeListener = (t: Topology, previous: Topology, signer?: TopologySigner) => void;
export type RejectListener = (reason: string, epoch?: number, signer?: TopologySigner) => void;

export interface TopologySource {
  current(): Topology;
  /** Called with the reason when a newer-looking topology is refused. */
  onReject(listener: RejectListener): void;
  /** Re-reads the source now (e.g. after a peer answered 421); resolves when done. */
  refresh(): Promise<void>;
  onChange(listener: ChangeListener): void;
  /**
   * A value this process just wrote to the topology key (a cutover's publish): verified and
   * applied like one the watch brings, without waiting for the watch. Signed sources only.
   */
  offer?(raw: string): Promise<void>;
  /** Verifies ahead a value that may be offered soon, so that the offer applies it without verifying again. */
  prepare?(raw: string): Promise<void>;
  /** Who signed the topology in force, for a signed source. */
  signer?(): TopologySigner | undefined;
  close(): void;
}

export class FileTopologySource implements TopologySource {
  private topology: Topology;
  private readonly listeners: ((t: Topology, previous: Topology) => void)[] = [];
  private refreshing: Promise<void> | undefined;
  private readonly rejectListeners: ((reason: string, epoch?: number) => void)[] = [];
  /** The last refused file content, so a file that stays bad is reported once, not every poll. */
  private lastRefused: string | undefined;

  /**
   * Loads the file now; throws (ConfigError naming topology.file) if it is unusable at start-up,
   * including a topology of another cluster than `cluster`, which is refused on reload too.
   */
  constructor(
    private readonly file: string,
    private readonly log: Logger,
    pollMs = 1000,
    private readonly cluster?: string,
  ) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new ConfigError('topology.file', `cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'}); write one with themis-admin topology plan --out`);
    }
    try {
      this.topology = parseTopology(text);
    } catch (e) {
      throw new ConfigError('topology.file', `${file}: ${(e as Error).message}`);
    }
    if (cluster !== undefined && this.topology.cluster !== cluster) {
      throw new ConfigError('topology.file', `${file} is a topology of cluster "${this.topology.cluster}", but this sidecar is in cluster "${cluster}" (config field cluster); plan it with --cluster ${cluster}`);
    }
    watchFile(file, { interval: pollMs, persistent: false }, () => void this.refresh());
  }

  current(): Topology {
    return this.topology;
  }

  /** Concurrent callers (a burst of 421s after an epoch change) share one read. */
  refresh(): Promise<void> {
    this.refreshing ??= Promise.resolve()
      .then(() => this.reload())
      .finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private reject(text: string, reason: string, epoch?: number): void {
    if (text === this.lastRefused) return;
    this.lastRefused = text;
    this.log.warn({ file: this.file, reason, epoch, current: this.topology.epoch }, 'topology refused; keeping the current one');
    for (const l of this.rejectListeners) l(reason, epoch);
  }

  private reload(): void {
    let next: Topology;
    let text = '';
    try {
      text = readFileSync(this.file, 'utf8');
      next = parseTopology(text);
    } catch (e) {
      this.reject(text, (e as Error).message);
      return;
    }
    const prev = this.topology;
    if (this.cluster !== undefined && next.cluster !== this.cluster) {
      this.reject(text, `a topology of cluster "${next.cluster}", not "${this.cluster}"`, next.epoch);
      return;
    }
    if (next.epoch <= prev.epoch) {
      if (next.epoch < prev.epoch) this.reject(text, `epoch ${next.epoch} is older than the current ${prev.epoch}`, next.epoch);
      return;
    }
    this.lastRefused = undefined;
    this.topology = next;
    this.log.info({ epoch: next.epoch, previous: prev.epoch, ranges: next.ranges.length }, 'topology applied');
    for (const l of this.listeners) l(next, prev);
  }

  onChange(listener: (t: Topology, previous: Topology) => void): void {
    this.listeners.push(listener);
  }

  onReject(listener: (reason: string, epoch?: number) => void): void {
    this.rejectListeners.push(listener);
  }

  close(): void {
    unwatchFile(this.file);
  }
}
