// The control plane's key schema under /themis/{cluster}/ (ARCHITECTURE.md), and a time limit
// for etcd calls. Nothing here loads the etcd client (etcd.ts does).

/** `call`, or a rejection when etcd has not answered within `ms` (start-up must not hang on etcd). */
export function answerWithin<T>(call: Promise<T>, ms = 3000): Promise<T> {
  return Promise.race([call, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`etcd did not answer within ${ms / 1000} s`)), ms).unref())]);
}

/** Every key the mesh uses, in one place. */
export function etcdKeys(cluster: string) {
  const base = `/themis/${cluster}`;
  return {
    topology: `${base}/topology`,
    shardCertificate: (id: string) => `${base}/shards/${id}/certificate`,
    shardEndpoint: (id: string) => `${base}/shards/${id}/endpoint`,
    shardAlive: (id: string) => `${base}/shards/${id}/alive`,
    /** This shard's replica followers, on its lease: what `themis-admin shards` shows as lag. */
    shardReplication: (id: string) => `${base}/shards/${id}/replication`,
    shardsPrefix: `${base}/shards/`,
    crl: (issuer: string) => `${base}/crl/${issuer}`,
    revoked: `${base}/crl/revoked`,
    rebalance: (operationId: string) => `${base}/rebalance/${operationId}`,
    rebalancePrefix: `${base}/rebalance/`,
    /** Each involved shard's view of an operation: {phase, reason?, message?, updated_at}. */
    rebalanceStatus: (operationId: string, shard: string) => `${base}/rebalance-status/${operationId}/${shard}`,
    rebalanceStatusPrefix: `${base}/rebalance-status/`,
    /** Present: a `manual` operation may cut over (themis-admin rebalance switch). */
    rebalanceSwitch: (operationId: string) => `${base}/rebalance-switch/${operationId}`,
    /** An operation with several sources: each one's `caught-up` or `held`, on its lease (proxy/rebalance/cutover-barrier.ts). */
    rebalanceCutover: (operationId: string, shard: string) => `${base}/rebalance-cutover/${operationId}/${shard}`,
    rebalanceCutoverPrefix: `${base}/rebalance-cutover/`,
    /** An operator-signed abort; written only while the base epoch is in force, and a cutover requires it absent. */
    rebalanceAbort: (operationId: string) => `${base}/rebalance-abort/${operationId}`,
    rebalanceAbortPrefix: `${base}/rebalance-abort/`,
  };
}
