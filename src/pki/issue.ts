// Certificate profiles: the root, the three intermediates and the leaves (shard, operator,
// client, etcd server). Pure functions of keys, names, validity and a Random — no files.
import { isIP } from 'node:net';
import type { Clock, Random } from '../runtime.js';
import { invalid } from './errors.js';
import { ISSUER_OF, policyExtension, type CaKind, type LeafProfile } from './ca-kind.js';
import { THEMIS_IDENTITY_OID, encodeIdentity, type ThemisIdentity } from './identity-extension.js';
import { signingAlgorithm } from './keys.js';
import { x509, type CryptoKey, type CryptoProvider } from './x509.js';


export interface Issuer {
  cert: x509.X509Certificate;
  key: CryptoKey;
  /** The WebCrypto provider that holds `key` (a PKCS#11 token's); Node's when absent. */
  crypto?: CryptoProvider;
}

export interface Validity {
  notBefore: Date;
  notAfter: Date;
}

/** Certificates start 5 minutes in the past so a peer whose clock lags a little accepts them. */
export const BACKDATE_MS = 5 * 60_000;
const DAY_MS = 86_400_000;

export function validityFor(clock: Clock, days: number): Validity {
  const now = Math.floor(clock.now() / 1000) * 1000;
  return { notBefore: new Date(now - BACKDATE_MS), notAfter: new Date(now + days * DAY_MS) };
}

/** 128 bits: positive (top bit clear) and always 16 octets (second-highest bit set). */
export function randomSerial(random: Random): string {
  const b = random.bytes(16);
  b[0] = (b[0]! & 0x3f) | 0x40;
  return b.toString('hex');
}

/**
 * The serial as lower-case hex of its integer value, no leading zeros (x-themis-cert-serial).
 * RFC 5280 serials are positive, and ours always are.
 */
export function serialHex(cert: x509.X509Certificate): string {
  return BigInt('0x' + (cert.serialNumber || '0')).toString(16);
}

/** Normalises a serial typed by an operator ("0x00AB…", "ab…") to serialHex form. */
export function normalizeSerial(text: string, field = '--serial'): string {
  const t = text.trim().replace(/^0x/i, '').replace(/:/g, '');
  if (!/^[0-9a-fA-F]{1,40}$/.test(t)) throw invalid(field, `expected the certificate serial in hex, got "${text}"`);
  return BigInt('0x' + t).toString(16);
}

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
export function checkLabel(value: string, field: string): string {
  if (!LABEL.test(value)) throw invalid(field, `"${value}" must be lower-case letters, digits and inner hyphens (1-63 chars)`);
  return value;
}

/** A CA's --cn: plain words, so it cannot smuggle extra name attributes (no `,` `=` `+`). */
export function checkCommonName(value: string, field = '--cn'): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$/.test(value)) throw invalid(field, `"${value}" must be 1-64 letters, digits, spaces, dots, hyphens or underscores`);
  return value;
}

export function checkDnsName(value: string, field = '--dns'): string {
  const labels = value.split('.');
  if (value.length > 253 || !labels.every((l, i) => LABEL.test(l) || (i === 0 && l === '*'))) {
    throw invalid(field, `"${value}" is not a valid DNS name`);
  }
  return value;
}

export function checkIp(value: string, field = '--ip'): string {
  if (isIP(value) === 0) throw invalid(field, `"${value}" is not an IPv4 or IPv6 address`);
  return value;
}

async function keyIdExtensions(publicKey: CryptoKey, issuer?: x509.X509Certificate): Promise<x509.Extension[]> {
  const ski = await x509.SubjectKeyIdentifierExtension.create(publicKey);
  const exts: x509.Extension[] = [ski];
  const issuerSki = (issuer ?? null)?.getExtension(x509.SubjectKeyIdentifierExtension);
  exts.push(new x509.AuthorityKeyIdentifierExtension(issuerSki ? issuerSki.keyId : ski.keyId));
  return exts;
}

export interface RootParams {
  keys: { publicKey: CryptoKey; privateKey: CryptoKey };
  /** The provider holding privateKey (a token's); publicKey is always a Node key. */
  crypto?: CryptoProvider;
  commonName?: string;
  /** Keep this exact name (re-certifying the root's key, break-glass); overrides commonName. */
  subject?: x509.Name;
  validity: Validity;
  random: Random;
}

export async function createRootCa(p: RootParams): Promise<x509.X509Certificate> {
  const name = p.subject ?? `CN=${checkCommonName(p.commonName ?? 'Themis Root CA')}, O=themis-mesh`;
  return x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(p.random),
    subject: name,
    issuer: name,
    ...p.validity,
    publicKey: await x509.PublicKey.create(p.keys.publicKey),
    signingKey: p.keys.privateKey,
    signingAlgorithm: signingAlgorithm(p.keys.privateKey),
    extensions: [
      new x509.BasicConstraintsExtension(true, 1, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      ...(await keyIdExtensions(p.keys.publicKey)),
    ],
  }, p.crypto);
}

export interface IntermediateParams {
  kind: CaKind;
  publicKey: CryptoKey;
  issuer: Issuer;
  commonName?: string;
  /** Keep this exact name (re-certifying an existing CA key); overrides commonName. */
  subject?: x509.Name;
  validity: Validity;
  random: Random;
}

const KIND_TITLE: Record<CaKind, string> = { cluster: 'Cluster', operator: 'Operator', client: 'Client' };

export async function createIntermediateCa(p: IntermediateParams): Promise<x509.X509Certificate> {
  checkWithinIssuer(p.validity, p.issuer);
  return x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(p.random),
    subject: p.subject ?? `CN=${checkCommonName(p.commonName ?? `Themis ${KIND_TITLE[p.kind]} CA`)}, OU=${p.kind}, O=themis-mesh`,
    issuer: p.issuer.cert.subjectName,
    ...p.validity,
    publicKey: await x509.PublicKey.create(p.publicKey),
    signingKey: p.issuer.key,
    signingAlgorithm: signingAlgorithm(p.issuer.key),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      // The kind is what lets this CA grant roles (ca-kind.ts); the root's signature binds it.
      policyExtension(p.kind),
      ...(await keyIdExtensions(p.publicKey, p.issuer.cert)),
    ],
  }, p.issuer.crypto);
}

export interface LeafParams {
  profile: LeafProfile;
  commonName: string;
  publicKey: CryptoKey;
  issuer: Issuer;
  dns?: readonly string[];
  ips?: readonly string[];
  uris?: readonly string[];
  /** Absent only for the etcd server certificate. */
  identity?: ThemisIdentity;
  validity: Validity;
  random: Random;
  /**
   * For tests of the rejection paths only: replace the extended key usages, or put raw bytes
   * in place of the identity extension value.
   */
  overrides?: { extendedKeyUsages?: string[]; identityDer?: Uint8Array };
}

const EKU: Record<LeafProfile, string[]> = {
  shard: [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
  operator: [x509.ExtendedKeyUsage.clientAuth],
  client: [x509.ExtendedKeyUsage.clientAuth],
  // etcd's own gateway connects to itself with its server certificate, so clientAuth too.
  server: [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
};

function checkWithinIssuer(v: Validity, issuer: Issuer): void {
  if (v.notAfter > issuer.cert.notAfter) {
    throw invalid('--days', `the certificate would outlive its CA (CA valid until ${issuer.cert.notAfter.toISOString()})`);
  }
}

export async function issueLeaf(p: LeafParams): Promise<x509.X509Certificate> {
  checkWithinIssuer(p.validity, p.issuer);
  let usage = x509.KeyUsageFlags.digitalSignature;
  if (p.publicKey.algorithm.name !== 'ECDSA') usage |= x509.KeyUsageFlags.keyEncipherment;
  if (p.profile === 'operator') usage |= x509.KeyUsageFlags.nonRepudiation;
  const names = [
    ...(p.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(p.ips ?? []).map((value) => ({ type: 'ip' as const, value })),
    ...(p.uris ?? []).map((value) => ({ type: 'url' as const, value })),
  ];
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(usage, true),
    new x509.ExtendedKeyUsageExtension(p.overrides?.extendedKeyUsages ?? EKU[p.profile], false),
    ...(await keyIdExtensions(p.publicKey, p.issuer.cert)),
    policyExtension(ISSUER_OF[p.profile]), // the issuer's kind, for openssl's policy checks
  ];
  if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names, false));
  const identityDer = p.overrides?.identityDer ?? (p.identity ? encodeIdentity(p.identity) : undefined);
  if (identityDer) extensions.push(new x509.Extension(THEMIS_IDENTITY_OID, false, identityDer));
  return x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(p.random),
    subject: `CN=${p.commonName}, OU=${p.profile}, O=themis-mesh`,
    issuer: p.issuer.cert.subjectName,
    ...p.validity,
    publicKey: await x509.PublicKey.create(p.publicKey),
    signingKey: p.issuer.key,
    signingAlgorithm: signingAlgorithm(p.issuer.key),
    extensions,
  }, p.issuer.crypto);
}
