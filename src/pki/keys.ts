// Key pairs: ECDSA P-256 (default) or RSA 2048/3072/4096; PKCS#8 PEM, encrypted with a
// passphrase for CA keys (always) and leaf keys (on request); loading back with clear errors.
import { createCipheriv, createPrivateKey, pbkdf2Sync, randomBytes, type KeyObject } from 'node:crypto';
import * as asn1js from 'asn1js';
import { PkiError, invalid } from './errors.js';
import { toPem } from './pem.js';
import { subtle, type CryptoKey } from './x509.js';

export const KEY_TYPES = ['ecdsa-p256', 'rsa2048', 'rsa3072', 'rsa4096'] as const;
export type KeyType = (typeof KEY_TYPES)[number];
export const DEFAULT_KEY_TYPE: KeyType = 'ecdsa-p256';

/** A CA key passphrase shorter than this is refused when a key is created. */
export const MIN_PASSPHRASE_LENGTH = 8;

export interface KeyPair {
  type: KeyType;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
}

export function parseKeyType(text: string | undefined, field = '--key-type'): KeyType {
  if (text === undefined) return DEFAULT_KEY_TYPE;
  if (!(KEY_TYPES as readonly string[]).includes(text)) {
    throw invalid(field, `unknown key type "${text}"; use one of ${KEY_TYPES.join(', ')}`);
  }
  return text as KeyType;
}

function algorithmOf(type: KeyType): EcKeyGenParams | RsaHashedKeyGenParams {
  if (type === 'ecdsa-p256') return { name: 'ECDSA', namedCurve: 'P-256' };
  const modulusLength = Number(type.slice(3));
  return { name: 'RSASSA-PKCS1-v1_5', modulusLength, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' };
}
type EcKeyGenParams = { name: 'ECDSA'; namedCurve: 'P-256' };
type RsaHashedKeyGenParams = { name: 'RSASSA-PKCS1-v1_5'; modulusLength: number; publicExponent: Uint8Array; hash: 'SHA-256' };

export async function generateKeyPair(type: KeyType = DEFAULT_KEY_TYPE): Promise<KeyPair> {
  const pair = (await subtle.generateKey(algorithmOf(type), true, ['sign', 'verify'])) as {
    privateKey: CryptoKey;
    publicKey: CryptoKey;
  };
  return { type, privateKey: pair.privateKey, publicKey: pair.publicKey };
}

/** The signature algorithm a key signs certificates and CRLs with (always SHA-256). */
export function signingAlgorithm(key: CryptoKey): { name: string; hash: string } {
  return key.algorithm.name === 'ECDSA' ? { name: 'ECDSA', hash: 'SHA-256' } : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
}

/**
 * PBKDF2 rounds for encrypted keys. OpenSSL's (and Node's) default is 2048, too few for a
 * root key that may sit on a stolen disk; opening a key costs about 0.1 s at this count.
 */
export const PBKDF2_ITERATIONS = 200_000;

/** PKCS#8 PEM; with a passphrase, encrypted (PBES2: PBKDF2-HMAC-SHA256, AES-256-CBC). */
export async function exportPrivateKeyPem(key: CryptoKey, passphrase?: string, iterations = PBKDF2_ITERATIONS): Promise<string> {
  const der = Buffer.from(await subtle.exportKey('pkcs8', key));
  if (passphrase === undefined) return toPem('PRIVATE KEY', der);
  if (passphrase.length === 0) throw invalid('passphrase', 'is empty');
  return toPem('ENCRYPTED PRIVATE KEY', encryptPkcs8(der, passphrase, iterations));
}

const oid = (value: string) => new asn1js.ObjectIdentifier({ value });
const octets = (b: Buffer) => new asn1js.OctetString({ valueHex: new Uint8Array(b) });

/** EncryptedPrivateKeyInfo (RFC 5958) with PBES2 parameters (RFC 8018), as OpenSSL writes it. */
function encryptPkcs8(der: Buffer, passphrase: string, iterations: number): Buffer {
  const salt = randomBytes(16);
  const iv = randomBytes(16);
  const k = pbkdf2Sync(Buffer.from(passphrase, 'utf8'), salt, iterations, 32, 'sha256');
  const cipher = createCipheriv('aes-256-cbc', k, iv);
  const encrypted = Buffer.concat([cipher.update(der), cipher.final()]);
  const info = new asn1js.Sequence({
    value: [
      new asn1js.Sequence({
        value: [
          oid('1.2.840.113549.1.5.13'), // PBES2
          new asn1js.Sequence({
            value: [
              new asn1js.Sequence({
                value: [
                  oid('1.2.840.113549.1.5.12'), // PBKDF2
                  new asn1js.Sequence({
                    value: [
                      octets(salt),
                      new asn1js.Integer({ value: iterations }),
                      new asn1js.Sequence({ value: [oid('1.2.840.113549.2.9'), new asn1js.Null()] }), // hmacWithSHA256
                    ],
                  }),
                ],
              }),
              new asn1js.Sequence({ value: [oid('2.16.840.1.101.3.4.1.42'), octets(iv)] }), // aes256-CBC
            ],
          }),
        ],
      }),
      octets(encrypted),
    ],
  });
  return Buffer.from(info.toBER());
}

export function isEncryptedKeyPem(pem: string): boolean {
  return pem.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----');
}

export interface LoadedKey {
  type: KeyType;
  privateKey: CryptoKey;
  keyObject: KeyObject;
}

/**
 * Opens a PKCS#8 PEM key. `file` names the key in errors; an encrypted key needs the
 * passphrase (BAD_PASSPHRASE when it is wrong, PASSPHRASE_REQUIRED when none is given).
 */
export async function loadPrivateKey(pem: string, passphrase: string | undefined, file: string): Promise<LoadedKey> {
  if (!/-----BEGIN (ENCRYPTED )?PRIVATE KEY-----/.test(pem)) {
    throw new PkiError('MALFORMED_PEM', file, 'is not a PKCS#8 private key (no BEGIN PRIVATE KEY or BEGIN ENCRYPTED PRIVATE KEY line)');
  }
  const encrypted = isEncryptedKeyPem(pem);
  if (encrypted && passphrase === undefined) {
    throw new PkiError('PASSPHRASE_REQUIRED', file, 'is encrypted and no passphrase was given');
  }
  let obj: KeyObject;
  try {
    obj = createPrivateKey(encrypted ? { key: pem, format: 'pem', passphrase: passphrase! } : { key: pem, format: 'pem' });
  } catch (e) {
    if (encrypted) throw new PkiError('BAD_PASSPHRASE', file, 'wrong passphrase (the key did not decrypt)');
    throw new PkiError('MALFORMED_PEM', file, `is not a valid private key (${(e as Error).message})`);
  }
  const type = keyTypeOf(obj, file);
  const der = obj.export({ type: 'pkcs8', format: 'der' });
  const alg = algorithmOf(type);
  const importAlg = alg.name === 'ECDSA' ? alg : { name: alg.name, hash: 'SHA-256' };
  const privateKey = await subtle.importKey('pkcs8', der, importAlg, false, ['sign']);
  return { type, privateKey, keyObject: obj };
}

export function keyTypeOf(obj: KeyObject, file: string): KeyType {
  const d = obj.asymmetricKeyDetails;
  if (obj.asymmetricKeyType === 'ec' && d?.namedCurve === 'prime256v1') return 'ecdsa-p256';
  if (obj.asymmetricKeyType === 'rsa' && [2048, 3072, 4096].includes(d?.modulusLength ?? 0)) {
    return `rsa${d!.modulusLength}` as KeyType;
  }
  const what = obj.asymmetricKeyType === 'ec' ? `EC ${d?.namedCurve}` : `${obj.asymmetricKeyType} ${d?.modulusLength ?? ''}`.trim();
  throw invalid(file, `unsupported key (${what}); use one of ${KEY_TYPES.join(', ')}`);
}
