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
  let role = 'no themis';
  let caps: readonly string[] = [];
  try {
    if (ext) ({ role, capabilities: caps } = decodeIdentity(new Uint8Array(ext.value)));
  } catch {
    role = 'an unreadable';
  }
  if (role !== 'operator' || !caps.includes('view_topology')) {
    throw new UsageError(`--cert ${path}: ${leaf.subject} is ${role === 'operator' ? 'an operator certificate without' : `a ${role} certificate, not an operator's with`} view_topology, which reading the topology, registrations or rebalance status needs`);
  }
  return pem;
}
