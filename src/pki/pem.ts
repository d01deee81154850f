// Strict PEM reading and writing: labelled BEGIN/END pairs, base64 that round-trips, DER that
// parses. Every failure is a MALFORMED_PEM naming the file and the block.
import { PkiError } from './errors.js';
import { x509 } from './x509.js';

export interface PemBlock {
  label: string;
  der: Buffer;
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END ([A-Z0-9 ]+)-----/g;

export function parsePem(text: string, file: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  let m: RegExpExecArray | null;
  BLOCK.lastIndex = 0;
  while ((m = BLOCK.exec(text)) !== null) {
    const [, label, body, endLabel] = m as unknown as [string, string, string, string];
    const n = blocks.length + 1;
    if (label !== endLabel) throw bad(file, `block ${n} begins "${label}" but ends "${endLabel}"`);
    const b64 = body.replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0 || b64.length === 0) {
      throw bad(file, `block ${n} (${label}) has invalid base64`);
    }
    blocks.push({ label, der: Buffer.from(b64, 'base64') });
  }
  const begins = (text.match(/-----BEGIN /g) ?? []).length;
  if (blocks.length === 0) throw bad(file, 'no complete PEM block (-----BEGIN …----- … -----END …-----) found');
  if (begins !== blocks.length) throw bad(file, `${begins - blocks.length} PEM block(s) without a matching END line`);
  return blocks;
}

export function toPem(label: string, der: ArrayBuffer | Uint8Array): string {
  const b64 = Buffer.from(der instanceof ArrayBuffer ? new Uint8Array(der) : der).toString('base64');
  return `-----BEGIN ${label}-----\n${b64.replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END ${label}-----\n`;
}

export function bad(file: string, problem: string): PkiError {
  return new PkiError('MALFORMED_PEM', file, problem);
}

export function parseCertDer(der: Uint8Array, file: string, what = 'certificate'): x509.X509Certificate {
  try {
    return new x509.X509Certificate(new Uint8Array(der));
  } catch (e) {
    throw bad(file, `${what} does not decode as X.509 (${(e as Error).message})`);
  }
}

/** Every CERTIFICATE block of a PEM file, in order (a chain file gives leaf first). */
export function certsFromPem(text: string, file: string): x509.X509Certificate[] {
  const blocks = parsePem(text, file);
  const certs = blocks.filter((b) => b.label === 'CERTIFICATE');
  if (certs.length === 0) throw bad(file, `contains no CERTIFICATE block (found ${blocks.map((b) => b.label).join(', ')})`);
  return certs.map((b, i) => parseCertDer(b.der, file, `certificate ${i + 1}`));
}

export function certFromPem(text: string, file: string): x509.X509Certificate {
  const certs = certsFromPem(text, file);
  if (certs.length !== 1) throw bad(file, `expected one certificate, found ${certs.length}`);
  return certs[0]!;
}

export function certToPem(cert: x509.X509Certificate): string {
  return toPem('CERTIFICATE', cert.rawData);
}

/** OpenSSL only reads `X509 CRL`; @peculiar/x509 would write `CRL`. */
export function crlToPem(der: ArrayBuffer | Uint8Array): string {
  return toPem('X509 CRL', der);
}
