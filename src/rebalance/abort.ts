// Aborting a rebalance operation before its cutover: an operator signs {op_id, cluster, abort}
// as a detached CMS (like the operation itself) and `themis-admin rebalance abort` writes it to
// /themis/{cluster}/rebalance-abort/{op_id} in one etcd transaction that requires the topology to
// be unchanged since the operation's base epoch. The cutover's own transaction requires the abort
// key to be absent, so exactly one of the two wins. Shards act on an abort only once it verifies
// (an operator with rebalance, add_shard or remove_shard); a forged one is audited and ignored.
import type { webcrypto } from 'node:crypto';
import { openDetached, signDetached } from '../pki/cms.js';
import type { PeerVerifier } from '../pki/verify.js';
import type { TopologySigner } from '../topology/signed.js';

export const ABORT_CAPABILITIES = ['rebalance', 'add_shard', 'remove_shard'] as const;

export interface SignedAbort {
  document: string;
  cms: string;
}

export function abortDocument(opId: string, cluster: string): string {
  return JSON.stringify({ op_id: opId, cluster, abort: true }, null, 2) + '\n';
}

export async function signAbort(opId: string, cluster: string, chainDer: readonly Uint8Array[], key: webcrypto.CryptoKey): Promise<SignedAbort> {
  const document = abortDocument(opId, cluster);
  const cms = await signDetached(Buffer.from(document, 'utf8'), chainDer, key);
  return { document, cms: Buffer.from(cms).toString('base64') };
}

export type AbortVerdict =
  | { ok: true; opId: string; signer: TopologySigner }
  | { ok: false; reason: 'malformed' | 'bad_signature' | 'untrusted_signer' | 'not_operator' | 'missing_capability' | 'wrong_cluster'; message: string; signer?: TopologySigner };

/** Verifies a stored {document, cms} abort for operation `opId` of `cluster`. */
export async function verifyAbort(input: unknown, o: { verifier: PeerVerifier; cluster: string; opId: string }): Promise<AbortVerdict> {
  const s = input as Partial<SignedAbort> | null;
  if (!s || typeof s !== 'object' || typeof s.document !== 'string' || typeof s.cms !== 'string') return { ok: false, reason: 'malformed', message: 'expected {document, cms} strings' };
  let d: { op_id?: unknown; cluster?: unknown; abort?: unknown };
  try {
    d = JSON.parse(s.document) as typeof d;
  } catch {
    return { ok: false, reason: 'malformed', message: 'the document is not JSON' };
  }
  if (d?.op_id !== o.opId || d.abort !== true) return { ok: false, reason: 'malformed', message: `the document does not abort operation ${o.opId}` };
  let parts;
  try {
    parts = await openDetached(Buffer.from(s.cms, 'base64'), Buffer.from(s.document, 'utf8'));
  } catch (e) {
    return { ok: false, reason: 'malformed', message: `cms: ${(e as Error).message}` };
  }
  if (!parts.signatureValid) return { ok: false, reason: 'bad_signature', message: 'the CMS signature does not verify over the document' };
  const chain = parts.chain.length ? o.verifier.verify(parts.chain, 'clientAuth') : undefined;
  if (!chain?.ok) return { ok: false, reason: 'untrusted_signer', message: chain ? `${chain.reason}: ${chain.message}` : 'no signer certificate' };
  const { identity, serial, subject, issuer } = chain.peer;
  const signer: TopologySigner = { subject, serial, issuer, verified: true };
  if (identity.role !== 'operator') return { ok: false, reason: 'not_operator', message: `${subject} is a ${identity.role} certificate, not an operator's`, signer };
  if (!ABORT_CAPABILITIES.some((c) => (identity.capabilities as readonly string[]).includes(c))) {
    return { ok: false, reason: 'missing_capability', message: `${subject} lacks ${ABORT_CAPABILITIES.join(', ')}`, signer };
  }
  if (d.cluster !== o.cluster) return { ok: false, reason: 'wrong_cluster', message: `the abort is for cluster "${String(d.cluster)}", not "${o.cluster}"`, signer };
  return { ok: true, opId: o.opId, signer };
}
