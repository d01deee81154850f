// The operator's certificate chain and key from --operator-cert / --operator-key: what signs
// topologies and operations, and authenticates the operator to etcd.
import { parsePem } from '../pki/pem.js';
import { keyFromFlags } from './admin-key.js';
import { requireFlag, readFlagFile, UsageError } from './cli-common.js';

/** Reads the operator's chain and opens its key (for signing, and as the etcd client identity). */
export async function operatorIdentity(values: { 'operator-cert'?: string; 'operator-key'?: string; 'key-passphrase-file'?: string }) {
  const certPath = requireFlag(values['operator-cert'], 'operator-cert', 'pki/operators/admin/chain.pem');
  const keyPath = requireFlag(values['operator-key'], 'operator-key', 'pki/operators/admin/key.pem');
  const certPem = readFlagFile(certPath, 'operator-cert');
  const chain = parsePem(certPem, certPath).filter((b) => b.label === 'CERTIFICATE').map((b) => new Uint8Array(b.der));
  if (chain.length === 0) throw new UsageError(`--operator-cert ${certPath} holds no certificate`);
  const { key, pem } = await keyFromFlags(keyPath, 'operator-key', values['key-passphrase-file']);
  return { certPath, certPem, chain, key, keyPem: pem };
}

export const OPERATOR_FLAGS = {
  'operator-cert': { type: 'string' },
  'operator-key': { type: 'string' },
  'key-passphrase-file': { type: 'string' },
} as const;
