// A CA's CRL published into etcd as an operator would (themis-admin crl publish does the same),
// and one mesh-port request with a client identity: what the tests of CRLs from etcd share.
import { uuidOwnedBy, type Mesh } from './mesh.js';
import { meshConnect, meshRequest, type Identity } from './mesh-client.js';
import { connectEtcd } from '../../src/control/etcd.js';
import { publishCrl } from '../../src/control/crl-store.js';
import { CrlTrust } from '../../src/pki/crl-trust.js';
import { systemClock } from '../../src/runtime.js';

/** Publishes the CA's current CRL from the fixture's PKI folder, signed in by the admin operator. */
export async function publishCaCrl(mesh: Mesh, ca: 'cluster' | 'client'): Promise<void> {
  const root = mesh.pki.root.cert;
  const admin = mesh.pki.operators.admin;
  const value = mesh.pki.cas[ca].crl.trimEnd() + '\n' + mesh.pki.cas[ca].cert;
  const etcd = connectEtcd({ endpoints: [mesh.etcd!.endpoint], certPem: admin.chain, keyPem: admin.key, caPem: root });
  try {
    await publishCrl(etcd, mesh.pki.cluster, ca, value, new CrlTrust(root, systemClock), new Date());
  } finally {
    etcd.close();
  }
}

/** One GET on sidecar i's mesh port, on a connection of its own, with `id`: the status, or 'refused' when the handshake fails. */
export async function meshAttempt(mesh: Mesh, i: number, id: Identity): Promise<number | 'refused'> {
  const node = mesh.nodes[i]!;
  const session = meshConnect(`${node.shard.ip}:${node.meshPort}`, id);
  try {
    return (await meshRequest(session, 'GET', `/entities/document.app.crl:${uuidOwnedBy(node.shard.tokenRange)}`)).status;
  } catch {
    return 'refused';
  } finally {
    session.destroy();
  }
}
