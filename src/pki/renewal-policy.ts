// Who may renew what (themis-pki serve): a shard proves itself with its current certificate over
// mTLS and sends a CSR for a new key; it gets back the same identity, nothing more. The checks
// here are pure functions of the presented chain, the CSR and the CA's revocation records, so
// each refusal is unit-tested with real certificates; renewal-server.ts only carries them.
import { X509Certificate } from 'node:crypto';
import { ThemisError } from '../errors.js';
import { decodeIdentity, THEMIS_IDENTITY_OID, type ThemisIdentity } from './identity-extension.js';
import { parsePem } from './pem.js';
import type { PeerVerifier, VerifiedPeer } from './verify.js';
import { x509 } from './x509.js';

/** What a renewal certifies: the presented certificate's names and identity, over the CSR's key. */
export interface RenewalGrant {
  peer: VerifiedPeer;
  commonName: string;
  dns: string[];
  ips: string[];
  uris: string[];
  identity: ThemisIdentity;
  publicKey: x509.PublicKey;
}

/** A CSR in PEM (`CERTIFICATE REQUEST`) or DER; INVALID_CSR when it does not parse or its self-signature fails. */
export async function parseCsr(body: Buffer): Promise<x509.Pkcs10CertificateRequest> {
  let der: Uint8Array;
  const text = body.toString('latin1');
  try {
    if (text.includes('-----BEGIN')) {
      const blocks = parsePem(text, 'request body').filter((b) => b.label === 'CERTIFICATE REQUEST' || b.label === 'NEW CERTIFICATE REQUEST');
      if (blocks.length !== 1) throw new Error('expected exactly one CERTIFICATE REQUEST block');
      der = new Uint8Array(blocks[0]!.der);
    } else der = new Uint8Array(body);
  } catch (e) {
    throw new ThemisError('INVALID_CSR', `the body is not a PKCS#10 certificate request: ${(e as Error).message}`);
  }
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(der);
  } catch (e) {
    throw new ThemisError('INVALID_CSR', `the body is not a PKCS#10 certificate request: ${(e as Error).message}`);
  }
  let signed = false;
  try {
    signed = await csr.verify();
  } catch {
    signed = false;
  }
  if (!signed) throw new ThemisError('INVALID_CSR', "the request's self-signature does not verify: it must be signed with the new key");
  return csr;
}

function names(cert: x509.X509Certificate): { dns: string[]; ips: string[]; uris: string[] } {
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  const out = { dns: [] as string[], ips: [] as string[], uris: [] as string[] };
  for (const n of san?.names.items ?? []) {
    if (n.type === 'dns') out.dns.push(n.value);
    else if (n.type === 'ip') out.ips.push(n.value);
    else if (n.type === 'url') out.uris.push(n.value);
  }
  return out;
}

/** The fields in which `asked` differs from `held`, named for the refusal. */
export function identityChanges(held: ThemisIdentity, asked: ThemisIdentity): string[] {
  const out: string[] = [];
  if (asked.shardId !== held.shardId) out.push('shard id');
  if (asked.datacenter !== held.datacenter) out.push('datacenter');
  if (asked.tokenRangeStart !== held.tokenRangeStart || asked.tokenRangeEnd !== held.tokenRangeEnd) out.push('token range');
  if (asked.capabilities.length !== held.capabilities.length || asked.capabilities.some((c, i) => c !== held.capabilities[i])) out.push('capabilities');
  if (asked.role !== held.role) out.push('role');
  return out;
}

function commonNameOf(subject: string): string | undefined {
  return /(?:^|,\s*)CN=([^,]+)/.exec(subject)?.[1];
}

/**
 * Decides a renewal: the chain the TLS peer presented must verify now under the CA's root and
 * CRLs, name a shard (cluster CA, role primary or replica) whose serial the CA has not revoked
 * (its own records count, not only the last CRL), and the CSR may only repeat what that
 * certificate holds. Throws ThemisError: RENEWAL_REFUSED (who is asking) or
 * IDENTITY_CHANGE_REFUSED (what is asked), INVALID_CSR.
 */
export function decideRenewal(o: {
  chain: ReadonlyArray<Uint8Array>;
  csr: x509.Pkcs10CertificateRequest;
  verifier: PeerVerifier;
  /** Serials (serialHex) the CA has recorded as revoked, published in a CRL or not yet. */
  revoked: ReadonlySet<string>;
  /**
   * Hex DER names of the cluster CAs whose shards renew here: the service's own, and during a
   * root rotation the previous generation's. A cluster-kind CA of another cluster is refused.
   */
  clusterCas?: ReadonlySet<string>;
}): RenewalGrant {
  if (o.chain.length === 0) throw new ThemisError('CERTIFICATE_REQUIRED', 'renewal needs the current certificate, presented as the TLS client certificate');
  const v = o.verifier.verify(o.chain, 'clientAuth');
  if (!v.ok) throw new ThemisError('RENEWAL_REFUSED', `the presented certificate cannot renew: ${v.message}`, { reason: v.reason });
  const peer = v.peer;
  if (o.revoked.has(peer.serial)) throw new ThemisError('RENEWAL_REFUSED', `certificate ${peer.serial} is revoked by its CA: a revoked certificate cannot renew`, { reason: 'revoked' });
  if (peer.issuerKind !== 'cluster' || (peer.identity.role !== 'primary' && peer.identity.role !== 'replica') || peer.identity.shardId === '') {
    throw new ThemisError('RENEWAL_REFUSED', `only shard certificates renew here; this one is a ${peer.identity.role} certificate from the ${peer.issuerKind} CA`, { reason: 'not_a_shard' });
  }
  if (o.clusterCas && !o.clusterCas.has(peer.issuerName)) {
    throw new ThemisError('RENEWAL_REFUSED', `${peer.subject} was issued by ${peer.issuer}, not by this service's cluster CA (nor the previous generation's, --previous)`, { reason: 'unknown_issuer' });
  }
  const held = new x509.X509Certificate(o.chain[0]!);
  const heldNames = names(held);
  const csr = o.csr;
  const asked = csr.getExtension(THEMIS_IDENTITY_OID);
  if (asked) {
    let identity: ThemisIdentity;
    try {
      identity = decodeIdentity(new Uint8Array(asked.value));
    } catch (e) {
      throw new ThemisError('INVALID_CSR', `the request's identity extension does not decode: ${(e as Error).message}`);
    }
    const changed = identityChanges(peer.identity, identity);
    if (changed.length > 0) {
      throw new ThemisError('IDENTITY_CHANGE_REFUSED', `the request asks for another ${changed.join(', ')} than ${peer.identity.shardId}'s certificate holds; changes need an operator (themis-pki issue-shard)`, { fields: changed });
    }
  }
  const cn = commonNameOf(csr.subject);
  if (cn !== undefined && cn !== commonNameOf(held.subject)) {
    throw new ThemisError('IDENTITY_CHANGE_REFUSED', `the request names ${cn}, the certificate ${commonNameOf(held.subject)}; changes need an operator`, { fields: ['subject'] });
  }
  const askedSan = csr.extensions.find((e): e is x509.SubjectAlternativeNameExtension => e instanceof x509.SubjectAlternativeNameExtension);
  if (askedSan) {
    const want = heldNames; // compared as sets
    const got = { dns: [] as string[], ips: [] as string[], uris: [] as string[] };
    for (const n of askedSan.names.items) {
      if (n.type === 'dns') got.dns.push(n.value);
      else if (n.type === 'ip') got.ips.push(n.value);
      else if (n.type === 'url') got.uris.push(n.value);
      else throw new ThemisError('IDENTITY_CHANGE_REFUSED', `the request asks for a ${n.type} name, which shard certificates do not carry`, { fields: ['subjectAltName'] });
    }
    // Fewer names than held is no change (the held names are certified); any other is one.
    const within = (a: string[], b: string[]) => a.every((x) => b.includes(x));
    if (!within(got.dns, want.dns) || !within(got.ips, want.ips) || !within(got.uris, want.uris)) {
      throw new ThemisError('IDENTITY_CHANGE_REFUSED', 'the request asks for names (subjectAltName) the certificate does not hold; changes need an operator', { fields: ['subjectAltName'] });
    }
  }
  const oldKey = Buffer.from(new X509Certificate(o.chain[0]!).publicKey.export({ type: 'spki', format: 'der' }));
  if (Buffer.from(csr.publicKey.rawData).equals(oldKey)) {
    throw new ThemisError('INVALID_CSR', 'the request reuses the current key; renewal takes a new key pair');
  }
  return { peer, commonName: commonNameOf(held.subject) ?? peer.subject, ...heldNames, identity: peer.identity, publicKey: csr.publicKey };
}
