// The themis-pki operations as library calls: each builds every output in memory, then writes
// it all at once through write-plan (or nothing). The CLI and the test fixture both use these.
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Clock, Random } from '../runtime.js';
import { ISSUER_OF, type CaKind } from './ca-kind.js';
import {
  CA_NAMES, emptyState, leafFiles, loadCaCert, loadIssuer, readState, stateFile, caExists,
  type CaName, type CaState, type IssuedRecord, type PkiLayout,
} from './ca-store.js';
import { buildCrl, type RevocationReason } from './crl.js';
import { PkiError, invalid } from './errors.js';
import {
  createIntermediateCa, createRootCa, issueLeaf, serialHex, validityFor,
  type Issuer, type LeafParams, type Validity,
} from './issue.js';
import { MIN_PASSPHRASE_LENGTH, exportPrivateKeyPem, generateKeyPair, type KeyType } from './keys.js';
import { certToPem } from './pem.js';
import type { LeafProfileParams } from './profiles.js';
import { writeFiles, type PlannedFile, type WrittenFile } from './write-plan.js';
import type { CryptoKey, CryptoProvider, x509 } from './x509.js';
import { generateTokenKey } from './pkcs11.js';

export interface PkiContext {
  layout: PkiLayout;
  clock: Clock;
  random: Random;
  force: boolean;
  /** PBKDF2 rounds for keys this context encrypts (default PBKDF2_ITERATIONS; fixtures use fewer). */
  kdfIterations?: number;
  /** The PKCS#11 user PIN, asked for only when a CA key is (or goes) in a token. */
  pkcs11Pin?: () => Promise<string>;
}

/** Where a new CA key is generated instead of memory + encrypted key.pem. */
export interface NewKeyInToken {
  module: string;
  token: string;
  /** CKA_LABEL of the new key (default themis-{ca}). */
  keyLabel?: string;
}

/** The new CA key: generated in memory and written encrypted, or generated inside a token. */
async function newCaKey(ctx: PkiContext, ca: CaName, keyType: KeyType, passphrase: string | undefined, token: NewKeyInToken | undefined): Promise<{ keys: { publicKey: CryptoKey; privateKey: CryptoKey }; crypto?: CryptoProvider; file: () => Promise<PlannedFile> }> {
  if (token) {
    const pin = ctx.pkcs11Pin ?? (() => Promise.reject(invalid('--pin-file', 'a PKCS#11 token needs its user PIN')));
    const k = await generateTokenKey(token.module, token.token, token.keyLabel ?? `themis-${ca}`, keyType, pin);
    return {
      keys: k,
      crypto: k.crypto as unknown as CryptoProvider,
      file: async () => ({ path: ctx.layout.caKeyRef(ca), kind: 'pkcs11-key-reference', contents: JSON.stringify(k.ref, null, 2) + '\n' }),
    };
  }
  const p = checkNewPassphrase(passphrase ?? '', ca === 'root' ? 'passphrase' : 'new passphrase');
  const keys = await generateKeyPair(keyType);
  return { keys, file: async () => ({ path: ctx.layout.caKey(ca), kind: 'private-key', contents: await exportPrivateKeyPem(keys.privateKey, p, ctx.kdfIterations) }) };
}

export interface CertSummary {
  subject: string;
  issuer: string;
  serial: string;
  notBefore: string;
  notAfter: string;
}

export interface CommandResult {
  written: WrittenFile[];
  certificate?: CertSummary;
  crl?: { ca: CaName; crlNumber: number; revoked: number; thisUpdate: string; nextUpdate: string };
  revocation?: { ca: CaName; serial: string; reason: RevocationReason; revokedAt: string };
}

export const DEFAULT_DAYS = { root: 7300, intermediate: 1825, leaf: 365, rootCrl: 365, crl: 30 } as const;

export function summary(cert: x509.X509Certificate): CertSummary {
  return {
    subject: cert.subject,
    issuer: cert.issuer,
    serial: serialHex(cert),
    notBefore: cert.notBefore.toISOString(),
    notAfter: cert.notAfter.toISOString(),
  };
}

export function issuedRecord(cert: x509.X509Certificate, profile: IssuedRecord['profile'], name: string): IssuedRecord {
  const s = summary(cert);
  return { serial: s.serial, subject: s.subject, profile, name, notBefore: s.notBefore, notAfter: s.notAfter };
}

function checkNewPassphrase(p: string, field: string): string {
  if (p.length < MIN_PASSPHRASE_LENGTH) throw invalid(field, `a new CA key needs a passphrase of at least ${MIN_PASSPHRASE_LENGTH} characters`);
  return p;
}

async function crlFile(ctx: PkiContext, ca: CaName, issuer: Issuer, state: CaState, days: number): Promise<[PlannedFile, CommandResult['crl']]> {
  const now = ctx.clock.now();
  const thisUpdate = new Date(Math.floor(now / 1000) * 1000);
  const nextUpdate = new Date(thisUpdate.getTime() + days * 86_400_000);
  state.crlNumber += 1;
  const { pem } = await buildCrl({ issuer, crlNumber: state.crlNumber, revoked: state.revoked, thisUpdate, nextUpdate });
  const info = { ca, crlNumber: state.crlNumber, revoked: state.revoked.length, thisUpdate: thisUpdate.toISOString(), nextUpdate: nextUpdate.toISOString() };
  return [{ path: ctx.layout.caCrl(ca), kind: 'crl', contents: pem, replace: 'always' }, info];
}

export interface InitRootOptions {
  /** For key.pem; unused with `pkcs11`. */
  passphrase?: string;
  keyType: KeyType;
  days?: number;
  crlDays?: number;
  commonName?: string;
  pkcs11?: NewKeyInToken;
}

/** Self-signed root, its key (encrypted key.pem, or in a token), state and a first (empty) CRL. */
export async function initRoot(ctx: PkiContext, o: InitRootOptions): Promise<CommandResult> {
  const key = await newCaKey(ctx, 'root', o.keyType, o.passphrase, o.pkcs11);
  const cert = await createRootCa({ keys: key.keys, crypto: key.crypto, commonName: o.commonName, validity: validityFor(ctx.clock, o.days ?? DEFAULT_DAYS.root), random: ctx.random });
  const state = emptyState();
  state.issued.push(issuedRecord(cert, 'root', 'root'));
  const L = ctx.layout;
  const [crl, crlInfo] = await crlFile(ctx, 'root', { cert, key: key.keys.privateKey, crypto: key.crypto }, state, o.crlDays ?? DEFAULT_DAYS.rootCrl);
  const written = await writeFiles(
    [
      { path: L.caCert('root'), kind: 'certificate', contents: certToPem(cert) },
      await key.file(),
      { ...crl, replace: 'force' },
      { ...stateFile(L, 'root', state), replace: 'force' },
    ],
    ctx.force,
  );
  return { written, certificate: summary(cert), crl: crlInfo };
}

export interface IntermediateOptions {
  kind: CaKind;
  rootPassphrase: string | undefined;
  /** For the new key.pem; unused with `pkcs11`. */
  newPassphrase?: string;
  rootKeyPath?: string;
  keyType: KeyType;
  days?: number;
  crlDays?: number;
  commonName?: string;
  pkcs11?: NewKeyInToken;
}

/** An intermediate signed by the root, with chain.pem and a first CRL; recorded at the root. */
export async function createIntermediate(ctx: PkiContext, o: IntermediateOptions): Promise<CommandResult> {
  if (!o.pkcs11) checkNewPassphrase(o.newPassphrase ?? '', 'new passphrase');
  const L = ctx.layout;
  const root = await loadIssuer(L, 'root', o.rootPassphrase, o.rootKeyPath, ctx.pkcs11Pin);
  const rootState = await readState(L, 'root');
  // Re-creating with --force keeps the CA's CRL numbering and records, so CRL numbers only grow.
  const state = ctx.force && (await caExists(L, o.kind)) ? await readState(L, o.kind) : emptyState();
  const key = await newCaKey(ctx, o.kind, o.keyType, o.newPassphrase, o.pkcs11);
  const validity = validityFor(ctx.clock, o.days ?? DEFAULT_DAYS.intermediate);
  const cert = await createIntermediateCa({ kind: o.kind, publicKey: key.keys.publicKey, issuer: root, commonName: o.commonName, validity, random: ctx.random });
  rootState.issued.push(issuedRecord(cert, 'intermediate', o.kind));
  const [crl, crlInfo] = await crlFile(ctx, o.kind, { cert, key: key.keys.privateKey, crypto: key.crypto }, state, o.crlDays ?? DEFAULT_DAYS.crl);
  const written = await writeFiles(
    [
      { path: L.caCert(o.kind), kind: 'certificate', contents: certToPem(cert) },
      await key.file(),
      { path: L.caChain(o.kind), kind: 'chain', contents: certToPem(cert) + certToPem(root.cert) },
      { ...crl, replace: 'force' },
      { ...stateFile(L, o.kind, state), replace: 'force' },
      stateFile(L, 'root', rootState),
    ],
    ctx.force,
  );
  return { written, certificate: summary(cert), crl: crlInfo };
}

/**
 * Re-certifies an existing intermediate: the root signs the CA's own key and exact name again,
 * now with its kind's policy (a PKI made before roles were bound to their CA). Certificates the
 * CA issued stay valid (same name, same key); every chain.pem under the PKI folder that carries
 * the old CA certificate is rewritten with the new one. The CA's key is not needed.
 */
export async function recertifyIntermediate(ctx: PkiContext, o: { kind: CaKind; rootPassphrase: string | undefined; rootKeyPath?: string; days?: number }): Promise<CommandResult> {
  const L = ctx.layout;
  const root = await loadIssuer(L, 'root', o.rootPassphrase, o.rootKeyPath, ctx.pkcs11Pin);
  const rootState = await readState(L, 'root');
  const old = await loadCaCert(L, o.kind);
  const validity = validityFor(ctx.clock, o.days ?? DEFAULT_DAYS.intermediate);
  const publicKey = await old.publicKey.export();
  const cert = await createIntermediateCa({ kind: o.kind, publicKey, issuer: root, subject: old.subjectName, validity, random: ctx.random });
  rootState.issued.push(issuedRecord(cert, 'intermediate', o.kind));
  const oldPem = certToPem(old).trim();
  const chains = (await leafChainFiles(L)).filter((f) => f.contents.includes(oldPem));
  const written = await writeFiles(
    [
      { path: L.caCert(o.kind), kind: 'certificate', contents: certToPem(cert), replace: 'always' },
      { path: L.caChain(o.kind), kind: 'chain', contents: certToPem(cert) + certToPem(root.cert), replace: 'always' },
      ...chains.map((f): PlannedFile => ({ path: f.path, kind: 'chain', contents: f.contents.replace(oldPem, certToPem(cert).trim()), replace: 'always' })),
      stateFile(L, 'root', rootState),
    ],
    ctx.force,
  );
  return { written, certificate: summary(cert) };
}

/**
 * Break-glass for an expired (or expiring) root: the root signs its own key and exact name again
 * with a new validity and serial. Every intermediate and CRL it signed still verifies under the
 * new certificate (same key, same name); intermediates and leaves that expired with it need
 * `recertify-intermediate` and new certificates. Every intermediate's chain.pem is rewritten.
 */
export async function recertifyRoot(ctx: PkiContext, o: { rootPassphrase: string | undefined; rootKeyPath?: string; days?: number }): Promise<CommandResult> {
  const L = ctx.layout;
  const root = await loadIssuer(L, 'root', o.rootPassphrase, o.rootKeyPath, ctx.pkcs11Pin);
  const state = await readState(L, 'root');
  const validity = validityFor(ctx.clock, o.days ?? DEFAULT_DAYS.root);
  const publicKey = await root.cert.publicKey.export();
  const cert = await createRootCa({ keys: { publicKey, privateKey: root.key }, crypto: root.crypto, subject: root.cert.subjectName, validity, random: ctx.random });
  state.issued.push(issuedRecord(cert, 'root', 'root'));
  const chains: PlannedFile[] = [];
  for (const ca of CA_NAMES) {
    if (ca === 'root' || !(await caExists(L, ca))) continue;
    chains.push({ path: L.caChain(ca), kind: 'chain', contents: certToPem(await loadCaCert(L, ca)) + certToPem(cert), replace: 'always' });
  }
  const written = await writeFiles([{ path: L.caCert('root'), kind: 'certificate', contents: certToPem(cert), replace: 'always' }, ...chains, stateFile(L, 'root', state)], ctx.force);
  return { written, certificate: summary(cert) };
}

/** Every leaf's chain.pem in the PKI folder, with its text. */
async function leafChainFiles(L: PkiLayout): Promise<{ path: string; contents: string }[]> {
  const out: { path: string; contents: string }[] = [];
  for (const profile of ['shard', 'operator', 'client', 'server'] as const) {
    const folder = dirname(L.leafDir(profile, 'x'));
    for (const name of await readdir(folder).catch(() => [] as string[])) {
      const path = leafFiles(join(folder, name)).chain;
      const contents = await readFile(path, 'utf8').catch(() => undefined);
      if (contents !== undefined) out.push({ path, contents });
    }
  }
  return out;
}

export interface LeafOptions {
  params: LeafProfileParams;
  /** Folder name under shards/, operators/, clients/ or servers/ (the shard id or --name). */
  name: string;
  caPassphrase: string | undefined;
  caKeyPath?: string;
  /** An already opened CA (saves the ~0.1 s key derivation when issuing many leaves). */
  issuer?: Issuer;
  keyType: KeyType;
  days?: number;
  validity?: Validity;
  /** Encrypt the leaf key with this passphrase; unencrypted when absent. */
  keyPassphrase?: string;
  outDir?: string;
  overrides?: LeafParams['overrides'];
}

/** A leaf from its CA: cert.pem, key.pem and chain.pem (leaf + intermediate). */
export async function issue(ctx: PkiContext, o: LeafOptions): Promise<CommandResult & { files: ReturnType<typeof leafFiles> }> {
  const L = ctx.layout;
  const ca = ISSUER_OF[o.params.profile];
  const files = leafFiles(o.outDir ?? L.leafDir(o.params.profile, o.name));
  const issuer = o.issuer ?? (await loadIssuer(L, ca, o.caPassphrase, o.caKeyPath, ctx.pkcs11Pin));
  const state = await readState(L, ca);
  const keys = await generateKeyPair(o.keyType);
  const validity = o.validity ?? validityFor(ctx.clock, o.days ?? DEFAULT_DAYS.leaf);
  const cert = await issueLeaf({ ...o.params, publicKey: keys.publicKey, issuer, validity, random: ctx.random, overrides: o.overrides });
  state.issued.push(issuedRecord(cert, o.params.profile, o.name));
  const written = await writeFiles(
    [
      { path: files.cert, kind: 'certificate', contents: certToPem(cert) },
      { path: files.key, kind: 'private-key', contents: await exportPrivateKeyPem(keys.privateKey, o.keyPassphrase, ctx.kdfIterations) },
      { path: files.chain, kind: 'chain', contents: certToPem(cert) + certToPem(issuer.cert) },
      stateFile(L, ca, state),
    ],
    ctx.force,
  );
  return { written, certificate: summary(cert), files };
}

/** Records a revocation with the CA that issued the serial (found in the CAs' state files). */
export async function revoke(ctx: PkiContext, o: { serial: string; reason: RevocationReason }): Promise<CommandResult> {
  const L = ctx.layout;
  for (const ca of CA_NAMES) {
    if (!(await caExists(L, ca))) continue;
    const state = await readState(L, ca);
    const rec = state.issued.find((r) => r.serial === o.serial);
    if (!rec) continue;
    if (rec.profile === 'root') throw invalid('--serial', 'is the root certificate itself; a root is withdrawn by removing it from every trust store, not by a CRL');
    const prior = state.revoked.find((r) => r.serial === o.serial);
    if (prior) throw new PkiError('CONFLICT', '--serial', `${o.serial} was already revoked at ${prior.revokedAt} (${prior.reason})`);
    const revokedAt = new Date(Math.floor(ctx.clock.now() / 1000) * 1000).toISOString();
    state.revoked.push({ serial: o.serial, reason: o.reason, revokedAt });
    const written = await writeFiles([stateFile(L, ca, state)], ctx.force);
    return { written, revocation: { ca, serial: o.serial, reason: o.reason, revokedAt } };
  }
  throw new PkiError('NOT_FOUND', '--serial', `no certificate with serial ${o.serial} was issued by the CAs in ${L.dir}`);
}

/** Writes the CA's next CRL (number + 1) listing every revocation recorded with it. */
export async function writeCrl(
  ctx: PkiContext,
  o: { ca: CaName; passphrase: string | undefined; caKeyPath?: string; days?: number },
): Promise<CommandResult> {
  const issuer = await loadIssuer(ctx.layout, o.ca, o.passphrase, o.caKeyPath, ctx.pkcs11Pin);
  const state = await readState(ctx.layout, o.ca);
  const days = o.days ?? (o.ca === 'root' ? DEFAULT_DAYS.rootCrl : DEFAULT_DAYS.crl);
  const [crl, info] = await crlFile(ctx, o.ca, issuer, state, days);
  const written = await writeFiles([crl, stateFile(ctx.layout, o.ca, state)], ctx.force);
  return { written, crl: info };
}
