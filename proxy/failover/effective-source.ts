// The topology source the data path reads when failover is on: the signed topology with the
// acting primaries of failed-over groups (failover.ts) laid over it. Refusals, the signer and
// refreshes are the signed source's; a change is either (a new signed topology or a new acting
// primary), so listeners see every change of where a key's writes go.
import type { Topology } from '../../src/topology/topology.js';
import type { TopologySigner } from '../../src/topology/signed.js';
import type { ChangeListener, RejectListener, TopologySource } from '../control/topology-source.js';
import type { Failover } from './failover.js';
import type { FailoverMirror } from './failover-mirror.js';

export class EffectiveTopologySource implements TopologySource {
  constructor(
    private readonly signed: TopologySource,
    private readonly failover: Pick<Failover | FailoverMirror, 'current' | 'onChange' | 'refresh'>,
  ) {}

  current(): Topology {
    return this.failover.current();
  }

  onChange(listener: ChangeListener): void {
    this.failover.onChange((t, prev) => listener(t, prev));
  }

  onReject(listener: RejectListener): void {
    this.signed.onReject(listener);
  }

  async refresh(): Promise<void> {
    await this.signed.refresh();
    await this.failover.refresh();
  }

  signer(): TopologySigner | undefined {
    return this.signed.signer?.();
  }

  close(): void {
    this.signed.close();
  }
}
