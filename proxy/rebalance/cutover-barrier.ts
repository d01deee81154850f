// The cutover of an operation with several sources (adding a shard takes tokens from every
// other one): the next epoch may be published only while *every* source holds its writes to the
// tokens it gives away and has verified its targets. Each source says where it is under
// rebalance-cutover/{op}/{source}, on a lease of its own (a source that dies stops counting):
//   `caught-up`: its targets are close behind; it will hold once every source says so;
//   `held`: it holds its writes, its targets applied everything, the copies match.
// The publish is one etcd transaction: the topology is still the base epoch, no abort was
// written, and every source's key reads `held`. Whichever source finds the last `held` publishes.
// A source that gives up its hold first takes its `held` back, in a transaction that also
// requires the base epoch: if that fails, the next epoch is already in force and it must route
// by it before its writes go on.
import type { Etcd3, Lease } from 'etcd3';
import { etcdKeys } from '../../src/control/etcd-keys.js';
import type { Logger } from '../../src/log.js';
import { KeepWatching } from '../../src/control/watch.js';

export type BarrierState = 'caught-up' | 'held';

const LEASE_TTL_S = 3;

export class CutoverBarrier {
  private lease: Lease | undefined;
  private leaseId: Promise<string> | undefined;
  private readonly keys: ReturnType<typeof etcdKeys>;

  constructor(
    private readonly etcd: Etcd3,
    cluster: string,
    private readonly self: string,
    private readonly log: Logger,
  ) {
    this.keys = etcdKeys(cluster);
  }

  /** Removes what an earlier run of this sidecar left (before it serves: a stale `held` must not let a cutover through). */
  async forgetOwn(): Promise<void> {
    const all = await this.etcd.getAll().prefix(this.keys.rebalanceCutoverPrefix).keys();
    await Promise.all(all.filter((k) => k.endsWith(`/${this.self}`)).map((k) => this.etcd.delete().key(k)));
  }

  private id(): Promise<string> {
    if (!this.leaseId) {
      const lease = this.etcd.lease(LEASE_TTL_S, { autoKeepAlive: true });
      lease.on('lost', (e: Error) => {
        this.log.warn({ err: e.message }, 'cutover lease lost; a new one is taken at the next cutover');
        if (this.lease === lease) {
          this.lease = undefined;
          this.leaseId = undefined;
        }
      });
      this.lease = lease;
      this.leaseId = lease.grant().catch((e: Error) => {
        this.lease = undefined;
        this.leaseId = undefined;
        throw e;
      });
    }
    return this.leaseId;
  }

  async say(opId: string, state: BarrierState): Promise<void> {
    await this.etcd.put(this.keys.rebalanceCutover(opId, this.self)).value(state).lease(await this.id());
  }

  /** The sources that do not say `caught-up` or `held` (yet, or any more: a lost lease takes its keys). */
  async notCaughtUp(opId: string, sources: readonly string[]): Promise<string[]> {
    const all = await this.etcd.getAll().prefix(`${this.keys.rebalanceCutoverPrefix}${opId}/`).strings();
    return sources.filter((s) => all[this.keys.rebalanceCutover(opId, s)] === undefined);
  }

  /** Publishes `value` at the topology key if it still has mod revision `rev`, no abort exists, and every source is `held`. */
  async publish(opId: string, sources: readonly string[], rev: string, value: string): Promise<boolean> {
    let txn = this.etcd.if(this.keys.topology, 'Mod', '==', rev).and(this.keys.rebalanceAbort(opId), 'Version', '==', 0);
    for (const s of sources) txn = txn.and(this.keys.rebalanceCutover(opId, s), 'Value', '==', 'held');
    const r = await txn.then(this.etcd.put(this.keys.topology).value(value)).commit();
    return r.succeeded;
  }

  /** Takes `held` back if the topology still has mod revision `rev`; false: it changed (published). */
  async unhold(opId: string, rev: string): Promise<boolean> {
    const r = await this.etcd
      .if(this.keys.topology, 'Mod', '==', rev)
      .then(this.etcd.put(this.keys.rebalanceCutover(opId, this.self)).value('caught-up').lease(await this.id()))
      .commit();
    return r.succeeded;
  }

  /** Whether an abort was written for `opId` (signed or not: the cutover stays away from it either way). */
  async aborted(opId: string): Promise<boolean> {
    return (await this.etcd.get(this.keys.rebalanceAbort(opId)).string()) !== null;
  }

  /** Calls `fn` whenever another source of `opId` says where it is (the last to catch up sets the others going). */
  onOthers(opId: string, fn: () => void): { close(): void } {
    return new KeepWatching({
      build: () => this.etcd.watch().prefix(`${this.keys.rebalanceCutoverPrefix}${opId}/`),
      onPut: (kv) => {
        if (!kv.key.toString().endsWith(`/${this.self}`)) fn();
      },
      resync: () => undefined, // the cutover also tries every 200 ms
      what: 'other sources\' cutover',
      log: this.log,
    });
  }

  /** The operation is over for this source: its key goes. */
  async leave(opId: string): Promise<void> {
    await this.etcd.delete().key(this.keys.rebalanceCutover(opId, this.self)).catch(() => undefined);
  }

  close(): void {
    void this.lease?.revoke().catch(() => undefined);
    this.lease = undefined;
    this.leaseId = undefined;
  }
}
