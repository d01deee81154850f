// The one request type the mesh port's stages work on, whatever HTTP/2 API carried it, and the
// shape of a stage: it reads the request, may enrich it, and throws a ThemisError to refuse.
// A stage never writes an answer (proxy/respond.ts does, in one place).
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { ReplayGuard } from '../../src/signing/replay-guard.js';
import type { ReplayAdmission } from '../../src/signing/replay-admission.js';
import type { SignedRequestHeaders } from '../../src/signing/canonical.js';
import type { MeshPeer } from '../peer-identity.js';
import type { Operation } from '../operations.js';
import type { TopologySource } from '../control/topology-source.js';
import type { Topology } from '../../src/topology/topology.js';

export interface MeshRequest {
  readonly method: string;
  /** Path with query string, as sent (it is what was signed). */
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly peer: MeshPeer;
  readonly op: Operation;
  /** Where the body comes from: a core-API stream or a compatibility request. */
  readonly source: Readable;
  /** The signed headers, once parsed (the headers stage). */
  sig?: SignedRequestHeaders;
  /** The body bytes, once read (the body stage). */
  body?: Buffer;
  /** The entity key a write or read addresses, once known (the ownership stage). */
  key?: string;
  /** The topology the ownership stage judged by. */
  topology?: Topology;
}

export interface StageDeps {
  readonly self: string;
  /** Told when a shard peer's request has passed every signature check (audited, aggregated). */
  readonly verified: (peer: MeshPeer) => void;
  /** The replay window (the timestamp stage). */
  readonly replay: ReplayGuard;
  /** The nonce cache and each sender's persisted high-water mark (the replay stage); shared by all workers. */
  readonly admit: ReplayAdmission;
  readonly maxBodyBytes: number;
  readonly topology: TopologySource;
  /** Whether this signature is verified on libuv's thread pool (config `signing.threadpool`). */
  readonly offloadSignature: () => boolean;
}

/** Resolves (or returns) when the request may go on; throws a ThemisError to refuse it. */
export type Stage = (r: MeshRequest, d: StageDeps) => void | Promise<void>;

/** Runs `stages` in order; awaits only those that return a promise (most are synchronous). */
export async function runStages(stages: readonly Stage[], r: MeshRequest, d: StageDeps): Promise<void> {
  for (const stage of stages) {
    const p = stage(r, d);
    if (p) await p;
  }
}
