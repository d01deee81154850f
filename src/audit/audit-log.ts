// The audit trail: one JSON line per security event, each carrying the SHA-256 of the line
// before it (a hash chain, so an edited, removed or reordered line is detectable). Appends
// are synchronous and ordered; the file is fsynced on a bounded interval. High-rate success
// events (SIGNATURE_VERIFIED) are aggregated: one line per peer per interval with a count.
import { closeSync, fsyncSync, openSync, readSync, fstatSync, renameSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import type { Clock } from '../runtime.js';

export const AUDIT_EVENTS = [
  'CERTIFICATE_ISSUED',
  'CERTIFICATE_REVOKED',
  'CERTIFICATE_RENEWAL_REFUSED',
  'MTLS_CONNECTION_SUCCESS',
  'MTLS_CONNECTION_FAILED',
  'SIGNATURE_VERIFIED',
  'SIGNATURE_FAILED',
  'CAPABILITY_DENIED',
  'REBALANCE_INITIATED',
  'REBALANCE_REJECTED',
  'REBALANCE_COMPLETED',
  'REBALANCE_ABORTED',
  'REBALANCE_ABORT_REJECTED',
  'REPLAY_REJECTED',
  'TOPOLOGY_APPLIED',
  'TOPOLOGY_REJECTED',
  'CRL_APPLIED',
  'CRL_REJECTED',
  'FAILOVER_STARTED',
  'FAILOVER_COMPLETED',
  'FAILOVER_STATE_ROLLED_BACK',
  'REPLICA_CAUGHT_UP',
] as const;
export type AuditEvent = (typeof AUDIT_EVENTS)[number];

export interface AuditPeer {
  shardId?: string;
  cn?: string;
  serial?: string;
  /** The issuing CA's subject: which CA vouched for (or, when refused, is claimed by) the peer. */
  issuer?: string;
  address?: string;
}

export interface AuditEntry {
  event: AuditEvent;
  peer?: AuditPeer;
  reason?: string;
  [detail: string]: unknown;
}

export interface AuditSink {
  record(entry: AuditEntry): void;
  /**
   * For events unauthenticated callers can cause at will (refused handshakes): the first
   * occurrence per `key` in an interval is written at once, repeats are counted into one
   * aggregated line, so a flood cannot fill the disk.
   */
  recordLimited(key: string, entry: AuditEntry): void;
  /** Counts a high-rate success event; written as one aggregated line per key per interval. */
  aggregate(event: AuditEvent, peer: AuditPeer): void;
  close(): void;
}

export const GENESIS = '0'.repeat(64);

export function lineHash(line: string): string {
  return createHash('sha256').update(line).digest('hex');
}

/** Hash of the last line of an existing file, or the genesis hash for a new/empty one. */
function lastHash(fd: number): string {
  const size = fstatSync(fd).size;
  if (size === 0) return GENESIS;
  const len = Math.min(size, 1 << 20);
  const buf = Buffer.alloc(len);
  readSync(fd, buf, 0, len, size - len);
  const text = buf.toString('utf8').replace(/\n$/, '');
  return lineHash(text.slice(text.lastIndexOf('\n') + 1));
}

export interface AuditLogOptions {
  file: string;
  /** This process's identity, written on every line (e.g. the shard id). */
  source: string;
  clock: Clock;
  fsyncIntervalMs?: number;
  aggregateIntervalMs?: number;
  onEvent?: (event: AuditEvent, count: number) => void;
  /** Called when the file cannot be written (disk full, I/O error); the process keeps serving. */
  onWriteError?: (err: Error) => void;
  /**
   * Rotate when the file reaches this size: it is renamed to FILE.<time> and a new FILE
   * continues the chain (its first line's prev is the old file's last hash). Default 64 MiB.
   */
  maxBytes?: number;
}

export class AuditLog implements AuditSink {
  private fd: number;
  private size: number;
  private prev: string;
  private dirty = false;
  private rotations = 0;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly pending = new Map<string, { entry: AuditEntry; count: number }>();
  /** Keys of limited events already written in full this interval. */
  private readonly seen = new Set<string>();

  constructor(private readonly opts: AuditLogOptions) {
    this.fd = openSync(opts.file, 'a+', 0o600);
    this.size = fstatSync(this.fd).size;
    this.prev = lastHash(this.fd);
    const every = (ms: number, fn: () => void) => {
      const t = setInterval(fn, ms);
      t.unref();
      this.timers.push(t);
    };
    every(opts.fsyncIntervalMs ?? 1000, () => this.sync());
    every(opts.aggregateIntervalMs ?? 10_000, () => this.flushAggregates());
  }

  record(entry: AuditEntry): void {
    this.append(entry);
    this.opts.onEvent?.(entry.event, 1);
  }

  recordLimited(key: string, entry: AuditEntry): void {
    if (!this.seen.has(key)) {
      this.seen.add(key);
      this.record(entry);
      return;
    }
    const p = this.pending.get(key);
    if (p) p.count++;
    else this.pending.set(key, { entry, count: 1 });
  }

  private append(entry: AuditEntry): void {
    const { event, peer, reason, ...detail } = entry;
    const line = JSON.stringify({
      time: new Date(this.opts.clock.now()).toISOString(),
      event,
      source: this.opts.source,
      ...(peer ? { peer } : {}),
      ...(reason !== undefined ? { reason } : {}),
      ...detail,
      prev: this.prev,
    });
    try {
      this.size += writeSync(this.fd, line + '\n');
    } catch (err) {
      // The chain continues from the last line actually written.
      this.opts.onWriteError?.(err as Error);
      return;
    }
    this.prev = lineHash(line);
    this.dirty = true;
    if (this.size >= (this.opts.maxBytes ?? 64 * 1024 * 1024)) this.rotate();
  }

  /** FILE → FILE.<time>; a new FILE carries the chain on from the old one's last hash. */
  private rotate(): void {
    try {
      this.dirty = true;
      this.sync();
      closeSync(this.fd);
      const stamp = new Date(this.opts.clock.now()).toISOString().replace(/[:.]/g, '');
      renameSync(this.opts.file, `${this.opts.file}.${stamp}-${++this.rotations}`);
      this.fd = openSync(this.opts.file, 'a+', 0o600);
      this.size = 0;
    } catch (err) {
      this.opts.onWriteError?.(err as Error);
    }
  }

  aggregate(event: AuditEvent, peer: AuditPeer): void {
    const key = `${event}\0${peer.shardId ?? peer.cn ?? ''}\0${peer.serial ?? ''}`;
    const p = this.pending.get(key);
    if (p) p.count++;
    else this.pending.set(key, { entry: { event, peer }, count: 1 });
  }

  flushAggregates(): void {
    for (const { entry, count } of this.pending.values()) {
      this.append({ ...entry, count, aggregated: true });
      this.opts.onEvent?.(entry.event, count);
    }
    this.pending.clear();
    this.seen.clear();
  }

  sync(): void {
    if (!this.dirty) return;
    this.dirty = false;
    try {
      fsyncSync(this.fd);
    } catch (err) {
      this.opts.onWriteError?.(err as Error);
    }
  }

  close(): void {
    for (const t of this.timers) clearInterval(t);
    this.flushAggregates();
    this.sync();
    closeSync(this.fd);
  }
}

/** An audit sink that only counts; for tools and tests that keep no file. */
export class NullAudit implements AuditSink {
  readonly events: AuditEntry[] = [];
  record(entry: AuditEntry): void {
    this.events.push(entry);
  }
  aggregate(event: AuditEvent, peer: AuditPeer): void {
    this.events.push({ event, peer, aggregated: true });
  }
  recordLimited(_key: string, entry: AuditEntry): void {
    this.events.push(entry);
  }
  close(): void {}
}
