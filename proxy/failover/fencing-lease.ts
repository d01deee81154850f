// The lease a sidecar holds its acting-primary keys on, with the one fact fencing needs: until
// when, by this process's own monotonic clock, etcd certainly still holds the lease. Each
// keep-alive that etcd confirms extends that to (the moment it was *sent* + the TTL etcd
// granted − a margin for clock-rate drift): etcd can only expire the lease later than that.
// A primary acknowledges a write only before this deadline, checked after the confirmations
// arrived, so a primary that was paused past its lease (SIGSTOP, a long GC) cannot get a single
// write acknowledged once a new term may exist.
import type { Etcd3, Lease } from 'etcd3';

export interface FencingLeaseOptions {
  ttlSeconds: number;
  /** Monotonic milliseconds (performance.now in production; a fake in unit tests). */
  monotonic: () => number;
  /** Told once when etcd says the lease is gone or it could not be kept alive. */
  onLost: (why: string) => void;
}

/** The deadline book-keeping, apart from etcd so that it can be unit-tested. */
export class LeaseDeadline {
  private validUntil = -Infinity;
  private readonly sent: number[] = [];

  constructor(
    private readonly ttlMs: number,
    private readonly monotonic: () => number,
  ) {}

  /** Margin kept off every deadline: 10 % of the TTL plus 50 ms. */
  get marginMs(): number {
    return this.ttlMs / 10 + 50;
  }

  granted(askedAt: number): void {
    this.validUntil = Math.max(this.validUntil, askedAt + this.ttlMs - this.marginMs);
  }

  keepaliveSent(): void {
    this.sent.push(this.monotonic());
  }

  keepaliveConfirmed(ttlSeconds: number): void {
    const at = this.sent.shift();
    if (at === undefined || ttlSeconds <= 0) return;
    this.validUntil = Math.max(this.validUntil, at + ttlSeconds * 1000 - this.marginMs);
  }

  keepaliveFailed(): void {
    this.sent.length = 0;
  }

  lost(): void {
    this.validUntil = -Infinity;
    this.sent.length = 0;
  }

  alive(): boolean {
    return this.monotonic() < this.validUntil;
  }

  remainingMs(): number {
    return Math.max(0, this.validUntil - this.monotonic());
  }
}

export class FencingLease {
  readonly deadline: LeaseDeadline;
  private readonly lease: Lease;
  private gone = false;
  id = '';

  private constructor(etcd: Etcd3, private readonly o: FencingLeaseOptions) {
    this.deadline = new LeaseDeadline(o.ttlSeconds * 1000, o.monotonic);
    this.lease = etcd.lease(o.ttlSeconds, { autoKeepAlive: true });
    this.lease.on('keepaliveFired', () => this.deadline.keepaliveSent());
    this.lease.on('keepaliveSucceeded', (res) => this.deadline.keepaliveConfirmed(Number(res.TTL)));
    this.lease.on('keepaliveFailed', () => this.deadline.keepaliveFailed());
    this.lease.on('lost', (e) => this.lose(`lease lost: ${e.message}`));
  }

  /** Grants a lease; rejects when etcd does not grant one. */
  static async grant(etcd: Etcd3, o: FencingLeaseOptions): Promise<FencingLease> {
    const l = new FencingLease(etcd, o);
    const askedAt = o.monotonic();
    l.id = await l.lease.grant();
    l.deadline.granted(askedAt);
    return l;
  }

  alive(): boolean {
    return !this.gone && this.deadline.alive();
  }

  private lose(why: string): void {
    if (this.gone) return;
    this.gone = true;
    this.deadline.lost();
    this.o.onLost(why);
  }

  /** Gives the lease up: every key on it disappears now (resignation). */
  async revoke(): Promise<void> {
    this.gone = true;
    this.deadline.lost();
    await this.lease.revoke().catch(() => undefined);
  }

  close(): void {
    this.gone = true;
    this.deadline.lost();
    this.lease.release();
  }
}
