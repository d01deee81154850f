// A worker's signed topology, as its control process holds it (docs/sidecar.md "Workers"): the
// control process follows etcd, verifies every value (operator chain, CRLs, certified ranges,
// a newer epoch) and passes each one it applies on over IPC; a worker holds no etcd client.
// Routing is the same: current() is swapped atomically, and a worker that needs a newer epoch
// (a peer's 421, a cutover's release) asks the control process to read etcd again.
import { parseTopology } from '../../src/topology/document.js';
import type { Topology } from '../../src/topology/topology.js';
import type { TopologySigner } from '../../src/topology/signed.js';
import type { ChangeListener, RejectListener, TopologySource } from '../control/topology-source.js';
import type { WorkerDocs } from './messages.js';

type Doc = NonNullable<WorkerDocs['topology']>;

export class MirroredTopology implements TopologySource {
  private topology: Topology;
  private currentSigner: TopologySigner | undefined;
  private readonly listeners: ChangeListener[] = [];

  constructor(
    first: Doc,
    private readonly ask: () => Promise<void>,
  ) {
    this.topology = parseTopology(first.document);
    this.currentSigner = first.signer ?? undefined;
  }

  /** A document from the control process: applied when its epoch is newer than the one in force. */
  apply(doc: Doc): void {
    if (doc.epoch <= this.topology.epoch) return;
    const next = parseTopology(doc.document);
    const prev = this.topology;
    this.topology = next;
    this.currentSigner = doc.signer ?? undefined;
    for (const l of this.listeners) l(next, prev, this.currentSigner);
  }

  current(): Topology {
    return this.topology;
  }

  signer(): TopologySigner | undefined {
    return this.currentSigner;
  }

  /** The control process reads etcd again; whatever it applies arrives (apply) before this resolves. */
  refresh(): Promise<void> {
    return this.ask().catch(() => undefined);
  }

  onChange(listener: ChangeListener): void {
    this.listeners.push(listener);
  }

  /** Refusals are the control process's (audited there); a worker sees only what it applied. */
  onReject(_listener: RejectListener): void {}

  close(): void {}
}
