// The on-disk layout of a PKI directory: one folder per CA (root, cluster, operator, client)
// with its certificate, encrypted key, CRL and state.json (issued certificates, revocations,
// last CRL number), and one folder per leaf. See docs/pki.md "File layout".
import { createPublicKey } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join, resolve } from 'node:path';
import { fsyncPath } from '../fsync-path.js';
import { PkiError } from './errors.js';
import type { RevocationRecord } from './crl.js';
import type { LeafProfile } from './ca-kind.js';
import type { Issuer } from './issue.js';
import { loadPrivateKey } from './keys.js';
import { certFromPem } from './pem.js';
import type { PlannedFile } from './write-plan.js';
import { subtle, type CryptoProvider, type x509 } from './x509.js';
import { loadTokenKey, parseKeyRef } from './pkcs11.js';

export const CA_NAMES = ['root', 'cluster', 'operator', 'client'] as const;
export type CaName = (typeof CA_NAMES)[number];


const LEAF_FOLDER: Record<LeafProfile, string> = { shard: 'shards', operator: 'operators', client: 'clients', server: 'servers' };

export interface IssuedRecord {
  serial: string;
  subject: string;
  profile: LeafProfile | 'root' | 'intermediate';
  name: string;
  notBefore: string;
  notAfter: string;
}

export interface CaState {
  version: 1;
  crlNumber: number; // of the last CRL written; the next one gets crlNumber + 1
  issued: IssuedRecord[];
  revoked: RevocationRecord[];
}

export class PkiLayout {
  readonly dir: string;
  constructor(dir: string) {
    this.dir = resolve(dir);
  }
  caDir(ca: CaName): string {
    return join(this.dir, ca);
  }
  caCert(ca: CaName): string {
    return join(this.dir, ca, 'cert.pem');
  }
  caKey(ca: CaName): string {
    return join(this.dir, ca, 'key.pem');
  }
  /** Where the key is when it lives in a PKCS#11 token (pkcs11.ts): instead of key.pem. */
  caKeyRef(ca: CaName): string {
    return join(this.dir, ca, 'key.pkcs11.json');
  }
  /** Intermediate followed by the root (absent for the root itself). */
  caChain(ca: CaName): string {
    return join(this.dir, ca, 'chain.pem');
  }
  caCrl(ca: CaName): string {
    return join(this.dir, ca, 'crl.pem');
  }
  caState(ca: CaName): string {
    return join(this.dir, ca, 'state.json');
  }
  /**
   * Certificates `themis-pki serve` issued: one IssuedRecord per line, appended and fsynced.
   * The service never rewrites state.json, which the CLI commands own; readState merges both.
   */
  issuedLog(ca: CaName): string {
    return join(this.dir, ca, 'issued.ndjson');
  }
  /** cert.pem, key.pem and chain.pem (leaf followed by its intermediate) of one leaf. */
  leafDir(profile: LeafProfile, name: string): string {
    return join(this.dir, LEAF_FOLDER[profile], name);
  }
}

export function leafFiles(dir: string): { cert: string; key: string; chain: string } {
  return { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem'), chain: join(dir, 'chain.pem') };
}

export async function readText(path: string, what: string): Promise<string> {
  try {
    return await fs.readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new PkiError('NOT_FOUND', path, `no ${what} here`);
    throw new PkiError('NOT_FOUND', path, `cannot read ${what} (${(e as NodeJS.ErrnoException).code})`);
  }
}

function missingCa(layout: PkiLayout, ca: CaName): PkiError {
  const how = ca === 'root' ? 'themis-pki init-root' : `themis-pki create-intermediate --kind ${ca}`;
  return new PkiError('NOT_FOUND', layout.caCert(ca), `no ${ca} CA in ${layout.dir}; run ${how} first (or pass the right --dir)`);
}

export async function caExists(layout: PkiLayout, ca: CaName): Promise<boolean> {
  return fs.access(layout.caCert(ca)).then(() => true, () => false);
}

export async function loadCaCert(layout: PkiLayout, ca: CaName): Promise<x509.X509Certificate> {
  if (!(await caExists(layout, ca))) throw missingCa(layout, ca);
  return certFromPem(await readText(layout.caCert(ca), 'CA certificate'), layout.caCert(ca));
}

/** Whether the CA's key is in a PKCS#11 token (its folder has key.pkcs11.json). */
export async function caKeyInToken(layout: PkiLayout, ca: CaName): Promise<boolean> {
  return fs.access(layout.caKeyRef(ca)).then(() => true, () => false);
}

/**
 * The CA's certificate and its key — decrypted from key.pem, or found in the token that
 * key.pkcs11.json names (`pin` then supplies the PIN); checks that the two belong together.
 */
export async function loadIssuer(layout: PkiLayout, ca: CaName, passphrase: string | undefined, keyPath?: string, pin?: () => Promise<string>): Promise<Issuer> {
  const cert = await loadCaCert(layout, ca);
  if (keyPath === undefined && (await caKeyInToken(layout, ca))) {
    const refFile = layout.caKeyRef(ca);
    const noPin = () => Promise.reject(new PkiError('PASSPHRASE_REQUIRED', '--pin-file', `the ${ca} CA key is in a PKCS#11 token; pass --pin-file FILE`));
    const k = await loadTokenKey(parseKeyRef(await readText(refFile, 'PKCS#11 key reference'), refFile), refFile, pin ?? noPin);
    const spki = Buffer.from(await subtle.exportKey('spki', k.publicKey));
    if (Buffer.compare(spki, Buffer.from(cert.publicKey.rawData)) !== 0) throw new PkiError('INVALID_ARGUMENT', refFile, `names a token key that is not the key of ${layout.caCert(ca)}`);
    return { cert, key: k.privateKey, crypto: k.crypto as unknown as CryptoProvider };
  }
  const file = keyPath ?? layout.caKey(ca);
  const key = await loadPrivateKey(await readText(file, `${ca} CA key`), passphrase, file);
  const spki = createPublicKey(key.keyObject).export({ type: 'spki', format: 'der' });
  if (Buffer.compare(spki, Buffer.from(cert.publicKey.rawData)) !== 0) {
    throw new PkiError('INVALID_ARGUMENT', file, `is not the key of ${layout.caCert(ca)}`);
  }
  return { cert, key: key.privateKey };
}

export async function readState(layout: PkiLayout, ca: CaName): Promise<CaState> {
  const path = layout.caState(ca);
  if (!(await caExists(layout, ca))) throw missingCa(layout, ca);
  let raw: unknown;
  try {
    raw = JSON.parse(await readText(path, 'CA state'));
  } catch (e) {
    if (e instanceof PkiError) throw e;
    throw new PkiError('INVALID_ARGUMENT', path, `is not valid JSON (${(e as Error).message})`);
  }
  const s = raw as Partial<CaState>;
  if (s?.version !== 1 || !Number.isSafeInteger(s.crlNumber) || !Array.isArray(s.issued) || !Array.isArray(s.revoked)) {
    throw new PkiError('INVALID_ARGUMENT', path, 'is not a themis-pki state file (expected version 1, crlNumber, issued[], revoked[])');
  }
  const state = s as CaState;
  const known = new Set(state.issued.map((r) => r.serial));
  for (const r of await readIssuedLog(layout, ca)) {
    if (!known.has(r.serial)) state.issued.push(r);
    known.add(r.serial);
  }
  return state;
}

/** The service's issued records; a torn last line (a crash mid-append, before any answer) is skipped. */
async function readIssuedLog(layout: PkiLayout, ca: CaName): Promise<IssuedRecord[]> {
  let text: string;
  try {
    text = await fs.readFile(layout.issuedLog(ca), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new PkiError('INVALID_ARGUMENT', layout.issuedLog(ca), `cannot read (${(e as NodeJS.ErrnoException).code})`);
  }
  const out: IssuedRecord[] = [];
  for (const line of text.split('\n')) {
    try {
      const r = JSON.parse(line) as IssuedRecord;
      if (typeof r?.serial === 'string') out.push(r);
    } catch {
      // empty or torn line
    }
  }
  return out;
}

/** Appends one record to the service's log and fsyncs it before the certificate is handed out. */
export async function appendIssued(layout: PkiLayout, ca: CaName, record: IssuedRecord): Promise<void> {
  const fh = await fs.open(layout.issuedLog(ca), 'a', 0o600);
  try {
    await fh.write(JSON.stringify(record) + '\n');
    await fh.sync();
  } finally {
    await fh.close();
  }
  fsyncPath(layout.caDir(ca)); // the log's name, the first time
}

export function emptyState(): CaState {
  return { version: 1, crlNumber: 0, issued: [], revoked: [] };
}

export function stateFile(layout: PkiLayout, ca: CaName, state: CaState): PlannedFile {
  return { path: layout.caState(ca), kind: 'state', contents: JSON.stringify(state, null, 2) + '\n', replace: 'always' };
}
