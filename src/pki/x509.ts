// The one place that loads @peculiar/x509: reflect-metadata first, then Node's WebCrypto as its
// provider. Other PKI modules import x509 from here so the order can never go wrong.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export { x509 };
export type CryptoKey = webcrypto.CryptoKey;
export const subtle = webcrypto.subtle;
/** A WebCrypto provider: Node's, or a PKCS#11 token's (pkcs11.ts). */
export type CryptoProvider = webcrypto.Crypto;
