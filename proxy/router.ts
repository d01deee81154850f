// Routing for apps (the app port, and client-certificate apps on the mesh port): an entity call
// goes to the owner of its key's token in the current topology — the local storage node, or the
// owner's sidecar over the mesh (signed), as the resolver says. Each forwarded request says the
// epoch it was routed by, so an owner still behind catches up instead of refusing. A peer that
// answers 421 makes us read the topology again (waiting, up to a second, for the epoch its
// answer names) and retry while there is something new to route by, at most MAX_ATTEMPTS times
// in all. Queries fan out through scatter-gather.
import { Readable } from 'node:stream';
import { ThemisError } from '../src/errors.js';
import { parseJsonObject, readBody } from '../src/http-body.js';
import { parseTable, formatThemisKey } from '../src/urn/urn.js';
import { sha256Hex } from '../src/signing/sign.js';
import type { Random } from '../src/runtime.js';
import { endToEndHeaders } from './headers.js';
import { answerHealth } from './health.js';
import { hasBody, type LocalUpstream } from './local-upstream.js';
import { EPOCH_HEADER, servedBy } from './mesh-headers.js';
import { catchUp, senderEpoch } from './control/catch-up.js';
import type { AnyRequest, Reply } from './respond.js';
import type { ShardResolver } from './resolver.js';
import type { TopologySource } from './control/topology-source.js';
import { isWriteMethod, type Operation } from './operations.js';
import type { ScatterGather } from './scatter-gather.js';
import type { AckGate } from './replication/ack-gate.js';
import type { Logger } from '../src/log.js';
import { obsOf } from './observability/request-record.js';
import { writeLocally, type HoldCheck } from './replication/replicated-write.js';
import { MAX_WRITE_ANSWER_BYTES, readAnswer } from './upstream.js';
import { COPY_HEADER, LAG_HEADER, acceptsReplica, replicaReadLag, type ReplicaState } from './replication/read-preference.js';
import { AqlService } from './compat/aql.js';
import { captureReply, type Captured } from './compat/capture-reply.js';
import { answerTopology } from './compat/topology.js';
import type { TableDefaults } from '../src/query/aql-translate.js';

export interface RouterDeps {
  self: string;
  /** Writes to this shard count as done only when the range's replicas confirm them. */
  gate: AckGate;
  /** Whether this shard may serve a read as a replica (x-themis-read: any). */
  replicas: ReplicaState;
  topology: TopologySource;
  resolver: ShardResolver;
  random: Random;
  maxBodyBytes: number;
  scatter: ScatterGather;
  /** A range move's cutover may hold local writes; one whose key moved meanwhile goes to its new owner. */
  hold?: HoldCheck;
  /** Requests for one key slower than SLOW_MS are logged with where their time went. */
  log?: Logger;
  /** POST /query/aql: the table a bare collection name stands for (default document.default.{name}). */
  aql?: TableDefaults;
}

const SLOW_MS = 2000;
const STILL_MS = 5000;
/** A refusal from a peer (its JSON error) is small; one larger is cut off. */
const MAX_REFUSAL_BYTES = 64 * 1024;
/** Routings of one request: a cutover takes two (the old owner refuses, the new one serves), a failover during it a third. */
const MAX_ATTEMPTS = 3;

/** The transaction header of ThemisDB's clients: such a request is refused, never applied. */
const TRANSACTION_HEADER = 'x-transaction-id';

export class Router {
  private readonly aql: AqlService;

  constructor(private readonly d: RouterDeps) {
    this.aql = new AqlService({
      scatter: d.scatter,
      readEntity: (key) => this.readEntity(key),
      defaults: d.aql ?? { model: 'document', namespace: 'default' },
      maxAnswerBytes: d.maxBodyBytes * 4,
    });
  }

  /** The epoch routing decisions use now (for answers that no shard served). */
  epoch(): number {
    return this.d.topology.current().epoch;
  }

  /** Serves any classified operation for an app. */
  async serve(req: AnyRequest, reply: Reply, op: Operation): Promise<void> {
    // ThemisDB's clients send every call of a transaction with this header. The mesh has no
    // transactions: applying the call at once would break the isolation the app relies on.
    if (req.headers[TRANSACTION_HEADER] !== undefined) {
      throw new ThemisError('TRANSACTIONS_NOT_SUPPORTED', 'this request carries X-Transaction-Id, but the mesh has no transactions: it was not applied. Send it without the header to apply it on its own (docs/compatibility.md)');
    }
    switch (op.kind) {
      case 'entity': {
        if (op.method === 'GET' && acceptsReplica(req.headers)) {
          const topo = this.d.topology.current();
          const lag = replicaReadLag(topo, this.d.self, op.rawKey, this.d.replicas);
          if (lag !== undefined) {
            const up = await this.d.resolver.local.forward(req.method!, req.url!, req.headers, undefined);
            return reply.upstream(up, { ...servedBy(this.d.self, topo.epoch), [COPY_HEADER]: 'replica', [LAG_HEADER]: String(lag) });
          }
        }
        return this.traced(req, op.rawKey, (trace) => this.toOwner(req, reply, op.rawKey, undefined, 0, trace));
      }
      case 'entity-post':
        return this.post(req, reply);
      case 'changefeed':
      case 'scan':
        // Node-local by nature: the change feed and scan of this shard's storage node.
        return this.toLocal(req, reply, this.d.resolver.local, req as Readable, this.d.topology.current().epoch);
      case 'health':
        return answerHealth(reply, this.d.self, this.d.topology.current().epoch);
      case 'query':
        return this.d.scatter.query(reply, await readBody(req, this.d.maxBodyBytes), obsOf(req.headers));
      case 'vector':
        return this.d.scatter.vector(reply, await readBody(req, this.d.maxBodyBytes), obsOf(req.headers));
      case 'topology':
        return answerTopology(reply, req, this.d.self, this.d.topology.current().epoch);
      case 'aql':
        return this.aql.serve(reply, await readBody(req, this.d.maxBodyBytes));
      case 'unsupported':
        throw new ThemisError(op.code, op.message);
    }
  }

  /** GET of one entity, routed like an app's (AQL's `_key ==`); the answer read whole. */
  private async readEntity(key: string): Promise<Captured> {
    const cap = captureReply(MAX_WRITE_ANSWER_BYTES * 64, () => new ThemisError('PAYLOAD_TOO_LARGE', `${key} is larger than the AQL answer limit`));
    const req = { method: 'GET', url: `/entities/${encodeURIComponent(key)}`, headers: {}, httpVersionMajor: 1 } as unknown as AnyRequest;
    const [answer] = await Promise.all([cap.answer, this.toOwner(req, cap.reply, key)]);
    return answer;
  }

  private async post(req: AnyRequest, reply: Reply): Promise<void> {
    const text = await readBody(req, this.d.maxBodyBytes);
    const obj = parseJsonObject(text, 'INVALID_BODY');
    let body = text;
    let key: string;
    if (typeof obj.key === 'string') {
      key = obj.key;
    } else if (obj.key === undefined && typeof obj.table === 'string') {
      // The key decides the shard, so the sidecar (not the storage node) picks the uuid.
      const t = parseTable(obj.table);
      key = formatThemisKey({ ...t, table: obj.table, uuid: this.d.random.uuid() });
      const { table: _table, ...rest } = obj;
      body = Buffer.from(JSON.stringify({ ...rest, key }));
    } else {
      throw new ThemisError('INVALID_BODY', 'POST /entities needs "key" (or "table" to generate one) and "blob"');
    }
    return this.toOwner(req, reply, key, body);
  }

  private async toLocal(req: AnyRequest, reply: Reply, local: LocalUpstream, body: Buffer | Readable | undefined, epoch: number): Promise<void> {
    reply.upstream(await local.forward(req.method!, req.url!, req.headers, body), servedBy(this.d.self, epoch));
  }

  /** Forwards to the key's owner; `body` is given when already read. */
  private async toOwner(req: AnyRequest, reply: Reply, key: string, body?: Buffer, attempt = 0, trace?: Trace): Promise<void> {
    const topo = this.d.topology.current();
    const owner = this.d.resolver.resolve(topo.ownerOfKey(key));
    trace?.mark(`attempt ${attempt}: epoch ${topo.epoch}, owner ${owner.shard}`);
    const obs = obsOf(req.headers);
    if (obs) {
      if (attempt > 0) obs.retries++;
      const route = obs.trace.child('route');
      route.attr('themis.owner', owner.shard);
      route.attr('themis.epoch', topo.epoch);
      route.attr('themis.attempt', attempt);
      route.end();
    }
    if (owner.local) {
      // HTTP/1.1 bodies stream to the storage node. HTTP/2 bodies are read first: Node ends an
      // HTTP/2 request stream that the client reset mid-body as if it were complete, and only
      // a read body can be checked against its declared length.
      const local = body ?? (req.httpVersionMajor === 2 && hasBody(req.method) ? await readBody(req, this.d.maxBodyBytes) : (req as Readable));
      if (!isWriteMethod(req.method)) return this.toLocal(req, reply, owner.upstream, local, topo.epoch);
      try {
        await writeLocally(owner.upstream, this.d.gate, key, topo, { method: req.method!, url: req.url!, headers: req.headers, body: local }, reply, servedBy(this.d.self, topo.epoch), this.d.hold);
        trace?.mark('local write answered');
        return;
      } catch (e) {
        // Held at a cutover, and the key moved: on to its new owner (the body was not read yet).
        trace?.mark(`local write: ${(e as Error).message}`);
        if (attempt + 1 < MAX_ATTEMPTS && e instanceof ThemisError && e.code === 'NOT_OWNER' && e.details?.moved) return this.toOwner(req, reply, key, body, attempt + 1, trace);
        throw e;
      }
    }
    // The signature covers the body's hash, so a forwarded request body is read first.
    const bytes = body ?? (hasBody(req.method) ? await readBody(req, this.d.maxBodyBytes) : Buffer.alloc(0));
    trace?.mark(`to ${owner.shard}`);
    const up = await owner.upstream.request({
      method: req.method!,
      path: req.url!,
      headers: { ...endToEndHeaders(req.headers, true), [EPOCH_HEADER]: String(topo.epoch) },
      body: bytes,
      contentSha256: sha256Hex(bytes),
      obs,
    });
    trace?.mark(`${owner.shard} answered ${up.status}`);
    if (up.status === 421 && attempt + 1 < MAX_ATTEMPTS) {
      // Read whole, not drained: if the 421 stands it is the answer, and a body already consumed
      // would never end the client's (its 'close' passed before the relay listened).
      const answer = await readAnswer(up, MAX_REFUSAL_BYTES);
      const theirs = senderEpoch(up.headers[EPOCH_HEADER]);
      await catchUp(this.d.topology, typeof theirs === 'number' ? theirs : 0);
      trace?.mark(`topology read again: epoch ${this.d.topology.current().epoch} (${owner.shard} is at ${String(up.headers[EPOCH_HEADER])})`);
      // Retry only if there is something new to route by; otherwise the 421 stands.
      if (this.d.topology.current() !== topo) return this.toOwner(req, reply, key, bytes, attempt + 1, trace);
      return reply.upstream({ ...up, body: Readable.from([answer]), complete: () => true }, servedBy(owner.shard, topo.epoch));
    }
    if (!isWriteMethod(req.method)) return reply.upstream(up, servedBy(owner.shard, topo.epoch));
    // A write's answer is small: read whole before anything is relayed, so an owner that dies
    // mid-answer gets the app a retryable 502, not a connection cut after the headers.
    const answer = await readAnswer(up, MAX_WRITE_ANSWER_BYTES).catch((e: Error) => {
      throw new ThemisError('UPSTREAM_PROTOCOL_ERROR', `${owner.shard}'s answer broke off: ${e.message}`);
    });
    if (!up.complete()) throw new ThemisError('UPSTREAM_PROTOCOL_ERROR', `${owner.shard}'s answer broke off before its end`);
    reply.upstream({ ...up, body: Readable.from([answer]), complete: () => true }, servedBy(owner.shard, topo.epoch));
  }
  /** Requests for one key in progress, swept once a second for ones running past STILL_MS (no timer per request). */
  private readonly inflight = new Set<{ trace: Trace; method: string | undefined; key: string; warned: boolean }>();
  private sweeper: NodeJS.Timeout | undefined;

  /** Runs `f` with a trace of its steps, logged when the request took longer than SLOW_MS. */
  private async traced(req: AnyRequest, key: string, f: (trace: Trace) => Promise<void>): Promise<void> {
    const log = this.d.log;
    const trace = new Trace();
    if (!log) return f(trace);
    const entry = { trace, method: req.method, key, warned: false };
    this.inflight.add(entry);
    this.sweeper ??= setInterval(() => {
      for (const e of this.inflight) {
        if (e.warned || e.trace.elapsed() < STILL_MS) continue;
        e.warned = true;
        log.warn({ method: e.method, key: e.key, steps: e.trace.steps }, `request still running after ${STILL_MS / 1000} s`);
      }
    }, 1000).unref();
    try {
      await f(trace);
    } finally {
      this.inflight.delete(entry);
      const ms = trace.elapsed();
      if (ms > SLOW_MS) log.warn({ method: req.method, key, ms: Math.round(ms), steps: trace.steps }, 'slow request');
    }
  }


}

/** Where a request's time went: each step with the milliseconds since the start. */
class Trace {
  private readonly t0 = performance.now();
  readonly steps: string[] = [];

  mark(step: string): void {
    this.steps.push(`${Math.round(performance.now() - this.t0)} ms: ${step}`);
  }

  elapsed(): number {
    return performance.now() - this.t0;
  }
}
