// The control plane's etcd: the key schema under /themis/{cluster}/ (ARCHITECTURE.md) and a
// client that always authenticates with a certificate (etcd runs with --client-cert-auth).
import { Etcd3 } from 'etcd3';

export interface EtcdConnection {
  endpoints: string[];
  /** PEM text: this party's certificate chain, its (unencrypted) key, and the root CA. */
  certPem: string;
  keyPem: string;
  caPem: string;
}

export function connectEtcd(c: EtcdConnection): Etcd3 {
  return new Etcd3({
    hosts: c.endpoints,
    credentials: { rootCertificate: Buffer.from(c.caPem), privateKey: Buffer.from(c.keyPem), certChain: Buffer.from(c.certPem) },
    dialTimeout: 3000,
  });
}

/** Every key the mesh uses, in one place. */
export function etcdKeys(cluster: string) {
  const base = `/themis/${cluster}`;
  return {
    topology: `${base}/topology`,
    shardCertificate: (id: string) => `${base}/shards/${id}/certificate`,
    shardEndpoint: (id: string) => `${base}/shards/${id}/endpoint`,
    shardAlive: (id: string) => `${base}/shards/${id}/alive`,
    shardsPrefix: `${base}/shards/`,
    crl: (issuer: string) => `${base}/crl/${issuer}`,
    revoked: `${base}/crl/revoked`,
    rebalance: (operationId: string) => `${base}/rebalance/${operationId}`,
  };
}
