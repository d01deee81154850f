// Signed topologies: `{document, cms}` — the topology JSON exactly as signed, and a detached
// CMS SignedData over those bytes (base64) carrying the operator's certificate chain. A
// topology is accepted only if the chain verifies (root, CRLs), the signer is an operator
// whose certificate grants the change, the epoch is newer, and every range lies inside its
// owner's certified token range.
import { tokenHex } from '../hash.js';
import { openDetached, signDetached } from '../pki/cms.js';
import { serialHex } from '../pki/issue.js';
import { parseCertDer } from '../pki/pem.js';
import type { PeerVerifier } from '../pki/verify.js';
import type { webcrypto } from 'node:crypto';
import { capabilitiesFor, missingCapabilities, TOPOLOGY_CAPABILITIES } from './change-capabilities.js';
import { parseTopology, serializeTopology } from './document.js';
import type { Topology } from './topology.js';

export interface SignedTopology {
  document: string;
  cms: string;
}

export async function signTopology(t: Topology, chainDer: readonly Uint8Array[], key: webcrypto.CryptoKey): Promise<SignedTopology> {
  const document = serializeTopology(t);
  const cms = await signDetached(Buffer.from(document, 'utf8'), chainDer, key);
  return { document, cms: Buffer.from(cms).toString('base64') };
}

export type RejectReason = 'malformed' | 'bad_signature' | 'untrusted_signer' | 'not_operator' | 'missing_capability' | 'not_newer' | 'range_not_certified' | 'wrong_cluster';

/** Who signed, for logs and the audit trail. `verified: false`: as the certificate claims, its chain refused. */
export interface TopologySigner {
  subject: string;
  serial: string;
  issuer: string;
  verified: boolean;
}

export type Verdict =
  | { ok: true; topology: Topology; signer: TopologySigner }
  | { ok: false; reason: RejectReason; message: string; signer?: TopologySigner };

/** What an unverified signer certificate says of itself, or undefined when it does not parse. */
function claimedSigner(der: Uint8Array | undefined): TopologySigner | undefined {
  if (!der) return undefined;
  try {
    const c = parseCertDer(der, 'signer');
    return { subject: c.subject, serial: serialHex(c), issuer: c.issuer, verified: false };
  } catch {
    return undefined;
  }
}

export interface VerifyOptions {
  verifier: PeerVerifier;
  /** The topology in force: the new one must have a higher epoch, and its change decides the capabilities. */
  current?: Topology;
  /**
   * Without `current`: true when nothing is in force anywhere (etcd holds no topology), so this
   * is the first one and needs add_shard. Otherwise a topology judged without a base (a cache at
   * start, the value stored in etcd) needs any one of the topology capabilities.
   */
  bootstrap?: boolean;
  cluster: string;
  /** The token range each shard's certificate allows, when known: checked for owners and replicas. */
  certifiedRange?: (shardId: string) => { start: bigint; end: bigint } | undefined;
}

export async function verifySignedTopology(input: unknown, o: VerifyOptions): Promise<Verdict> {
  const no = (reason: RejectReason, message: string): Verdict => ({ ok: false, reason, message });
  const st = input as Partial<SignedTopology> | null;
  if (!st || typeof st.document !== 'string' || typeof st.cms !== 'string') return no('malformed', 'expected {document, cms} strings');
  let topology: Topology;
  try {
    topology = parseTopology(st.document);
  } catch (e) {
    return no('malformed', (e as Error).message);
  }
  let parts;
  try {
    parts = await openDetached(Buffer.from(st.cms, 'base64'), Buffer.from(st.document, 'utf8'));
  } catch (e) {
    return no('malformed', `cms: ${(e as Error).message}`);
  }
  const withClaim = (v: Verdict, claimed: TopologySigner | undefined): Verdict => (claimed ? { ...v, signer: claimed } : v);
  if (!parts.signatureValid) return withClaim(no('bad_signature', 'the CMS signature does not verify over the document'), claimedSigner(parts.chain[0]));
  const chain = parts.chain.length ? o.verifier.verify(parts.chain, 'clientAuth') : undefined;
  if (!chain?.ok) {
    const leaf = chain?.leaf;
    return withClaim(no('untrusted_signer', chain ? `${chain.reason}: ${chain.message}` : 'no signer certificate'), leaf && { ...leaf, verified: false });
  }
  const { identity, serial, subject, issuer } = chain.peer;
  const signer: TopologySigner = { subject, serial, issuer, verified: true };
  const refuse = (reason: RejectReason, message: string): Verdict => ({ ...no(reason, message), signer });
  // The verifier has bound the role to the issuing CA: an operator here came from the operator CA.
  if (identity.role !== 'operator') return refuse('not_operator', `${subject} is a ${identity.role} certificate, not an operator's`);
  const held = identity.capabilities as readonly string[];
  if (o.current || o.bootstrap) {
    const missing = missingCapabilities(capabilitiesFor(o.current, topology), held);
    if (missing.length) return refuse('missing_capability', `${subject} lacks ${missing.join(' and ')} for this change`);
  } else if (!TOPOLOGY_CAPABILITIES.some((c) => held.includes(c))) {
    return refuse('missing_capability', `${subject} holds none of ${TOPOLOGY_CAPABILITIES.join(', ')}`);
  }
  if (topology.cluster !== o.cluster) return refuse('wrong_cluster', `topology is for cluster "${topology.cluster}", not "${o.cluster}"`);
  if (o.current && topology.epoch <= o.current.epoch) return refuse('not_newer', `epoch ${topology.epoch} is not newer than ${o.current.epoch}`);
  if (o.certifiedRange) {
    for (const r of topology.ranges) {
      for (const holder of [r.owner, ...r.replicas]) {
        const allowed = o.certifiedRange(holder);
        if (allowed && (r.start < allowed.start || r.end > allowed.end)) {
          return refuse('range_not_certified', `${holder} is given tokens ${tokenHex(r.start)}–${tokenHex(r.end)}, outside ${tokenHex(allowed.start)}–${tokenHex(allowed.end)} that its certificate allows`);
        }
      }
    }
  }
  return { ok: true, topology, signer };
}
