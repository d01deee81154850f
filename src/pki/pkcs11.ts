// CA keys in an HSM through PKCS#11: node-webcrypto-p11 (a WebCrypto provider over graphene-pk11
// and pkcs11js) gives @peculiar/x509 a key that signs inside the token and never leaves it.
// A CA whose key lives there has `key.pkcs11.json` (module, token, key label and id) instead of
// `key.pem`. The user PIN comes from a file or a systemd credential, never from argv.
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { PkiError, invalid } from './errors.js';
import type { KeyType } from './keys.js';
import { passphraseFromFile } from './passphrase.js';
import { subtle, type CryptoKey } from './x509.js';

/** What `{ca}/key.pkcs11.json` holds: enough to find the key again, nothing secret. */
export interface Pkcs11KeyRef {
  version: 1;
  module: string;
  token: string;
  keyLabel: string;
  /** CKA_ID (hex), derived from the public key by node-webcrypto-p11. */
  keyId: string;
}

/** `LoadCredential=themis-pkcs11-pin:/etc/themis/hsm.pin` in a unit makes the PIN available here. */
export const PIN_CREDENTIAL = 'themis-pkcs11-pin';

/** --pin-file FILE, else the systemd credential; never an argument or an environment variable. */
export async function pkcs11Pin(pinFile: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (pinFile !== undefined) return passphraseFromFile(pinFile, '--pin-file');
  const creds = env.CREDENTIALS_DIRECTORY;
  if (creds) {
    const path = join(creds, PIN_CREDENTIAL);
    if (await fs.access(path).then(() => true, () => false)) return passphraseFromFile(path, `credential ${PIN_CREDENTIAL}`);
  }
  throw new PkiError('PASSPHRASE_REQUIRED', '--pin-file', `the token's user PIN is needed: pass --pin-file FILE, or run under systemd with LoadCredential=${PIN_CREDENTIAL}:FILE`);
}

// Loaded on first use: node-webcrypto-p11 is an optional dependency (it builds pkcs11js with
// node-gyp), so nothing here may need its types to compile; these are the few parts we use.
interface P11Session {
  login(pin: string, userType: number): void;
  logout(): void;
  close(): void;
}
interface P11Module {
  initialize(): void;
  finalize(): void;
  getSlots(tokenPresent: boolean): { length: number; items(i: number): { getToken(): { label: string }; open(flags: number): P11Session } };
}
interface P11Crypto {
  subtle: {
    generateKey(alg: object, extractable: boolean, usages: string[]): Promise<unknown>;
    exportKey(format: 'spki', key: unknown): Promise<ArrayBuffer>;
  };
  keyStorage: { keys(): Promise<string[]>; indexOf(key: unknown): Promise<string | null>; getItem(index: string): Promise<unknown> };
}
interface P11 {
  graphene: { Module: { load(lib: string, name: string): P11Module }; SessionFlag: { SERIAL_SESSION: number; RW_SESSION: number }; UserType: { USER: number } };
  Crypto: new (p: { session: P11Session }) => P11Crypto;
}
const GRAPHENE = 'graphene-pk11';
const WEBCRYPTO_P11 = 'node-webcrypto-p11';
let p11: Promise<P11> | undefined;
function load(): Promise<P11> {
  p11 ??= Promise.all([import(GRAPHENE), import(WEBCRYPTO_P11)]).then(
    ([g, w]) => ({ graphene: g.default ?? g, Crypto: w.Crypto }) as P11,
    () => {
      throw new PkiError('NOT_FOUND', '--pkcs11', 'needs the optional package node-webcrypto-p11, which did not install (it compiles pkcs11js: needs python3, make and g++); see docs/pki.md "CA keys in an HSM"');
    },
  );
  return p11;
}

type Crypto = P11Crypto;
export interface TokenSession {
  crypto: Crypto;
  close(): void;
}

// One module initialisation per library per process (C_Initialize may not run twice) and one
// logged-in session per token, shared by every key a command uses.
const modules = new Map<string, { mod: P11Module; sessions: Map<string, TokenSession> }>();

export async function openToken(module: string, token: string, pin: () => Promise<string>): Promise<TokenSession> {
  const { graphene, Crypto } = await load();
  let m = modules.get(module);
  if (!m) {
    let mod: P11Module;
    try {
      mod = graphene.Module.load(module, 'themis');
      mod.initialize();
    } catch (e) {
      throw invalid('--pkcs11', `cannot load PKCS#11 module ${module} (${(e as Error).message})`);
    }
    m = { mod, sessions: new Map() };
    modules.set(module, m);
  }
  const open = m.sessions.get(token);
  if (open) return open;
  const slots = m.mod.getSlots(true);
  const labels: string[] = [];
  for (let i = 0; i < slots.length; i++) {
    const slot = slots.items(i);
    const label = slot.getToken().label.trim();
    labels.push(label);
    if (label !== token) continue;
    const session = slot.open(graphene.SessionFlag.SERIAL_SESSION | graphene.SessionFlag.RW_SESSION);
    try {
      session.login(await pin(), graphene.UserType.USER);
    } catch (e) {
      session.close();
      if (e instanceof PkiError) throw e;
      throw new PkiError('BAD_PASSPHRASE', '--pin-file', `token "${token}" refused the PIN (${(e as Error).message})`);
    }
    const s: TokenSession = {
      crypto: new Crypto({ session }),
      close: () => {
        m!.sessions.delete(token);
        session.logout();
        session.close();
      },
    };
    m.sessions.set(token, s);
    return s;
  }
  throw new PkiError('NOT_FOUND', '--token', `no token labelled "${token}" in ${module} (found: ${labels.filter(Boolean).join(', ') || 'none initialised'})`);
}

/** Logs out and finalises every module this process opened. */
export function closeTokens(): void {
  for (const m of modules.values()) {
    for (const s of [...m.sessions.values()]) s.close();
    m.mod.finalize();
  }
  modules.clear();
}

export interface TokenKey {
  ref: Pkcs11KeyRef;
  privateKey: CryptoKey;
  /** The public key as a Node WebCrypto key (exported from the token, imported here). */
  publicKey: CryptoKey;
  crypto: Crypto;
}

async function nodePublicKey(s: TokenSession, key: CryptoKey): Promise<CryptoKey> {
  const spki = await s.crypto.subtle.exportKey('spki', key);
  return subtle.importKey('spki', spki, { name: 'ECDSA', namedCurve: 'P-256' }, true, ['verify']);
}

/** A new P-256 key pair generated inside the token: sensitive, not extractable, kept on the token. */
export async function generateTokenKey(module: string, token: string, keyLabel: string, keyType: KeyType, pin: () => Promise<string>): Promise<TokenKey> {
  if (keyType !== 'ecdsa-p256') throw invalid('--key-type', `${keyType} is not supported with --pkcs11 yet; use ecdsa-p256`);
  const s = await openToken(module, token, pin);
  const pair = (await s.crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256', token: true, sensitive: true, label: keyLabel }, false, ['sign', 'verify'])) as { privateKey: CryptoKey; publicKey: CryptoKey };
  const index = await s.crypto.keyStorage.indexOf(pair.privateKey);
  const keyId = index?.split('-').pop();
  if (!keyId) throw new PkiError('NOT_FOUND', '--token', `the new key is not on token "${token}"`);
  return { ref: { version: 1, module, token, keyLabel, keyId }, privateKey: pair.privateKey, publicKey: await nodePublicKey(s, pair.publicKey), crypto: s.crypto };
}

/** The key a `key.pkcs11.json` names, found on its token by CKA_ID. */
export async function loadTokenKey(ref: Pkcs11KeyRef, file: string, pin: () => Promise<string>): Promise<TokenKey> {
  const s = await openToken(ref.module, ref.token, pin);
  const keys = await s.crypto.keyStorage.keys();
  const find = (kind: string) => keys.find((k) => k.startsWith(`${kind}-`) && k.endsWith(`-${ref.keyId}`));
  const priv = find('private');
  const pub = find('public');
  if (!priv || !pub) throw new PkiError('NOT_FOUND', file, `token "${ref.token}" holds no key pair with id ${ref.keyId} (label ${ref.keyLabel})`);
  const privateKey = (await s.crypto.keyStorage.getItem(priv)) as unknown as CryptoKey;
  const publicKey = await nodePublicKey(s, (await s.crypto.keyStorage.getItem(pub)) as unknown as CryptoKey);
  return { ref, privateKey, publicKey, crypto: s.crypto };
}

export function parseKeyRef(text: string, file: string): Pkcs11KeyRef {
  let r: Partial<Pkcs11KeyRef>;
  try {
    r = JSON.parse(text) as Partial<Pkcs11KeyRef>;
  } catch (e) {
    throw invalid(file, `is not valid JSON (${(e as Error).message})`);
  }
  const str = (v: unknown) => typeof v === 'string' && v.length > 0;
  if (r?.version !== 1 || !str(r.module) || !str(r.token) || !str(r.keyLabel) || !/^[0-9a-f]+$/.test(r.keyId ?? '')) {
    throw invalid(file, 'is not a PKCS#11 key reference (version 1, module, token, keyLabel, keyId)');
  }
  return r as Pkcs11KeyRef;
}
