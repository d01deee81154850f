// The control process's side of its workers: it answers their replay checks and position waits
// from the one cache and the one position table of the host, takes the replicas' and move
// targets' announcements that reached any worker, fans write holds out to every worker (a hold
// is drained once every live worker has drained it), passes on the topology and CRLs it takes
// from etcd (workers hold no etcd client), and collects their metrics.
import type { Logger } from 'pino';
import { ThemisError } from '../../src/errors.js';
import type { ReplayAdmission } from '../../src/signing/replay-admission.js';
import type { TokenSpan } from '../../src/topology/replica-ranges.js';
import type { ReplicaPositions } from '../replication/positions.js';
import type { MovePositions } from '../rebalance/cutover.js';
import type { Failover } from '../failover/failover.js';
import { isOurs, toWire, type Answer, type FromWorker, type Rpc, type ToWorker, type WireSpan, type WorkerDocs } from './messages.js';

/** One worker as the hub sees it (a cluster.Worker in production). */
export interface WorkerPort {
  readonly slot: number;
  send(m: ToWorker): void;
}

export interface HubDeps {
  admit: ReplayAdmission;
  positions: Pick<ReplicaPositions, 'record' | 'waitFor'>;
  movePositions: Pick<MovePositions, 'record'>;
  /** With replication.failover: its state goes to every worker on each change and every 250 ms. */
  failover?: Pick<Failover, 'mirrorState' | 'onState'>;
  /** The epoch of the signed topology the control process holds (a cutover releases its hold once the next one is in force). */
  epoch: () => number;
  /** The documents in force that workers take from here (publishDocs says when they change). */
  docs: () => WorkerDocs;
  /** Reads etcd's topology again (a worker asked); a change reaches the workers (publishDocs) before this resolves. */
  refreshTopology: () => Promise<void>;
  log: Logger;
}

/** How often failover's state goes to the workers besides its changes (the lease's time left). */
export const FAILOVER_EVERY_MS = 250;

interface FannedHold {
  ranges: WireSpan[];
  waiting: Set<WorkerPort>;
  drained: () => void;
}

type Body<K extends ToWorker['kind']> = Omit<Extract<ToWorker, { kind: K }>, 'themis' | 'kind'>;

export class WorkerHub {
  private deps: HubDeps | undefined;
  private readonly workers = new Set<WorkerPort>();
  /** Workers that opened their ports (readiness). */
  private readonly serving = new Set<WorkerPort>();
  private readonly holdsOn = new Map<number, FannedHold>();
  private nextHold = 1;
  private nextMetrics = 1;
  private readonly metricWaits = new Map<number, (json: unknown[]) => void>();
  private readonly listeners: ((w: WorkerPort, m: FromWorker) => void)[] = [];
  private failoverTimer: NodeJS.Timeout | undefined;
  private readonly replies = new Map<WorkerPort, Answer[]>();
  /** Workers that asked for the documents (from before they build their sidecar until they exit). */
  private readonly subscribers = new Set<WorkerPort>();

  /** What the hub answers with; set once the control process's sidecar is built. */
  serve(deps: HubDeps): void {
    this.deps = deps;
    this.publishDocs();
    const f = deps.failover;
    if (f) {
      const send = () => {
        const state = f.mirrorState();
        for (const w of this.workers) WorkerHub.send(w, 'failover', { state });
      };
      f.onState(send);
      this.failoverTimer = setInterval(send, FAILOVER_EVERY_MS);
      this.failoverTimer.unref();
    }
  }

  close(): void {
    clearInterval(this.failoverTimer);
  }

  private static send<K extends ToWorker['kind']>(w: WorkerPort, kind: K, body: Body<K>): void {
    w.send({ themis: 1, kind, ...body } as unknown as ToWorker);
  }

  /** A worker's message; those the hub does not handle go to `onMessage` listeners. */
  handle(w: WorkerPort, m: unknown): void {
    if (!isOurs(m)) return;
    const msg = m as FromWorker;
    switch (msg.kind) {
      case 'subscribe':
        this.subscribers.add(w);
        if (this.deps) WorkerHub.send(w, 'docs', { docs: this.deps.docs() });
        return;
      case 'hello':
        // It joins before it serves: the holds in force are on in it from its first request.
        this.workers.add(w);
        return WorkerHub.send(w, 'welcome', { holds: [...this.holdsOn].map(([id, h]) => ({ id, ranges: h.ranges })), failover: this.deps?.failover?.mirrorState() ?? null });
      case 'rpc':
        return void this.answer(w, msg.id, msg.call);
      case 'rpcs':
        for (const c of msg.calls) void this.answer(w, c.id, c.call);
        return;
      case 'position':
        return this.deps?.positions.record(msg.replica, msg.header);
      case 'movePosition':
        return this.deps?.movePositions.record(msg.shard, msg.header);
      case 'drained':
        return this.drainedIn(w, msg.hold);
      case 'listening':
        this.serving.add(w);
        for (const l of this.listeners) l(w, msg);
        return;
      case 'metrics':
        this.metricWaits.get(msg.id)?.(msg.json);
        return;
      default:
        for (const l of this.listeners) l(w, msg);
    }
  }

  onMessage(l: (w: WorkerPort, m: FromWorker) => void): void {
    this.listeners.push(l);
  }

  private async answer(w: WorkerPort, id: number, call: Rpc): Promise<void> {
    const d = this.deps;
    try {
      if (!d) throw new ThemisError('REPLAY_STATE_UNAVAILABLE', 'the control process is starting');
      if (call.op === 'refreshTopology') {
        await d.refreshTopology();
        return this.reply(w, { id, value: null });
      }
      if (call.op === 'admit') {
        // Synchronous unless the sender's mark must be written first (rare).
        const p = d.admit(call.sender, call.nonce, call.timestamp);
        if (p) await p;
        return this.reply(w, { id, value: null });
      }
      const holding = await d.positions.waitFor(new Map(call.replicas), call.needed, call.seq, call.timeoutMs);
      this.reply(w, { id, value: holding });
    } catch (e) {
      const te = e instanceof ThemisError ? e : undefined;
      if (!te) d?.log.warn({ err: (e as Error).message, op: call.op }, 'worker request failed');
      this.reply(w, { id, code: te?.code ?? 'INTERNAL', message: te?.message ?? 'internal error' });
    }
  }

  /** Answers of one event-loop turn to a worker go in one message. */
  private reply(w: WorkerPort, a: Answer): void {
    let q = this.replies.get(w);
    if (!q) {
      this.replies.set(w, (q = []));
      setImmediate(() => {
        this.replies.delete(w);
        if (q!.length === 1) {
          const only = q![0]!;
          return 'code' in only ? WorkerHub.send(w, 'refused', only) : WorkerHub.send(w, 'reply', only);
        }
        WorkerHub.send(w, 'replies', { replies: q! });
      });
    }
    q.push(a);
  }

  /** A worker exited: it holds nothing and is waited for by nothing any more. */
  gone(w: WorkerPort): void {
    this.workers.delete(w);
    this.subscribers.delete(w);
    this.serving.delete(w);
    for (const id of [...this.holdsOn.keys()]) this.drainedIn(w, id);
  }

  get size(): number {
    return this.workers.size;
  }

  /** Workers serving their ports now. */
  get servingCount(): number {
    return this.serving.size;
  }

  /** WriteHold.hold across every worker: new writes to `ranges` wait in each; drained once none is in flight in any. */
  hold(ranges: readonly TokenSpan[]): { drained: Promise<void>; release: () => void } {
    const id = this.nextHold++;
    const wire = toWire(ranges);
    let drained!: () => void;
    const done = new Promise<void>((r) => (drained = r));
    const h: FannedHold = { ranges: wire, waiting: new Set(this.workers), drained };
    this.holdsOn.set(id, h);
    for (const w of this.workers) WorkerHub.send(w, 'hold', { id, ranges: wire });
    if (h.waiting.size === 0) drained();
    const release = () => {
      if (!this.holdsOn.delete(id)) return;
      // Each worker lets its held writes go once it routes by this epoch too (control-link.ts).
      const epoch = this.deps?.epoch() ?? 0;
      for (const w of this.workers) WorkerHub.send(w, 'release', { id, epoch });
    };
    return { drained: done, release };
  }

  private drainedIn(w: WorkerPort, id: number): void {
    const h = this.holdsOn.get(id);
    if (!h || !h.waiting.delete(w)) return;
    if (h.waiting.size === 0) h.drained();
  }

  /**
   * The topology or the CRLs changed: every subscribed worker gets them. Sent before anything
   * that depends on them (a reload, a hold's release), which the channel delivers in order.
   */
  publishDocs(): void {
    if (!this.deps) return;
    const docs = this.deps.docs();
    for (const w of this.subscribers) WorkerHub.send(w, 'docs', { docs });
  }

  broadcast<K extends 'reload' | 'stop'>(kind: K, body: Body<K>): void {
    for (const w of this.workers) WorkerHub.send(w, kind, body);
  }

  /** Every live worker's registry as JSON (those that do not answer within `ms` are left out). */
  async metrics(ms = 1000): Promise<unknown[][]> {
    return Promise.all([...this.workers].map((w) => new Promise<unknown[]>((resolve) => {
      const id = this.nextMetrics++;
      const timer = setTimeout(() => finish([]), ms);
      const finish = (json: unknown[]) => {
        clearTimeout(timer);
        this.metricWaits.delete(id);
        resolve(json);
      };
      this.metricWaits.set(id, finish);
      WorkerHub.send(w, 'metrics', { id });
    })));
  }
}
