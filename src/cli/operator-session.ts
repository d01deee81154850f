// What every command that signs a rebalance operation needs: the operator's identity, an etcd
// client as that operator, the topology in force (verified), what the shards registered (their
// certified token ranges, endpoints and data sizes, each certificate verified), and the write of
// a signed operation that never overwrites one.
import type { Etcd3 } from 'etcd3';
import { certifiedRangeOf } from '../control/certified-ranges.js';
import { connectEtcd, etcdKeys } from '../control/etcd.js';
import { readSignedTopology } from '../control/topology-store.js';
import { PeerVerifier } from '../pki/verify.js';
import { signOperation, type RebalanceOperation } from '../rebalance/operation.js';
import { systemClock } from '../runtime.js';
import { verifySignedTopology } from '../topology/signed.js';
import type { Topology } from '../topology/topology.js';
import { crlsFlag, etcdCall, etcdFlag, readFlagFile, requireFlag } from './cli-common.js';
import { OPERATOR_FLAGS, operatorIdentity } from './operator-identity.js';

export const SESSION_FLAGS = { cluster: { type: 'string' }, etcd: { type: 'string' }, ca: { type: 'string' }, crls: { type: 'string' }, ...OPERATOR_FLAGS } as const;

export interface Registered {
  /** The certificate's token range, when its chain verifies. */
  certified?: { start: bigint; end: bigint };
  endpoint?: { host: string; port: number; datacenter?: string };
  /** Keys and bytes on its storage node, as its sidecar last counted them. */
  data?: { keys: number; bytes: number };
}

export interface OperatorSession {
  etcd: Etcd3;
  cluster: string;
  keys: ReturnType<typeof etcdKeys>;
  operator: Awaited<ReturnType<typeof operatorIdentity>>;
  verifier: PeerVerifier;
  topology: Topology;
  /** The topology key's mod revision, as read. */
  revision: string;
  close(): void;
}

type SessionValues = { cluster?: string; etcd?: string; ca?: string; crls?: string; 'operator-cert'?: string; 'operator-key'?: string; 'key-passphrase-file'?: string };

export async function openOperatorSession(values: SessionValues): Promise<OperatorSession> {
  const cluster = requireFlag(values.cluster, 'cluster', 'cluster-prod');
  const caPem = readFlagFile(requireFlag(values.ca, 'ca', 'pki/root/cert.pem'), 'ca');
  const operator = await operatorIdentity(values);
  const etcd = connectEtcd({ endpoints: etcdFlag(values.etcd), certPem: operator.certPem, keyPem: operator.keyPem, caPem });
  try {
    const keys = etcdKeys(cluster);
    const stored = await etcdCall(readSignedTopology(etcd, keys.topology));
    if (!stored) throw new Error(`no topology published for cluster ${cluster}`);
    const verifier = new PeerVerifier({ root: caPem, crls: crlsFlag(values.crls), clock: systemClock });
    const v = await verifySignedTopology(stored.signed ?? null, { verifier, cluster });
    if (!v.ok) throw new Error(`the published topology does not verify (${v.reason}): ${v.message}`);
    return { etcd, cluster, keys, operator, verifier, topology: v.topology, revision: stored.revision, close: () => etcd.close() };
  } catch (e) {
    etcd.close();
    throw e;
  }
}

/** What each shard registered; a certificate that does not verify gives no certified range. */
export async function registeredShards(s: OperatorSession): Promise<Map<string, Registered>> {
  const all = await etcdCall(s.etcd.getAll().prefix(s.keys.shardsPrefix).strings());
  const ids = new Set(Object.keys(all).map((k) => k.slice(s.keys.shardsPrefix.length).split('/')[0]!));
  const json = (raw: string | undefined): any => {
    try {
      return raw === undefined ? undefined : JSON.parse(raw);
    } catch {
      return undefined;
    }
  };
  const out = new Map<string, Registered>();
  for (const id of ids) {
    const r: Registered = {};
    const certified = certifiedRangeOf(s.verifier, id, all[s.keys.shardCertificate(id)]);
    if (certified) r.certified = certified;
    const ep = json(all[s.keys.shardEndpoint(id)]) as Registered['endpoint'];
    if (ep && typeof ep.host === 'string' && Number.isInteger(ep.port)) r.endpoint = ep;
    const data = json(all[s.keys.shardReplication(id)])?.data as Registered['data'] | null | undefined;
    if (data && Number.isFinite(data.keys) && Number.isFinite(data.bytes)) r.data = { keys: data.keys, bytes: data.bytes };
    out.set(id, r);
  }
  return out;
}

/** Signs `operation` as the session's operator and writes it under rebalance/{id}, never over another. */
export async function submitOperation(s: OperatorSession, operation: RebalanceOperation): Promise<string> {
  const signed = await signOperation(operation, s.operator.chain, s.operator.key.privateKey);
  const key = s.keys.rebalance(operation.id);
  const r = await etcdCall(s.etcd.if(key, 'Create', '==', 0).then(s.etcd.put(key).value(JSON.stringify(signed))).commit());
  if (!r.succeeded) throw new Error(`${key} exists already`);
  return key;
}
