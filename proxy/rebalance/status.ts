// What a shard records of a rebalance operation, under rebalance-status/{op}/{shard} (one writer
// for the watcher, the copier and the cutover), and the token ranges of its moves.
import type { Etcd3 } from 'etcd3';
import { etcdKeys } from '../../src/control/etcd-keys.js';
import type { Logger } from '../../src/log.js';
import type { Move } from '../../src/rebalance/moves.js';
import { TokenRanges } from '../feed/token-ranges.js';

export class RebalanceStatus {
  constructor(
    private readonly etcd: Etcd3,
    private readonly cluster: string,
    private readonly self: string,
    private readonly log: Logger,
  ) {}

  /** Records `value` (with `updated_at`) as this shard's view of `opId`; never throws. */
  async write(opId: string, value: Record<string, unknown>): Promise<void> {
    // Key-safe: an attacker's key name must not write elsewhere.
    if (!/^[A-Za-z0-9._-]{1,128}$/.test(opId)) return;
    await this.etcd
      .put(etcdKeys(this.cluster).rebalanceStatus(opId, this.self))
      .value(JSON.stringify({ ...value, updated_at: new Date().toISOString() }))
      .catch((e: Error) => this.log.warn({ op: opId, err: e.message }, 'cannot record the rebalance status in etcd'));
  }
}

/** The moves' tokens as a TokenRanges (their owner field is not used). */
export function rangesOf(moves: readonly Move[]): TokenRanges {
  return new TokenRanges(moves.map((m) => ({ start: m.start, end: m.end, owner: m.from, replicas: [] })));
}
