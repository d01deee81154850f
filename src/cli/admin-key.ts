// The private key an operator CLI signs or authenticates to etcd with: a PKCS#8 file named by a
// flag, opened with --key-passphrase-file when it is encrypted.
import { loadPrivateKey, type LoadedKey } from '../pki/keys.js';
import { readFlagFile } from './cli-common.js';

/** The key and its unencrypted PKCS#8 PEM (what the etcd client's TLS takes). */
export async function keyFromFlags(keyPath: string, flag: string, passphraseFile: string | undefined): Promise<{ key: LoadedKey; pem: string }> {
  const passphrase = passphraseFile ? readFlagFile(passphraseFile, 'key-passphrase-file').replace(/\r?\n$/, '') : undefined;
  const key = await loadPrivateKey(readFlagFile(keyPath, flag), passphrase, keyPath);
  return { key, pem: key.keyObject.export({ type: 'pkcs8', format: 'pem' }) as string };
}
