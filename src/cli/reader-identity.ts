// The identity a read-only themis-admin command connects to etcd with: reading the topology,
// registrations or rebalance status needs an operator certificate with view_topology. etcd
// RBAC enforces what the certificate may read; this check says so before etcd refuses.
import { parseCertDer, parsePem } from '../pki/pem.js';
import { THEMIS_IDENTITY_OID, decodeIdentity } from '../pki/identity-extension.js';
import { readFlagFile, requireFlag, UsageError } from './cli-common.js';

/** The --cert file's text, refused unless its leaf is an operator's with view_topology. */
export function readerCertPem(values: { cert?: string }): string {
  const path = requireFlag(values.cert, 'cert', 'pki/operators/readonly/chain.pem');
  const pem = readFlagFile(path, 'cert');
  const first = parsePem(pem, path).find((b) => b.label === 'CERTIFICATE');
  if (!first) throw new UsageError(`--cert ${path} holds no certificate`);
  const leaf = parseCertDer(new Uint8Array(first.der), path);
  const ext = leaf.extensions.find((e) => e.type === THEMIS_IDENTITY_OID);
  let role: string | undefined;
  let caps: readonly string[] = [];
  try {
    if (ext) ({ role, capabilities: caps } = decodeIdentity(new Uint8Array(ext.value)));
  } catch {
    role = 'unreadable';
  }
  if (role !== 'operator' || !caps.includes('view_topology')) {
    const what = role === 'operator' ? 'an operator certificate without' : role === undefined ? 'a certificate with no themis identity, not an operator\'s with' : role === 'unreadable' ? 'a certificate whose themis identity does not decode, not an operator\'s with' : `a ${role} certificate, not an operator's with`;
    throw new UsageError(`--cert ${path}: ${leaf.subject} is ${what} view_topology, which reading the topology, registrations or rebalance status needs`);
  }
  return pem;
}
