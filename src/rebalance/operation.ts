// A RebalanceOperation: an operator-signed order to move token ranges between shards. The
// document is JSON — its id, the cluster, the epoch it starts from, the moves, and the exact
// topology document that will be in force after it (the next epoch) — signed as a detached
// CMS like a topology (`openssl cms -verify` checks it), and stored as {document, cms} at
// /themis/{cluster}/rebalance/{op_id}. Shards verify it before they do anything with it.
import { randomUUID, type webcrypto } from 'node:crypto';
import { parseToken, tokenHex } from '../hash.js';
import { openDetached, signDetached } from '../pki/cms.js';
import type { PeerVerifier } from '../pki/verify.js';
import { parseTopology, serializeTopology } from '../topology/document.js';
import { capabilitiesFor, missingCapabilities } from '../topology/change-capabilities.js';
import type { TopologySigner } from '../topology/signed.js';
import type { Topology } from '../topology/topology.js';
import { applyMoves, checkMoves, MoveError, seedMoves, type Move } from './moves.js';

export interface RebalanceOperation {
  id: string;
  cluster: string;
  baseEpoch: number;
  moves: Move[];
  /** The topology in force after the operation: epoch baseEpoch + 1, the moves applied. */
  next: Topology;
  /** The next topology's document exactly as signed (published as is at cutover). */
  nextDocument: string;
  /** A detached CMS over `nextDocument` by the same operator (base64): the signed topology published at cutover. */
  nextCms: string;
  /** `auto`: the source cuts over once the target has caught up; `manual`: only after `themis-admin rebalance switch`. */
  cutover: 'auto' | 'manual';
}

export interface SignedOperation {
  document: string;
  cms: string;
}

const OP_ID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Builds the operation that moves `moves` away from `base` (shards: the next topology's, when it adds some); unsigned (nextCms ''). */
export function buildOperation(base: Topology, moves: Move[], o: { shards?: Topology['shards']; cutover?: 'auto' | 'manual' } = {}): RebalanceOperation {
  const next = applyMoves(base, moves, o.shards ? { ...o.shards } : undefined);
  return { id: randomUUID(), cluster: base.cluster, baseEpoch: base.epoch, moves, next, nextDocument: serializeTopology(next), nextCms: '', cutover: o.cutover ?? 'auto' };
}

/**
 * Builds the operation that takes `base` to a planned `next` (owners and replica lists chosen by
 * a planner): `ownerMoves` plus a replica move for every copy `next` adds, so that each new
 * replica holds its copy before the cutover. Throws MoveError when `next` does not fit them.
 */
export function buildPlannedOperation(base: Topology, next: Topology, ownerMoves: Move[], o: { cutover?: 'auto' | 'manual' } = {}): RebalanceOperation {
  const moves = [...ownerMoves, ...seedMoves(base, next, ownerMoves)];
  const why = checkMoves(base, moves, next);
  if (why) throw new MoveError(why);
  return { id: randomUUID(), cluster: base.cluster, baseEpoch: base.epoch, moves, next, nextDocument: serializeTopology(next), nextCms: '', cutover: o.cutover ?? 'auto' };
}

export function operationDocument(op: RebalanceOperation): string {
  return JSON.stringify({
    op_id: op.id,
    cluster: op.cluster,
    base_epoch: op.baseEpoch,
    moves: op.moves.map((m) => ({ from: m.from, to: m.to, token_start: tokenHex(m.start), token_end: tokenHex(m.end), ...(m.role ? { role: m.role } : {}) })),
    cutover: op.cutover,
    next_topology: op.nextDocument,
    next_topology_cms: op.nextCms,
  }, null, 2) + '\n';
}

/** Signs the next topology (for publishing at cutover) and then the whole operation, both by this operator. */
export async function signOperation(op: RebalanceOperation, chainDer: readonly Uint8Array[], key: webcrypto.CryptoKey): Promise<SignedOperation> {
  const nextCms = Buffer.from(await signDetached(Buffer.from(op.nextDocument, 'utf8'), chainDer, key)).toString('base64');
  const document = operationDocument({ ...op, nextCms });
  const cms = await signDetached(Buffer.from(document, 'utf8'), chainDer, key);
  return { document, cms: Buffer.from(cms).toString('base64') };
}

export class OperationFormatError extends Error {}

/** Parses an operation document; throws OperationFormatError naming the field. */
export function parseOperation(document: string): RebalanceOperation {
  let d: Record<string, unknown>;
  try {
    d = JSON.parse(document) as Record<string, unknown>;
  } catch {
    throw new OperationFormatError('the document is not JSON');
  }
  if (!d || typeof d !== 'object' || Array.isArray(d)) throw new OperationFormatError('the document is not a JSON object');
  if (typeof d.op_id !== 'string' || !OP_ID_RE.test(d.op_id)) throw new OperationFormatError('op_id: must be a lower-case UUID');
  if (typeof d.cluster !== 'string' || !d.cluster) throw new OperationFormatError('cluster: must be a non-empty string');
  if (!Number.isSafeInteger(d.base_epoch) || (d.base_epoch as number) < 0) throw new OperationFormatError('base_epoch: must be a non-negative integer');
  if (!Array.isArray(d.moves) || d.moves.length === 0) throw new OperationFormatError('moves: must be a non-empty list');
  const moves = d.moves.map((m: unknown, i: number): Move => {
    const x = m as Record<string, unknown>;
    const start = typeof x?.token_start === 'string' ? parseToken(x.token_start) : undefined;
    const end = typeof x?.token_end === 'string' ? parseToken(x.token_end) : undefined;
    if (typeof x?.from !== 'string' || typeof x?.to !== 'string' || start === undefined || end === undefined) {
      throw new OperationFormatError(`moves[${i}]: needs from, to, token_start and token_end (0x-prefixed hex)`);
    }
    if (x.role !== undefined && x.role !== 'replica') throw new OperationFormatError(`moves[${i}]: role must be "replica" or absent (the target becomes the owner)`);
    return { from: x.from, to: x.to, start, end, ...(x.role === 'replica' ? { role: 'replica' as const } : {}) };
  });
  if (d.cutover !== 'auto' && d.cutover !== 'manual') throw new OperationFormatError('cutover: must be "auto" or "manual"');
  if (typeof d.next_topology !== 'string') throw new OperationFormatError('next_topology: must be the topology document as a string');
  if (typeof d.next_topology_cms !== 'string') throw new OperationFormatError('next_topology_cms: must be a detached CMS over next_topology (base64)');
  let next: Topology;
  try {
    next = parseTopology(d.next_topology);
  } catch (e) {
    throw new OperationFormatError(`next_topology: ${(e as Error).message}`);
  }
  return { id: d.op_id, cluster: d.cluster, baseEpoch: d.base_epoch as number, moves, next, nextDocument: d.next_topology, nextCms: d.next_topology_cms, cutover: d.cutover };
}

export type OperationRejectReason =
  | 'malformed' | 'bad_signature' | 'untrusted_signer' | 'not_operator' | 'missing_capability'
  | 'wrong_cluster' | 'stale_epoch' | 'inconsistent' | 'range_not_certified';

export type OperationVerdict =
  | { ok: true; op: RebalanceOperation; signer: TopologySigner }
  | { ok: false; reason: OperationRejectReason; message: string; signer?: TopologySigner; opId?: string };

export interface OperationVerifyOptions {
  verifier: PeerVerifier;
  /** The signed topology in force: the operation must start from its epoch. */
  current: Topology;
  cluster: string;
  /** The token range a shard's certificate allows (undefined when unknown: not checked). */
  certifiedRange: (shardId: string) => Promise<{ start: bigint; end: bigint } | undefined>;
  /**
   * An operation from the past (a restarted shard finishing what it cut over): only the document,
   * both signatures and the signer's role are checked, not the epoch or the topology it starts from.
   */
  past?: boolean;
}

/** Verifies a stored {document, cms}: signature, signer, capability, epoch, consistency, certified ranges. */
export async function verifyOperation(input: unknown, o: OperationVerifyOptions): Promise<OperationVerdict> {
  const no = (reason: OperationRejectReason, message: string, extra: { signer?: TopologySigner; opId?: string } = {}): OperationVerdict => ({ ok: false, reason, message, ...extra });
  const s = input as Partial<SignedOperation> | null;
  if (!s || typeof s !== 'object' || typeof s.document !== 'string' || typeof s.cms !== 'string') return no('malformed', 'expected {document, cms} strings');
  let op: RebalanceOperation;
  try {
    op = parseOperation(s.document);
  } catch (e) {
    return no('malformed', (e as Error).message);
  }
  const opId = op.id;
  let parts;
  try {
    parts = await openDetached(Buffer.from(s.cms, 'base64'), Buffer.from(s.document, 'utf8'));
  } catch (e) {
    return no('malformed', `cms: ${(e as Error).message}`, { opId });
  }
  if (!parts.signatureValid) return no('bad_signature', 'the CMS signature does not verify over the document', { opId });
  const chain = parts.chain.length ? o.verifier.verify(parts.chain, 'clientAuth') : undefined;
  if (!chain?.ok) return no('untrusted_signer', chain ? `${chain.reason}: ${chain.message}` : 'no signer certificate', { opId });
  const { identity, serial, subject, issuer } = chain.peer;
  const signer: TopologySigner = { subject, serial, issuer, verified: true };
  const refuse = (reason: OperationRejectReason, message: string) => no(reason, message, { signer, opId });
  if (identity.role !== 'operator') return refuse('not_operator', `${subject} is a ${identity.role} certificate, not an operator's`);
  if (o.past) return (await verifyNextSignature(op, parts.chain, refuse)) ?? { ok: true, op, signer };
  const missing = missingCapabilities(capabilitiesFor(o.current, op.next), identity.capabilities as readonly string[]);
  if (missing.length) return refuse('missing_capability', `${subject} lacks ${missing.join(' and ')} for this change`);
  if (op.cluster !== o.cluster || op.next.cluster !== o.cluster) return refuse('wrong_cluster', `the operation is for cluster "${op.cluster}", not "${o.cluster}"`);
  if (op.baseEpoch !== o.current.epoch) return refuse('stale_epoch', `the operation starts from epoch ${op.baseEpoch}; epoch ${o.current.epoch} is in force`);
  if (op.next.epoch !== op.baseEpoch + 1) return refuse('inconsistent', `next_topology has epoch ${op.next.epoch}, not ${op.baseEpoch + 1}`);
  const why = checkMoves(o.current, op.moves, op.next);
  if (why) return refuse('inconsistent', why);
  const bad = await verifyNextSignature(op, parts.chain, refuse);
  if (bad) return bad;
  for (const m of op.moves) {
    const allowed = await o.certifiedRange(m.to);
    if (allowed && (m.start < allowed.start || m.end > allowed.end)) {
      return refuse('range_not_certified', `${m.to}'s certificate allows ${tokenHex(allowed.start)}–${tokenHex(allowed.end)}, not ${tokenHex(m.start)}–${tokenHex(m.end)}`);
    }
  }
  return { ok: true, op, signer };
}

/** The topology published at cutover must carry the same operator's signature over exactly next_topology. */
async function verifyNextSignature(
  op: RebalanceOperation,
  chain: readonly Uint8Array[],
  refuse: (reason: OperationRejectReason, message: string) => OperationVerdict,
): Promise<OperationVerdict | undefined> {
  let next;
  try {
    next = await openDetached(Buffer.from(op.nextCms, 'base64'), Buffer.from(op.nextDocument, 'utf8'));
  } catch (e) {
    return refuse('malformed', `next_topology_cms: ${(e as Error).message}`);
  }
  const sameSigner = next.chain[0] && chain[0] && Buffer.from(next.chain[0]).equals(Buffer.from(chain[0]));
  if (!next.signatureValid || !sameSigner) return refuse('bad_signature', 'next_topology_cms is not a valid signature over next_topology by the operation\'s signer');
  return undefined;
}
