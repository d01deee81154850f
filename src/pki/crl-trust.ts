// Deciding whether a CRL found somewhere untrusted (etcd) may be applied: it parses, its
// issuer is a trusted root (one of a trust bundle's) or a CA certificate such a root signed, the issuer's signature over it
// verifies, and its CRL number is higher than the one already held for that issuer.
// The value in etcd is the CRL PEM followed by the issuing CA's certificate (absent for the
// root), so a sidecar can check CRLs of CAs it has not met in a chain yet.
import { X509Certificate as NodeX509, verify as verifySignature } from 'node:crypto';
import { kindClaimOf, type CaKind } from './ca-kind.js';
import { issuerKeyOf, parseCrl, type ParsedCrl } from './crl.js';
import { parsePem } from './pem.js';
import { trustBundleDer } from './trust-bundle.js';
import { x509 } from './x509.js';
import type { Clock } from '../runtime.js';

export const CRL_REJECT_REASONS = ['malformed', 'unknown_issuer', 'bad_signature', 'no_crl_number', 'not_newer'] as const;
export type CrlRejectReason = (typeof CRL_REJECT_REASONS)[number];

export interface TrustedCrl {
  crl: ParsedCrl;
  /** The value as published (CRL + issuer certificate), to cache on disk verbatim. */
  published: string;
  /** Hex DER of the issuer's Name: the key CRLs are compared under. */
  issuerKey: string;
  /** Signed by the trusted root itself (else by the CA certificate carried). */
  issuerIsRoot: boolean;
  /** 'root', or the kind the issuing intermediate's policy names (undefined: none or several). */
  issuerKind: CaKind | 'root' | undefined;
}

export type CrlCheck =
  | { ok: true; value: TrustedCrl }
  /** `duplicate`: the very CRL already held (a re-read, not an attack). */
  | { ok: false; reason: CrlRejectReason; message: string; issuer?: string; duplicate?: boolean };



interface Root {
  node: NodeX509;
  subjectKey: string;
}

function nameKey(cert: NodeX509): string {
  return Buffer.from(new x509.X509Certificate(cert.raw).subjectName.toArrayBuffer()).toString('hex');
}

export class CrlTrust {
  private readonly roots: Root[];

  /** `rootPem`: the trusted root, or a trust bundle of several (trust-bundle.ts). Throws PkiError. */
  constructor(rootPem: string, private readonly clock: Clock) {
    this.roots = trustBundleDer(rootPem, 'root').map((der) => {
      const node = new NodeX509(der);
      return { node, subjectKey: nameKey(node) };
    });
  }

  /**
   * Checks a published value against the CRL number held for its issuer (undefined: none
   * held) and, for an intermediate, against the root's CRL. Never throws; every refusal names
   * a reason.
   */
  check(published: string, held: (issuerKey: string) => ParsedCrl | undefined, revokedByRoot: (serial: string, rootKey: string) => boolean = () => false): CrlCheck {
    try {
      return this.checkOrThrow(published, held, revokedByRoot);
    } catch (e) {
      // Anything a parser trips over (a certificate Node reads but @peculiar/x509 does not…).
      return { ok: false, reason: 'malformed', message: (e as Error).message };
    }
  }

  private checkOrThrow(published: string, held: (issuerKey: string) => ParsedCrl | undefined, revokedByRoot: (serial: string, rootKey: string) => boolean): CrlCheck {
    let crl: ParsedCrl;
    let issuerPem: string | undefined;
    try {
      const blocks = parsePem(published, 'value');
      const crls = blocks.filter((b) => b.label === 'X509 CRL');
      const certs = blocks.filter((b) => b.label === 'CERTIFICATE');
      if (crls.length !== 1 || certs.length > 1 || blocks.length !== crls.length + certs.length) {
        return { ok: false, reason: 'malformed', message: 'expected one X509 CRL block, optionally followed by the issuing CA certificate' };
      }
      crl = parseCrl(crls[0]!.der, 'value');
      issuerPem = certs[0] ? published.slice(published.indexOf('-----BEGIN CERTIFICATE-----')) : undefined;
    } catch (e) {
      return { ok: false, reason: 'malformed', message: (e as Error).message };
    }
    const issuerKey = issuerKeyOf(crl);
    const issuer = this.issuerOf(issuerKey, issuerPem, crl.issuer);
    if (!issuer.ok) return issuer;
    const issuerIsRoot = issuer.root === undefined;
    if (issuer.root && revokedByRoot(BigInt('0x' + issuer.node.serialNumber).toString(16), issuer.root.subjectKey)) {
      return { ok: false, reason: 'unknown_issuer', message: `${crl.issuer} is revoked by the root's CRL; its CRLs count for nothing`, issuer: crl.issuer };
    }
    let good = false;
    try {
      good = verifySignature(crl.hash, crl.tbs, issuer.node.publicKey, crl.signature);
    } catch {
      good = false;
    }
    if (!good) return { ok: false, reason: 'bad_signature', message: `the CRL is not signed by ${crl.issuer}`, issuer: crl.issuer };
    if (crl.crlNumber === undefined) return { ok: false, reason: 'no_crl_number', message: `the CRL of ${crl.issuer} has no CRL number, so it cannot be ordered`, issuer: crl.issuer };
    const have = held(issuerKey);
    if (have && have.crlNumber !== undefined && crl.crlNumber <= have.crlNumber) {
      const duplicate = have.der.equals(crl.der);
      return { ok: false, reason: 'not_newer', message: `CRL number ${crl.crlNumber} of ${crl.issuer} is not higher than the one in force (${have.crlNumber})`, issuer: crl.issuer, duplicate };
    }
    const issuerKind = issuerIsRoot ? 'root' : kindClaimOf(new x509.X509Certificate(issuer.node.raw)).kind;
    return { ok: true, value: { crl, published, issuerKey, issuerIsRoot, issuerKind } };
  }

  /**
   * A trusted root itself, or the presented CA certificate if a trusted root signed it and it may
   * sign CRLs (`root`: that root).
   */
  private issuerOf(issuerKey: string, pem: string | undefined, name: string): { ok: true; node: NodeX509; root?: Root } | { ok: false; reason: CrlRejectReason; message: string; issuer: string } {
    const self = this.roots.find((r) => r.subjectKey === issuerKey);
    if (self) return { ok: true, node: self.node };
    const no = (message: string) => ({ ok: false as const, reason: 'unknown_issuer' as const, message, issuer: name });
    if (!pem) return no(`${name} is not the root and the value carries no issuer certificate`);
    let cert: NodeX509;
    try {
      cert = new NodeX509(pem);
    } catch (e) {
      return no(`the issuer certificate does not parse (${(e as Error).message})`);
    }
    if (nameKey(cert) !== issuerKey) return no(`the certificate carried is for ${cert.subject.replace(/\n/g, ', ')}, not the CRL's issuer ${name}`);
    const root = this.roots.find((r) => {
      try {
        return cert.checkIssued(r.node) && cert.verify(r.node.publicKey);
      } catch {
        return false;
      }
    });
    if (!root) return no(`${name} is not a CA certified by ${this.roots.length > 1 ? 'a' : 'the'} trusted root`);
    if (!cert.ca) return no(`${name} is not a CA certificate`);
    const now = this.clock.now();
    if (now < Date.parse(cert.validFrom) || now > Date.parse(cert.validTo)) return no(`${name} is outside its validity period`);
    const ku = new x509.X509Certificate(cert.raw).getExtension(x509.KeyUsagesExtension);
    if (ku && (ku.usages & x509.KeyUsageFlags.cRLSign) === 0) return no(`${name} lacks the cRLSign key usage`);
    return { ok: true, node: cert, root };
  }
}
