// A worker's line to the sidecar's control process (node:cluster IPC): the replay check and the
// replicas' positions are asked of the one process that holds them; the replicas' and move
// targets' announcements, the topology epoch and the bound addresses are told to it; write holds
// (a range move's cutover), reloads, and the topology and CRLs it takes from etcd come from it.
import { ThemisError, type ErrorCode, ERRORS } from '../../src/errors.js';
import type { ReplayAdmission } from '../../src/signing/replay-admission.js';
import type { WriteHold } from '../rebalance/write-hold.js';
import type { FailoverMirror } from '../failover/failover-mirror.js';
import { fromWire, isOurs, type FromWorker, type Rpc, type ToWorker, type WorkerDocs } from './messages.js';

/** A call the control process has not answered in this (it is stopped, or stuck) fails: 503, retryable. */
export const CALL_TIMEOUT_MS = 2000;

/** The IPC end of a worker process (process itself, in production). */
export interface Channel {
  send(message: unknown): boolean;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  readonly connected: boolean;
}

type Body<K extends FromWorker['kind']> = Omit<Extract<FromWorker, { kind: K }>, 'themis'>;

export class ControlLink {
  private next = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly listeners: ((m: ToWorker) => void)[] = [];
  private readonly holds = new Map<number, () => void>();
  private holdsOf: WriteHold | undefined;
  private mirror: FailoverMirror | undefined;
  private queue: { id: number; call: Rpc }[] = [];
  /** Holds released before they were applied (a welcome's hold whose release came with it). */
  private readonly released = new Set<number>();
  /** The epoch this worker routes by, and releases waiting for a newer one. */
  private routedEpoch = 0;
  private epochWaiters: { epoch: number; go: () => void }[] = [];
  private behind: (() => void) | undefined;
  /** The newest documents from the control process, and who applies them. */
  private latestDocs: WorkerDocs | undefined;
  private docsWaiters: ((d: WorkerDocs) => void)[] = [];
  private docsTo: ((d: WorkerDocs) => void) | undefined;

  constructor(private readonly channel: Channel) {
    channel.on('message', (m) => {
      if (!isOurs(m)) return;
      const msg = m as ToWorker;
      if (msg.kind === 'reply' || msg.kind === 'refused') return this.settle(msg);
      if (msg.kind === 'replies') {
        for (const a of msg.replies) this.settle('code' in a ? { kind: 'refused', ...a } : { kind: 'reply', ...a });
        return;
      }
      if (msg.kind === 'hold') return this.hold(msg.id, msg.ranges);
      if (msg.kind === 'release') return this.release(msg.id, msg.epoch);
      if (msg.kind === 'failover') return this.mirror?.apply(msg.state);
      if (msg.kind === 'docs') return this.takeDocs(msg.docs);
      // Applied here, before any message that came after it in the same read.
      if (msg.kind === 'welcome') this.applyWelcome(msg);
      for (const l of this.listeners) l(msg);
    });
  }

  private send<K extends FromWorker['kind']>(kind: K, body: Omit<Body<K>, 'kind'>): void {
    if (this.channel.connected) this.channel.send({ themis: 1, kind, ...body });
  }

  private call(call: Rpc, timeoutMs = CALL_TIMEOUT_MS): Promise<unknown> {
    if (!this.channel.connected) return Promise.reject(new ThemisError('REPLAY_STATE_UNAVAILABLE', 'the sidecar\'s control process is gone'));
    const id = this.next++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ThemisError('REPLAY_STATE_UNAVAILABLE', `the sidecar's control process did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (v) => (clearTimeout(timer), resolve(v)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      this.queue.push({ id, call });
      if (this.queue.length === 1) setImmediate(() => this.flush());
    });
  }

  /** The calls of this event-loop turn go in one message. */
  private flush(): void {
    const calls = this.queue;
    this.queue = [];
    if (calls.length === 1) this.send('rpc', calls[0]!);
    else if (calls.length > 1) this.send('rpcs', { calls });
  }

  private settle(m: Pick<Extract<ToWorker, { kind: 'reply' }>, 'kind' | 'id' | 'value'> | Pick<Extract<ToWorker, { kind: 'refused' }>, 'kind' | 'id' | 'code' | 'message'>): void {
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    if (m.kind === 'reply') return p.resolve(m.value);
    const code = (m.code in ERRORS ? m.code : 'INTERNAL') as ErrorCode;
    p.reject(new ThemisError(code, m.message));
  }

  /** Every call still unanswered fails (the control process went away). */
  failPending(): void {
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.reject(new ThemisError('REPLAY_STATE_UNAVAILABLE', 'the sidecar\'s control process is gone'));
    }
  }

  /** The replay check, done by the control process for every worker (one nonce cache per host). */
  readonly admit: ReplayAdmission = (sender, nonce, timestamp) => this.call({ op: 'admit', sender, nonce, timestamp }).then(() => undefined);

  /** ReplicaPositions.waitFor, answered by the control process, where every replica's announcement arrives. */
  async waitFor(replicas: ReadonlyMap<string, string>, needed: number, seq: number, timeoutMs: number): Promise<string[]> {
    const v = await this.call({ op: 'waitFor', replicas: [...replicas], needed, seq, timeoutMs }, timeoutMs + CALL_TIMEOUT_MS).catch(() => []);
    return Array.isArray(v) ? (v as string[]) : [];
  }

  position(replica: string, header: string | string[] | undefined): void {
    if (typeof header === 'string') this.send('position', { replica, header });
  }

  movePosition(shard: string, header: string | string[] | undefined): void {
    if (typeof header === 'string') this.send('movePosition', { shard, header });
  }

  hello(): void {
    this.send('hello', {});
  }

  /**
   * The topology and CRLs the control process holds from etcd, asked for before the worker builds
   * its sidecar; every later change arrives too (serveDocs). Fails when the control process does
   * not answer within `timeoutMs`.
   */
  docs(timeoutMs = 30_000): Promise<WorkerDocs> {
    if (this.latestDocs) return Promise.resolve(this.latestDocs);
    const first = new Promise<WorkerDocs>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the control process sent no topology within ${timeoutMs / 1000} s`)), timeoutMs);
      timer.unref();
      this.docsWaiters.push((d) => (clearTimeout(timer), resolve(d)));
    });
    if (this.docsWaiters.length === 1) this.send('subscribe', {});
    return first;
  }

  /** Later documents go to `apply` (the newest one at once, if it came after docs() answered). */
  serveDocs(apply: (d: WorkerDocs) => void): void {
    this.docsTo = apply;
    if (this.latestDocs) apply(this.latestDocs);
  }

  private takeDocs(d: WorkerDocs): void {
    this.latestDocs = d;
    const waiters = this.docsWaiters;
    this.docsWaiters = [];
    for (const w of waiters) w(d);
    this.docsTo?.(d);
  }

  /** The control process reads etcd's topology again; resolves once it did (and sent any change first). */
  refreshTopology(): Promise<void> {
    return this.call({ op: 'refreshTopology' }, 10_000).then(() => undefined);
  }

  listening(bound: Body<'listening'>['bound']): void {
    this.send('listening', { bound });
  }

  /** This worker now routes by `epoch`: told to the control process; held writes waiting for it go on. */
  epoch(epoch: number): void {
    this.routedEpoch = Math.max(this.routedEpoch, epoch);
    const ready = this.epochWaiters.filter((w) => w.epoch <= this.routedEpoch);
    this.epochWaiters = this.epochWaiters.filter((w) => w.epoch > this.routedEpoch);
    for (const w of ready) w.go();
    this.send('epoch', { epoch });
  }

  metrics(id: number, json: unknown[]): void {
    this.send('metrics', { id, json });
  }

  /**
   * Holds and releases from the control process act on `writes`, this worker's own write path.
   * `behind`: asked to catch up when a release waits for an epoch this worker has not seen yet.
   */
  serveHolds(writes: WriteHold, behind?: () => void): void {
    this.holdsOf = writes;
    this.behind = behind;
  }

  private hold(id: number, ranges: [string, string][]): void {
    if (!this.holdsOf || this.holds.has(id)) return;
    if (this.released.delete(id)) return;
    const h = this.holdsOf.hold(fromWire(ranges));
    this.holds.set(id, h.release);
    void h.drained.then(() => this.send('drained', { hold: id }));
  }

  /**
   * A cutover's hold ends only once this worker routes by the epoch that moved the range: a
   * write released earlier would still find this shard the owner and be acknowledged here,
   * after the copy ended.
   */
  private release(id: number, epoch: number): void {
    const release = this.holds.get(id);
    if (!release) {
      this.released.add(id);
      return;
    }
    const go = () => {
      this.holds.delete(id);
      release();
    };
    if (this.routedEpoch >= epoch) return go();
    this.epochWaiters.push({ epoch, go });
    this.behind?.();
  }

  /** The other messages: welcome, reload, stop, metrics. */
  onMessage(l: (m: ToWorker) => void): void {
    this.listeners.push(l);
  }

  /** Failover states from the control process go to `mirror` (this worker's fencing and routing). */
  serveFailover(mirror: FailoverMirror): void {
    this.mirror = mirror;
  }

  /** Applies what a `welcome` names — the holds in force, failover's state — before this worker serves. */
  private applyWelcome(m: Extract<ToWorker, { kind: 'welcome' }>): void {
    for (const h of m.holds) this.hold(h.id, h.ranges);
    if (m.failover) this.mirror?.apply(m.failover);
  }
}
