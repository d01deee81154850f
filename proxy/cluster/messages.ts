// What the sidecar's control process and its workers say to each other over node:cluster's IPC
// channel (JSON). Every message carries `themis: 1`, so that other users of the channel (Node's
// own cluster messages, prom-client) are told apart. docs/sidecar.md "Workers" has the design.
import type { TokenSpan } from '../../src/topology/replica-ranges.js';
import type { FailoverState } from '../failover/failover.js';
import type { TopologySigner } from '../../src/topology/signed.js';

/**
 * What the control process took from etcd, passed on to its workers, which do not talk to etcd
 * themselves: the signed topology in force (its document, as the operator signed it, already
 * verified here) and the CRLs accepted from etcd (DER, base64). null: not configured
 * (etcd.topology / etcd.crls off), the worker reads its files.
 */
export interface WorkerDocs {
  topology: { document: string; epoch: number; signer: TopologySigner | null } | null;
  crls: string[] | null;
}

/** A token span as JSON carries it (bigints as decimal text). */
export type WireSpan = [string, string];

export const toWire = (ranges: readonly TokenSpan[]): WireSpan[] => ranges.map((r) => [String(r.start), String(r.end)]);
export const fromWire = (ranges: readonly WireSpan[]): TokenSpan[] => ranges.map(([s, e]) => ({ start: BigInt(s), end: BigInt(e) }));

export type Answer = { id: number; value: unknown } | { id: number; code: string; message: string };

export type Rpc =
  | { op: 'admit'; sender: string; nonce: string; timestamp: number }
  | { op: 'waitFor'; replicas: [string, string][]; needed: number; seq: number; timeoutMs: number }
  /** Read etcd's topology again now (a peer's 421, a release waiting for an epoch); answered once done. */
  | { op: 'refreshTopology' };

/** From a worker to the control process. */
export type FromWorker = { themis: 1 } & (
  /** Before it builds anything: send me the documents, now and on every change. */
  | { kind: 'subscribe' }
  | { kind: 'hello' }
  | { kind: 'listening'; bound: { app: string | null; appSocket?: string; mesh: string } }
  | { kind: 'rpc'; id: number; call: Rpc }
  /** The calls of one event-loop turn, in one message (fewer writes and reads on the channel). */
  | { kind: 'rpcs'; calls: { id: number; call: Rpc }[] }
  | { kind: 'position'; replica: string; header: string }
  | { kind: 'movePosition'; shard: string; header: string }
  | { kind: 'drained'; hold: number }
  | { kind: 'epoch'; epoch: number }
  | { kind: 'metrics'; id: number; json: unknown[] }
);

/** From the control process to a worker. */
export type ToWorker = { themis: 1 } & (
  | { kind: 'welcome'; holds: { id: number; ranges: WireSpan[] }[]; failover: FailoverState | null }
  | { kind: 'failover'; state: FailoverState }
  | { kind: 'docs'; docs: WorkerDocs }
  | { kind: 'reply'; id: number; value: unknown }
  | { kind: 'refused'; id: number; code: string; message: string }
  /** The answers of one event-loop turn. */
  | { kind: 'replies'; replies: Answer[] }
  | { kind: 'hold'; id: number; ranges: WireSpan[] }
  /** Released once this worker routes by `epoch` (the one the cutover published) or a newer one. */
  | { kind: 'release'; id: number; epoch: number }
  | { kind: 'reload'; why: string }
  | { kind: 'stop'; drainMs: number }
  | { kind: 'metrics'; id: number }
);

export const isOurs = (m: unknown): m is { themis: 1; kind: string } =>
  typeof m === 'object' && m !== null && (m as { themis?: unknown }).themis === 1 && typeof (m as { kind?: unknown }).kind === 'string';
