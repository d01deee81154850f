// The local mesh's control plane in etcd: a topology signed by an operator and published, and
// every CA's CRL published as an operator would (themis-admin crl publish).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { connectEtcd, etcdKeys } from '../src/control/etcd.js';
import { publishSignedTopology, readSignedTopology } from '../src/control/topology-store.js';
import { CrlPublishError, crlValue, publishCrl, verifierWithEtcdCrls } from '../src/control/crl-store.js';
import { registeredCertifiedRanges } from '../src/control/certified-ranges.js';
import { applyRbac, planRbac } from '../src/control/etcd-rbac.js';
import { EtcdCrlFollower, revokedSerialsInEtcd } from '../src/control/etcd-crl-file.js';
import { KeepWatching } from '../src/control/watch.js';
import { silentLogger } from '../src/log.js';
import { PeerVerifier } from '../src/pki/verify.js';
import { CA_NAMES } from '../src/pki/ca-store.js';
import { CrlTrust } from '../src/pki/crl-trust.js';
import { loadPrivateKey } from '../src/pki/keys.js';
import { parsePem } from '../src/pki/pem.js';
import { parseTopology } from '../src/topology/document.js';
import { signTopology } from '../src/topology/signed.js';
import type { Topology } from '../src/topology/topology.js';
import { systemClock } from '../src/runtime.js';

/** PEM text of an operator's chain and (unencrypted) key, and of the root CA. */
export interface Operator {
  chain: string;
  key: string;
  ca: string;
}

export const operatorFromFiles = (leaf: { chainPath: string; keyPath: string }, rootCert: string): Operator => ({
  chain: readFileSync(leaf.chainPath, 'utf8'),
  key: readFileSync(leaf.keyPath, 'utf8'),
  ca: readFileSync(rootCert, 'utf8'),
});

export async function withEtcd<T>(endpoint: string, who: Operator, f: (etcd: Etcd3) => Promise<T>): Promise<T> {
  const client = connectEtcd({ endpoints: [endpoint], certPem: who.chain, keyPem: who.key, caPem: who.ca });
  try {
    return await f(client);
  } finally {
    client.close();
  }
}

/** One above the epoch of the topology etcd holds (an earlier run's), or `epoch` when there is none. */
export async function nextEpoch(etcd: Etcd3, cluster: string, epoch: number): Promise<number> {
  const previous = await readSignedTopology(etcd, etcdKeys(cluster).topology);
  try {
    return previous?.signed ? parseTopology(previous.signed.document).epoch + 1 : epoch;
  } catch {
    return epoch;
  }
}

/**
 * The topology an earlier run left in etcd, when it names only `shards` (added or removed since —
 * themis-admin shard add — are kept) with `replicas` replicas per range; undefined when there is
 * none or it differs (another shard list, another replication factor).
 */
export async function earlierTopology(etcd: Etcd3, cluster: string, shards: readonly string[], replicas: number): Promise<Topology | undefined> {
  const previous = await readSignedTopology(etcd, etcdKeys(cluster).topology);
  try {
    const t = previous?.signed ? parseTopology(previous.signed.document) : undefined;
    return t && Object.keys(t.shards).every((s) => shards.includes(s)) && t.ranges.every((r) => r.replicas.length === replicas) ? t : undefined;
  } catch {
    return undefined;
  }
}

/** Signs `topology` as `who` and publishes it as themis-admin does (CRLs: etcd's and `crls`, PEM). */
export async function publishTopology(etcd: Etcd3, who: Operator, topology: Topology, crls: readonly string[] = []): Promise<void> {
  const key = await loadPrivateKey(who.key, undefined, 'operator key');
  const chain = parsePem(who.chain, 'operator chain').map((b) => new Uint8Array(b.der));
  const verifier = await verifierWithEtcdCrls(etcd, topology.cluster, who.ca, systemClock, crls);
  const certifiedRanges = await registeredCertifiedRanges(etcd, topology.cluster, verifier);
  await publishSignedTopology(etcd, etcdKeys(topology.cluster).topology, await signTopology(topology, chain, key.privateKey), { verifier, cluster: topology.cluster, certifiedRanges });
}

/** Every CA's CRL (PEM) in the PKI folder. */
export const pkiCrls = (pkiDir: string): string[] => CA_NAMES.map((ca) => readFileSync(join(pkiDir, ca, 'crl.pem'), 'utf8'));

/** Every CA's CRL from the PKI folder; one already there (from an earlier run) is left alone. */
export async function publishCaCrls(etcd: Etcd3, cluster: string, pkiDir: string, rootPem: string): Promise<void> {
  const trust = new CrlTrust(rootPem, systemClock);
  const file = (ca: string, name: string) => readFileSync(join(pkiDir, ca, name), 'utf8');
  for (const ca of CA_NAMES) {
    await publishCrl(etcd, cluster, ca, crlValue(ca, file(ca, 'crl.pem'), file(ca, 'cert.pem')), trust, new Date()).catch((e: Error) => {
      if (!(e instanceof CrlPublishError && /not_newer/.test(e.message))) throw e;
    });
  }
}

/**
 * etcd least privilege for the local mesh, as `themis-admin etcd rbac apply` gives it: every
 * shard's and both operators' certificates (verified against the root and the PKI's CRLs).
 */
export async function applyDevRbac(etcd: Etcd3, cluster: string, rootPem: string, crls: readonly string[], chainPaths: readonly string[]): Promise<string[]> {
  const verifier = new PeerVerifier({ root: rootPem, crls, clock: systemClock });
  const peers = chainPaths.map((f) => {
    const r = verifier.verify(parsePem(readFileSync(f, 'utf8'), f).map((b) => new Uint8Array(b.der)), 'clientAuth');
    if (!r.ok) throw new Error(`${f}: ${r.reason}: ${r.message}`);
    return r.peer;
  });
  return (await applyRbac(etcd, cluster, planRbac(cluster, peers))).changes;
}

/**
 * Keeps etcd's --client-crl-file current from the CRLs in etcd, as `themis-admin etcd crl-file
 * --watch` does on an etcd host; returns the function that stops it.
 */
export function followEtcdCrls(endpoint: string, who: Operator, cluster: string, path: string): () => void {
  const client = connectEtcd({ endpoints: [endpoint], certPem: who.chain, keyPem: who.key, caPem: who.ca });
  // etcd away: the file written last stays, and the watch resyncs.
  const follower = new EtcdCrlFollower(path, () => revokedSerialsInEtcd(client, cluster, who.ca, systemClock));
  const refresh = () => void follower.refresh();
  const watcher = new KeepWatching({ build: () => client.watch().prefix(etcdKeys(cluster).crl('')), onPut: refresh, resync: refresh, what: 'CRL', log: silentLogger });
  return () => {
    watcher.close();
    client.close();
  };
}
