// `themis-pki inspect`: what a certificate, chain, CRL or key file says, as a plain object for
// --json and as readable text — subject, SANs, validity, serial and the decoded identity.
import { X509Certificate as NodeX509, createHash, createPrivateKey } from 'node:crypto';
import { parseCrl } from './crl.js';
import { ISSUER_KIND_OF_ROLE, kindClaimOf, roleIssuerMismatch } from './ca-kind.js';
import { THEMIS_IDENTITY_OID, decodeIdentity, identityToJson, type ThemisIdentity } from './identity-extension.js';
import { serialHex } from './issue.js';
import { keyTypeOf } from './keys.js';
import { bad, parseCertDer, parsePem } from './pem.js';
import { x509 } from './x509.js';

export type Inspected = Record<string, unknown> & { type: 'certificate' | 'crl' | 'private-key' };

const KU_NAMES: Array<[number, string]> = Object.entries(x509.KeyUsageFlags)
  .filter(([, v]) => typeof v === 'number')
  .map(([k, v]) => [v as number, k]);
const EKU_NAMES = new Map<string, string>(Object.entries(x509.ExtendedKeyUsage).map(([k, v]) => [v, k]));

export function inspectCertificate(cert: x509.X509Certificate): Inspected {
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  const names = san ? san.names.items.map((n) => ({ type: n.type, value: n.value })) : [];
  const ku = cert.getExtension(x509.KeyUsagesExtension);
  const eku = cert.getExtension(x509.ExtendedKeyUsageExtension);
  const bc = cert.getExtension(x509.BasicConstraintsExtension);
  const der = Buffer.from(cert.rawData);
  const ext = cert.extensions.find((e) => e.type === THEMIS_IDENTITY_OID);
  let identity: unknown = null;
  if (ext) {
    try {
      identity = identityToJson(decodeIdentity(new Uint8Array(ext.value)));
    } catch (e) {
      identity = { error: (e as Error).message };
    }
  }
  const claim = kindClaimOf(cert);
  let keyType: string;
  try {
    keyType = keyTypeOf(new NodeX509(der).publicKey, 'certificate');
  } catch {
    keyType = cert.publicKey.algorithm.name;
  }
  return {
    type: 'certificate',
    subject: cert.subject,
    issuer: cert.issuer,
    serial: serialHex(cert),
    notBefore: cert.notBefore.toISOString(),
    notAfter: cert.notAfter.toISOString(),
    keyType,
    ca: bc?.ca ?? false,
    ...(bc?.pathLength !== undefined ? { pathLength: bc.pathLength } : {}),
    keyUsage: ku ? KU_NAMES.filter(([bit]) => (ku.usages & bit) !== 0).map(([, n]) => n) : [],
    extendedKeyUsage: eku ? eku.usages.map((u) => EKU_NAMES.get(String(u)) ?? String(u)) : [],
    san: {
      dns: names.filter((n) => n.type === 'dns').map((n) => n.value),
      ip: names.filter((n) => n.type === 'ip').map((n) => n.value),
      uri: names.filter((n) => n.type === 'url').map((n) => n.value),
    },
    identity,
    // For a CA: the kind of roles it may grant. For a leaf: the kind of its issuer, as it claims.
    caKind: claim.kind ?? (claim.reason === 'several' ? 'several (invalid)' : null),
    sha256: createHash('sha256').update(der).digest('hex'),
  };
}

/**
 * Whether a leaf's role may come from its issuer: judged on the issuer's certificate when the
 * file holds it (a chain.pem), else on the kind the leaf itself claims.
 */
function roleIssuer(leaf: x509.X509Certificate, all: x509.X509Certificate[]): string | undefined {
  const ext = leaf.extensions.find((e) => e.type === THEMIS_IDENTITY_OID);
  let identity: ThemisIdentity;
  try {
    if (!ext) return undefined;
    identity = decodeIdentity(new Uint8Array(ext.value));
  } catch {
    return undefined;
  }
  const want = ISSUER_KIND_OF_ROLE[identity.role];
  const named = (c: x509.X509Certificate) => c !== leaf && Buffer.from(c.subjectName.toArrayBuffer()).equals(Buffer.from(leaf.issuerName.toArrayBuffer()));
  const issuer = all.find((c) => named(c) && signedBy(leaf, c));
  const own = kindClaimOf(leaf);
  if (issuer) {
    const bad = roleIssuerMismatch(identity.role, kindClaimOf(issuer), own, issuer.subject);
    return bad ? `MISMATCH: ${bad}` : `ok: the ${want} CA may grant ${identity.role} (trust in the root is not checked here)`;
  }
  if (all.some(named)) return `MISMATCH: the certificate named ${leaf.issuer} in this file did not sign it`;
  // Without the issuer, only a contradiction can be told: the leaf's own claim proves nothing.
  if (own.kind !== undefined && own.kind !== want) return `MISMATCH: the certificate's policy names the ${own.kind} CA, but a ${identity.role} must come from the ${want} CA`;
  return `unknown: the issuer's certificate is not in this file (inspect the chain.pem); a ${identity.role} must come from the ${want} CA`;
}

function signedBy(leaf: x509.X509Certificate, issuer: x509.X509Certificate): boolean {
  try {
    return new NodeX509(Buffer.from(leaf.rawData)).verify(new NodeX509(Buffer.from(issuer.rawData)).publicKey);
  } catch {
    return false;
  }
}

/** Everything in one file: PEM blocks of certificates, CRLs and keys, or a single DER object. */
export function inspectFile(data: Buffer, file: string): Inspected[] {
  const text = data.toString('latin1');
  if (!text.includes('-----BEGIN')) {
    try {
      const cert = new x509.X509Certificate(new Uint8Array(data));
      const verdict = roleIssuer(cert, [cert]);
      return [{ ...inspectCertificate(cert), ...(verdict ? { roleIssuer: verdict } : {}) }];
    } catch {
      try {
        return [inspectCrlDer(data, file)];
      } catch {
        throw bad(file, 'is neither PEM (no -----BEGIN line) nor a DER certificate or CRL');
      }
    }
  }
  const blocks = parsePem(text, file);
  const certs = new Map(blocks.flatMap((b, i) => (b.label === 'CERTIFICATE' ? [[i, parseCertDer(b.der, file, `certificate ${i + 1}`)] as const] : [])));
  return blocks.map((b, i): Inspected => {
    const cert = certs.get(i);
    if (cert) {
      const verdict = roleIssuer(cert, [...certs.values()]);
      return { ...inspectCertificate(cert), ...(verdict ? { roleIssuer: verdict } : {}) };
    }
    if (b.label === 'X509 CRL') return inspectCrlDer(b.der, file);
    if (b.label === 'ENCRYPTED PRIVATE KEY') return { type: 'private-key', encrypted: true };
    if (b.label === 'PRIVATE KEY') {
      let keyType: string;
      try {
        keyType = keyTypeOf(createPrivateKey({ key: b.der, format: 'der', type: 'pkcs8' }), file);
      } catch (e) {
        throw bad(file, `block ${i + 1} is not a valid private key (${(e as Error).message})`);
      }
      return { type: 'private-key', encrypted: false, keyType };
    }
    throw bad(file, `block ${i + 1} is a "${b.label}", which inspect does not read`);
  });
}

function inspectCrlDer(der: Buffer, file: string): Inspected {
  const crl = parseCrl(der, file);
  return {
    type: 'crl',
    issuer: crl.issuer,
    crlNumber: crl.crlNumber === undefined ? null : crl.crlNumber.toString(),
    thisUpdate: crl.thisUpdate.toISOString(),
    nextUpdate: crl.nextUpdate ? crl.nextUpdate.toISOString() : null,
    revoked: [...crl.revoked].map(([serial, r]) => ({ serial, reason: r.reason, date: r.date.toISOString() })),
  };
}

/** Indented "key: value" lines; arrays joined by ", ", nested objects indented. */
export function renderText(items: Inspected[]): string {
  const lines: string[] = [];
  const put = (obj: Record<string, unknown>, indent: string) => {
    for (const [k, v] of Object.entries(obj)) {
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
        lines.push(`${indent}${k}:`);
        put(v as Record<string, unknown>, indent + '  ');
      } else if (Array.isArray(v) && v.some((x) => typeof x === 'object')) {
        lines.push(`${indent}${k}:${v.length === 0 ? ' (none)' : ''}`);
        for (const x of v) lines.push(`${indent}  - ${Object.entries(x as object).map(([a, b]) => `${a}=${String(b)}`).join(' ')}`);
      } else {
        lines.push(`${indent}${k}: ${Array.isArray(v) ? v.join(', ') || '(none)' : String(v)}`);
      }
    }
  };
  items.forEach((it, i) => {
    if (items.length > 1) lines.push(`[${i + 1}] ${it.type}`);
    put(it, items.length > 1 ? '  ' : '');
  });
  return lines.join('\n') + '\n';
}
