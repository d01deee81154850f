// PeerVerifier: a presented chain (DER, leaf first) + the trusted roots + current CRLs + Clock →
// the verified ThemisIdentity or a typed reason. Each certificate is decoded once and cached
// by SHA-256 fingerprint; the sidecar calls this per connection.
import { X509Certificate as NodeX509, createHash, verify as verifySignature } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Clock } from '../runtime.js';
import { kindClaimOf, roleIssuerMismatch, type CaKind, type KindClaim } from './ca-kind.js';
import { latestPerIssuer, parseCrls, type ParsedCrl } from './crl.js';
import { PkiError } from './errors.js';
import { THEMIS_IDENTITY_OID, decodeIdentity, type ThemisIdentity } from './identity-extension.js';
import { serialHex } from './issue.js';
import { parseCertDer } from './pem.js';
import { trustBundleDer } from './trust-bundle.js';
import { x509 } from './x509.js';

export const VERIFY_REASONS = [
  'malformed_certificate',
  'unknown_issuer',
  'expired',
  'not_yet_valid',
  'wrong_key_usage',
  'revocation_unknown', // no CRL for a CA of the chain, or it is stale or badly signed
  'revoked',
  'missing_extension',
  'malformed_extension',
  'wrong_issuer', // the role is one the issuing CA may not grant (ca-kind.ts)
] as const;
export type VerifyReason = (typeof VERIFY_REASONS)[number];
export type Purpose = 'clientAuth' | 'serverAuth';

export interface VerifiedPeer {
  identity: ThemisIdentity;
  serial: string; // serialHex: x-themis-cert-serial
  fingerprint256: string; // hex of SHA-256 over the leaf DER
  subject: string;
  /** Hex DER of the issuing CA's name: which intermediate vouches for this peer. */
  issuerName: string;
  /** The issuing CA's subject, for logs and the audit trail. */
  issuer: string;
  /** The issuing CA's kind: the one that may grant the peer's role. */
  issuerKind: CaKind;
  notAfter: Date;
}

/** What a refused leaf says of itself (unverified): for logs and the audit trail. */
export interface ClaimedLeaf {
  subject: string;
  issuer: string;
  serial: string;
}

export type VerifyResult =
  | { ok: true; peer: VerifiedPeer }
  | { ok: false; reason: VerifyReason; message: string; serial?: string; leaf?: ClaimedLeaf };

interface CertInfo {
  fp: string;
  node: NodeX509;
  subject: string;
  subjectName: string; // hex DER of the Name, for exact issuer matching
  issuerName: string;
  issuerDn: string; // the issuer's name as text
  serial: string;
  notBefore: number;
  notAfter: number;
  ca: boolean;
  pathLength: number | undefined;
  keyUsage: number | undefined; // KeyUsageFlags, undefined when the extension is absent
  eku: string[] | undefined;
  kind: KindClaim; // CA kind from the certificate policies
  identity: { ok: true; value: ThemisIdentity } | { ok: false; reason: 'missing_extension' | 'malformed_extension'; message: string };
  verifiedBy: Set<string>; // fingerprints of issuers whose key checked this signature
}

const EKU_OID: Record<Purpose, string> = { serverAuth: '1.3.6.1.5.5.7.3.1', clientAuth: '1.3.6.1.5.5.7.3.2' };

class Fail extends Error {
  leaf?: ClaimedLeaf;
  /** The message without the name of what it is about (for a root, which the caller names). */
  problem?: string;
  constructor(readonly reason: VerifyReason, message: string, readonly serial?: string) {
    super(message);
  }
}

export interface PeerVerifierOptions {
  /** The trusted root, or a trust bundle of several (PEM text, trust-bundle.ts), or one root's DER. */
  root: string | Uint8Array;
  /** Current CRLs (PEM, of one or several CRLs; DER; or already parsed); every CA of a chain must have one. */
  crls: ReadonlyArray<string | Uint8Array | ParsedCrl>;
  clock: Clock;
  cacheSize?: number;
}

export class PeerVerifier {
  private readonly cache: LRUCache<string, CertInfo>;
  private readonly clock: Clock;
  private readonly roots: CertInfo[];
  private crls = new Map<string, { crl: ParsedCrl; checked: Map<string, boolean> }>();
  /** Certificates decoded so far (cache misses); for tests and metrics. */
  parsed = 0;

  constructor(o: PeerVerifierOptions) {
    this.clock = o.clock;
    this.cache = new LRUCache({ max: o.cacheSize ?? 4096 });
    const rootsDer = trustBundleDer(o.root, 'root');
    try {
      this.roots = rootsDer.map((der) => this.info(der, 'root'));
    } catch (e) {
      throw e instanceof Fail ? new PkiError('MALFORMED_PEM', 'root', e.problem ?? e.message) : e;
    }
    this.setCrls(o.crls);
  }

  /** Replaces the CRL set (keeps the highest CRL number per issuer); throws PkiError on bad input. */
  setCrls(crls: ReadonlyArray<string | Uint8Array | ParsedCrl>): void {
    const parsed = crls.flatMap((c, i) => (typeof c === 'string' || c instanceof Uint8Array ? parseCrls(c, `crls[${i}]`) : [c]));
    const next = new Map<string, { crl: ParsedCrl; checked: Map<string, boolean> }>();
    for (const [key, crl] of latestPerIssuer(parsed)) next.set(key, { crl, checked: new Map() });
    this.crls = next;
  }

  /**
   * `revocation: false` checks everything but the CRLs — for a sidecar's own certificate, whose
   * revocation is a state to report, not a reason to stop enforcing everyone else's.
   */
  verify(chain: ReadonlyArray<Uint8Array>, purpose: Purpose = 'clientAuth', o: { revocation?: boolean } = {}): VerifyResult {
    try {
      return { ok: true, peer: this.check(chain, purpose, o.revocation !== false) };
    } catch (e) {
      if (e instanceof Fail) return { ok: false, reason: e.reason, message: e.message, ...(e.serial ? { serial: e.serial } : {}), ...(e.leaf ? { leaf: e.leaf } : {}) };
      throw e;
    }
  }

  private check(chain: ReadonlyArray<Uint8Array>, purpose: Purpose, revocation: boolean): VerifiedPeer {
    if (chain.length === 0) throw new Fail('malformed_certificate', 'no certificate presented');
    const leaf = this.info(chain[0]!, 'certificate 1');
    try {
      return this.checkFrom(leaf, chain, purpose, revocation);
    } catch (e) {
      if (e instanceof Fail) e.leaf = { subject: leaf.subject, issuer: leaf.issuerDn, serial: leaf.serial };
      throw e;
    }
  }

  private checkFrom(leaf: CertInfo, chain: ReadonlyArray<Uint8Array>, purpose: Purpose, revocation: boolean): VerifiedPeer {
    const certs = [leaf, ...chain.slice(1).map((der, i) => this.info(der, `certificate ${i + 2}`))];
    const { path, root } = this.buildPath(leaf, certs.slice(1));
    const now = this.clock.now();
    for (const c of [...path, root]) {
      if (now < c.notBefore) throw new Fail('not_yet_valid', `${c.subject} is not valid before ${new Date(c.notBefore).toISOString()}`, c.serial);
      if (now > c.notAfter) throw new Fail('expired', `${c.subject} expired at ${new Date(c.notAfter).toISOString()}`, c.serial);
    }
    const issuers = [...path.slice(1), root];
    issuers.forEach((c, below) => {
      const signs = c.keyUsage === undefined || (c.keyUsage & x509.KeyUsageFlags.keyCertSign) !== 0;
      if (!c.ca || !signs) throw new Fail('wrong_key_usage', `${c.subject} is not a CA that may sign certificates`, c.serial);
      if (c.pathLength !== undefined && below > c.pathLength) throw new Fail('wrong_key_usage', `${c.subject} allows ${c.pathLength} intermediate(s) below it`, c.serial);
    });
    if (leaf.ca) throw new Fail('wrong_key_usage', `${leaf.subject} is a CA certificate, not an end-entity one`, leaf.serial);
    if (leaf.keyUsage !== undefined && (leaf.keyUsage & x509.KeyUsageFlags.digitalSignature) === 0) {
      throw new Fail('wrong_key_usage', `${leaf.subject} lacks the digitalSignature key usage`, leaf.serial);
    }
    if (leaf.eku !== undefined && !leaf.eku.includes(EKU_OID[purpose])) {
      throw new Fail('wrong_key_usage', `${leaf.subject} is not valid for ${purpose} (extended key usage)`, leaf.serial);
    }
    if (revocation) path.forEach((c, i) => this.checkRevocation(c, issuers[i]!, now));
    if (!leaf.identity.ok) throw new Fail(leaf.identity.reason, leaf.identity.message, leaf.serial);
    const identity = leaf.identity.value;
    const issuer = issuers[0]!;
    // A CA's kind counts only when the root itself signed it: a sub-CA's policy would be its
    // parent CA's say-so (our root's pathLen already forbids them; roots made elsewhere may not).
    const kind: KindClaim = path.length === 2 ? issuer.kind : { kind: undefined, reason: 'none' };
    const mismatch = roleIssuerMismatch(identity.role, kind, leaf.kind, issuer.subject);
    if (mismatch !== undefined || kind.kind === undefined) {
      const why = path.length > 2 ? `${issuer.subject} is not signed by the root itself, so it grants no role` : mismatch;
      throw new Fail('wrong_issuer', `${leaf.subject}: ${why}`, leaf.serial);
    }
    return {
      identity,
      serial: leaf.serial,
      fingerprint256: leaf.fp,
      subject: leaf.subject,
      issuerName: leaf.issuerName,
      issuer: issuer.subject,
      issuerKind: kind.kind,
      notAfter: new Date(leaf.notAfter),
    };
  }

  /** Leaf, then intermediates up to (not including) the trusted root it ends at; signatures checked. */
  private buildPath(leaf: CertInfo, presented: CertInfo[]): { path: CertInfo[]; root: CertInfo } {
    const path = [leaf];
    let cur = leaf;
    for (let depth = 0; depth < 5; depth++) {
      if (this.roots.some((r) => r.fp === cur.fp)) throw new Fail('wrong_key_usage', 'the root itself was presented as the peer certificate', cur.serial);
      const root = this.roots.find((r) => cur.issuerName === r.subjectName && this.signedBy(cur, r));
      if (root) return { path, root };
      const next = presented.find((c) => c !== cur && !path.includes(c) && c.subjectName === cur.issuerName && this.signedBy(cur, c));
      if (!next) throw new Fail('unknown_issuer', `no trusted issuer for ${cur.subject} (issuer not presented, or signature does not verify)`, cur.serial);
      path.push(next);
      cur = next;
    }
    throw new Fail('unknown_issuer', 'chain too long', leaf.serial);
  }

  private signedBy(c: CertInfo, issuer: CertInfo): boolean {
    if (c.verifiedBy.has(issuer.fp)) return true;
    let ok = false;
    try {
      ok = c.node.verify(issuer.node.publicKey);
    } catch {
      ok = false; // an algorithm or key OpenSSL will not use: not signed by this issuer
    }
    if (ok) c.verifiedBy.add(issuer.fp);
    return ok;
  }

  private checkRevocation(c: CertInfo, issuer: CertInfo, now: number): void {
    const entry = this.crls.get(c.issuerName);
    if (!entry) throw new Fail('revocation_unknown', `no CRL from ${issuer.subject}`, c.serial);
    const { crl, checked } = entry;
    if (issuer.keyUsage !== undefined && (issuer.keyUsage & x509.KeyUsageFlags.cRLSign) === 0) {
      throw new Fail('revocation_unknown', `${issuer.subject} may not sign CRLs`, c.serial);
    }
    let good = checked.get(issuer.fp);
    if (good === undefined) {
      try {
        good = verifySignature(crl.hash, crl.tbs, issuer.node.publicKey, crl.signature);
      } catch {
        good = false;
      }
      checked.set(issuer.fp, good);
    }
    if (!good) throw new Fail('revocation_unknown', `the CRL of ${issuer.subject} is not signed by it`, c.serial);
    if (now < crl.thisUpdate.getTime()) throw new Fail('revocation_unknown', `the CRL of ${issuer.subject} is not valid yet`, c.serial);
    if (crl.nextUpdate && now > crl.nextUpdate.getTime()) {
      throw new Fail('revocation_unknown', `the CRL of ${issuer.subject} expired at ${crl.nextUpdate.toISOString()}`, c.serial);
    }
    const hit = crl.revoked.get(c.serial);
    if (hit) throw new Fail('revoked', `${c.subject} (serial ${c.serial}) was revoked at ${hit.date.toISOString()} (${hit.reason})`, c.serial);
  }

  private info(der: Uint8Array, what: string): CertInfo {
    const fp = createHash('sha256').update(der).digest('hex');
    const hit = this.cache.get(fp);
    if (hit) return hit;
    let info: CertInfo;
    try {
      const cert = parseCertDer(der, what);
      const node = new NodeX509(der);
      const bc = cert.getExtension(x509.BasicConstraintsExtension);
      const ku = cert.getExtension(x509.KeyUsagesExtension);
      const eku = cert.getExtension(x509.ExtendedKeyUsageExtension);
      info = {
        fp,
        node,
        subject: cert.subject,
        subjectName: Buffer.from(cert.subjectName.toArrayBuffer()).toString('hex'),
        issuerName: Buffer.from(cert.issuerName.toArrayBuffer()).toString('hex'),
        issuerDn: cert.issuer,
        serial: serialHex(cert),
        notBefore: cert.notBefore.getTime(),
        notAfter: cert.notAfter.getTime(),
        ca: bc?.ca ?? false,
        pathLength: bc?.pathLength,
        keyUsage: ku ? ku.usages : undefined,
        eku: eku ? eku.usages.map(String) : undefined,
        kind: kindClaimOf(cert),
        identity: decodeIdentityOf(cert),
        verifiedBy: new Set(),
      };
    } catch (e) {
      // untrusted bytes: whatever fails to decode is a refusal, never an exception
      const f = new Fail('malformed_certificate', e instanceof PkiError ? e.message : `${what} does not decode (${(e as Error).message})`);
      if (e instanceof PkiError) f.problem = e.problem;
      throw f;
    }
    this.parsed++;
    this.cache.set(fp, info);
    return info;
  }
}

function decodeIdentityOf(cert: x509.X509Certificate): CertInfo['identity'] {
  const exts = cert.extensions.filter((e) => e.type === THEMIS_IDENTITY_OID);
  if (exts.length === 0) return { ok: false, reason: 'missing_extension', message: `${cert.subject} has no ThemisIdentity extension` };
  if (exts.length > 1) return { ok: false, reason: 'malformed_extension', message: `${cert.subject} has the ThemisIdentity extension twice` };
  try {
    return { ok: true, value: decodeIdentity(new Uint8Array(exts[0]!.value)) };
  } catch (e) {
    return { ok: false, reason: 'malformed_extension', message: `${cert.subject}: ${(e as Error).message}` };
  }
}
