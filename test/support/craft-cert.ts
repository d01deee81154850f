// Certificates and CRLs our issuer never makes (a CA without keyCertSign, a leaf signed by the
// root, a CRL without a number…), crafted with @peculiar/x509 and signed by real keys, so the
// verifiers' refusals of them can be tested. Mutation testing found these checks unguarded.
import { randomBytes, webcrypto } from 'node:crypto';
import { policyExtension, type CaKind } from '../../src/pki/ca-kind.js';
import { THEMIS_IDENTITY_OID } from '../../src/pki/identity-extension.js';
import { x509 } from '../../src/pki/x509.js';

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 86_400_000;

export interface Crafted {
  cert: x509.X509Certificate;
  key: webcrypto.CryptoKey;
  der: Uint8Array;
  pem: string;
}

export interface CraftOptions {
  /** Signs the certificate; its subject becomes the issuer name. */
  issuer: { cert: x509.X509Certificate; key: webcrypto.CryptoKey };
  cn: string;
  ca?: boolean;
  /** x509.KeyUsageFlags; absent: no key usage extension. */
  ku?: number;
  /** ThemisIdentity extension values (DER), each one extension. */
  identity?: Uint8Array[];
  kind?: CaKind;
  notBefore?: Date;
  notAfter?: Date;
}

/** One certificate exactly as described; valid from a day before `now` for ten days unless told. */
export async function craftCert(o: CraftOptions, now = Date.now()): Promise<Crafted> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const exts: x509.Extension[] = [new x509.BasicConstraintsExtension(o.ca ?? false, undefined, true)];
  if (o.ku !== undefined) exts.push(new x509.KeyUsagesExtension(o.ku, true));
  if (!o.ca) exts.push(new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]));
  if (o.kind) exts.push(policyExtension(o.kind));
  for (const id of o.identity ?? []) exts.push(new x509.Extension(THEMIS_IDENTITY_OID, false, id));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '1' + randomBytes(8).toString('hex'),
    subject: `CN=${o.cn}, O=themis-mesh`,
    issuer: o.issuer.cert.subjectName,
    notBefore: o.notBefore ?? new Date(now - DAY),
    notAfter: o.notAfter ?? new Date(now + 10 * DAY),
    publicKey: keys.publicKey,
    signingKey: o.issuer.key,
    signingAlgorithm: ALG,
    extensions: exts,
  });
  return { cert, key: keys.privateKey, der: new Uint8Array(cert.rawData), pem: cert.toString('pem') + '\n' };
}

/** A CRL by `issuer` with no CRL number extension (our builder always writes one). */
export async function crlWithoutNumber(issuer: { cert: x509.X509Certificate; key: webcrypto.CryptoKey }, now = Date.now()): Promise<string> {
  const crl = await x509.X509CrlGenerator.create({
    issuer: issuer.cert.subjectName,
    thisUpdate: new Date(now - DAY),
    nextUpdate: new Date(now + DAY),
    signingKey: issuer.key,
    signingAlgorithm: ALG,
    entries: [],
  });
  return x509.PemConverter.encode(crl.rawData, 'X509 CRL') + '\n';
}
