// X.509 CRLs: building one for a CA (CRL number, thisUpdate/nextUpdate, reasons, `X509 CRL`
// PEM) and parsing one into what verification needs (issuer, number, times, revoked serials).
import * as asn1js from 'asn1js';
import { PkiError, invalid } from './errors.js';
import type { Issuer } from './issue.js';
import { signingAlgorithm } from './keys.js';
import { crlToPem, parsePem } from './pem.js';
import { x509 } from './x509.js';

export const CRL_NUMBER_OID = '2.5.29.20';

/** RFC 5280 reason codes an operator may give (removeFromCRL is for delta CRLs only). */
export const REVOCATION_REASONS = {
  unspecified: 0,
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  certificateHold: 6,
  privilegeWithdrawn: 9,
  aACompromise: 10,
} as const;
export type RevocationReason = keyof typeof REVOCATION_REASONS;

export function parseReason(text: string | undefined, field = '--reason'): RevocationReason {
  if (text === undefined) return 'unspecified';
  if (!(text in REVOCATION_REASONS)) {
    throw invalid(field, `unknown reason "${text}"; use one of ${Object.keys(REVOCATION_REASONS).join(', ')}`);
  }
  return text as RevocationReason;
}

export interface RevocationRecord {
  serial: string; // serialHex form
  reason: RevocationReason;
  revokedAt: string; // ISO 8601
}

export interface CrlParams {
  issuer: Issuer;
  crlNumber: number;
  revoked: readonly RevocationRecord[];
  thisUpdate: Date;
  nextUpdate: Date;
}

const evenHex = (h: string) => (h.length % 2 ? '0' + h : h);

export async function buildCrl(p: CrlParams): Promise<{ der: ArrayBuffer; pem: string }> {
  if (!(p.nextUpdate > p.thisUpdate)) throw invalid('--days', 'nextUpdate must be after thisUpdate');
  const number = new x509.Extension(CRL_NUMBER_OID, false, asn1js.Integer.fromBigInt(BigInt(p.crlNumber)).toBER());
  const ski = p.issuer.cert.getExtension(x509.SubjectKeyIdentifierExtension);
  const extensions: x509.Extension[] = [number];
  if (ski) extensions.push(new x509.AuthorityKeyIdentifierExtension(ski.keyId));
  const crl = await x509.X509CrlGenerator.create({
    issuer: p.issuer.cert.subjectName,
    thisUpdate: p.thisUpdate,
    nextUpdate: p.nextUpdate,
    signingKey: p.issuer.key,
    signingAlgorithm: signingAlgorithm(p.issuer.key),
    extensions,
    entries: p.revoked.map((r) => ({
      serialNumber: evenHex(r.serial),
      revocationDate: new Date(r.revokedAt),
      // RFC 5280 §5.3.1: the reason code "unspecified" SHOULD be absent.
      ...(r.reason === 'unspecified' ? {} : { reason: REVOCATION_REASONS[r.reason] as number as x509.X509CrlReason }),
    })),
  }, p.issuer.crypto);
  return { der: crl.rawData, pem: crlToPem(crl.rawData) };
}

export interface ParsedCrl {
  der: Buffer;
  issuerName: Buffer; // DER of the issuer Name, compared byte for byte
  issuer: string;
  crlNumber: bigint | undefined;
  thisUpdate: Date;
  nextUpdate: Date | undefined;
  revoked: Map<string, { reason: RevocationReason | 'removeFromCRL'; date: Date }>;
  tbs: Buffer; // the signed bytes
  signature: Buffer;
  hash: string; // node hash name for crypto.verify
}

const REASON_NAMES = new Map<number, RevocationReason | 'removeFromCRL'>([
  ...Object.entries(REVOCATION_REASONS).map(([k, v]) => [v, k as RevocationReason] as const),
  [8, 'removeFromCRL'],
]);

/** Accepts PEM (`X509 CRL`) or DER; MALFORMED_PEM naming `file` when it is neither. */
export function parseCrl(input: string | Uint8Array, file: string): ParsedCrl {
  let der: Buffer;
  if (typeof input === 'string') {
    const blocks = parsePem(input, file).filter((b) => b.label === 'X509 CRL');
    if (blocks.length !== 1) throw new PkiError('MALFORMED_PEM', file, `expected one X509 CRL block, found ${blocks.length}`);
    der = blocks[0]!.der;
  } else der = Buffer.from(input);
  let crl: x509.X509Crl;
  try {
    crl = new x509.X509Crl(new Uint8Array(der));
  } catch (e) {
    throw new PkiError('MALFORMED_PEM', file, `is not an X.509 CRL (${(e as Error).message})`);
  }
  const outer = asn1js.fromBER(new Uint8Array(der));
  const parts = outer.result instanceof asn1js.Sequence ? outer.result.valueBlock.value : [];
  const sigBits = parts[2];
  if (parts.length !== 3 || !(sigBits instanceof asn1js.BitString)) throw new PkiError('MALFORMED_PEM', file, 'CRL structure is not SEQUENCE {tbs, algorithm, signature}');
  const numberExt = crl.getExtension(CRL_NUMBER_OID);
  let crlNumber: bigint | undefined;
  if (numberExt) {
    const n = asn1js.fromBER(new Uint8Array(numberExt.value)).result;
    if (!(n instanceof asn1js.Integer)) throw new PkiError('MALFORMED_PEM', file, 'CRL number is not an INTEGER');
    crlNumber = n.toBigInt();
  }
  const revoked: ParsedCrl['revoked'] = new Map();
  for (const e of crl.entries) {
    revoked.set(BigInt('0x' + (e.serialNumber || '0')).toString(16), {
      reason: REASON_NAMES.get(e.reason ?? 0) ?? 'unspecified',
      date: e.revocationDate,
    });
  }
  return {
    der,
    issuerName: Buffer.from(crl.issuerName.toArrayBuffer()),
    issuer: crl.issuer,
    crlNumber,
    thisUpdate: crl.thisUpdate,
    nextUpdate: crl.nextUpdate,
    revoked,
    tbs: Buffer.from(parts[0]!.valueBeforeDecodeView),
    signature: Buffer.from(sigBits.valueBlock.valueHexView),
    hash: (crl.signatureAlgorithm.hash?.name ?? 'SHA-256').replace('SHA-', 'sha'),
  };
}

/**
 * Every CRL of a file: PEM with one or more `X509 CRL` blocks (a CRL bundle, as a root rotation
 * needs: both generations' CRLs in one file), or one DER CRL.
 */
export function parseCrls(input: string | Uint8Array, file: string): ParsedCrl[] {
  if (typeof input !== 'string') return [parseCrl(input, file)];
  const blocks = parsePem(input, file).filter((b) => b.label === 'X509 CRL');
  if (blocks.length === 0) throw new PkiError('MALFORMED_PEM', file, 'contains no X509 CRL block');
  return blocks.map((b, i) => parseCrl(b.der, blocks.length > 1 ? `${file} (CRL ${i + 1})` : file));
}

/** Hex DER of a CRL's issuer Name: the key CRLs of one CA are compared under. */
export function issuerKeyOf(crl: ParsedCrl): string {
  return crl.issuerName.toString('hex');
}

/** The newer of two CRLs of one issuer by CRL number (one without a number loses). */
export function newerCrl(a: ParsedCrl, b: ParsedCrl | undefined): ParsedCrl {
  return !b || (a.crlNumber ?? -1n) > (b.crlNumber ?? -1n) ? a : b;
}

/** One CRL per issuer: the one with the highest CRL number. */
export function latestPerIssuer(crls: Iterable<ParsedCrl>): Map<string, ParsedCrl> {
  const best = new Map<string, ParsedCrl>();
  for (const c of crls) best.set(issuerKeyOf(c), newerCrl(c, best.get(issuerKeyOf(c))));
  return best;
}
