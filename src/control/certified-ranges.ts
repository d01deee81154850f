// The token range each shard's certificate allows, read from its registration in etcd. The
// registration itself is unsigned, but the certificate in it proves itself: its chain is
// verified (root, CRLs, the role bound to its CA) and it must name the shard it is registered as.
import type { Etcd3 } from 'etcd3';
import { parsePem } from '../pki/pem.js';
import type { PeerVerifier } from '../pki/verify.js';
import { etcdKeys } from './etcd-keys.js';

export interface CertifiedRange {
  start: bigint;
  end: bigint;
}

/** The range in a `shards/{id}/certificate` value, or undefined when it is absent or does not verify as that shard's. */
export function certifiedRangeOf(verifier: PeerVerifier, shard: string, raw: string | null | undefined): CertifiedRange | undefined {
  if (!raw) return undefined;
  try {
    const pem = (JSON.parse(raw) as { cert_pem?: unknown }).cert_pem;
    if (typeof pem !== 'string') return undefined;
    const r = verifier.verify(parsePem(pem, `${shard} certificate`).map((b) => new Uint8Array(b.der)), 'serverAuth');
    if (!r.ok || r.peer.identity.role === 'operator' || r.peer.identity.role === 'client' || r.peer.identity.shardId !== shard) return undefined;
    return { start: r.peer.identity.tokenRangeStart, end: r.peer.identity.tokenRangeEnd };
  } catch {
    return undefined;
  }
}

/**
 * Every registered shard's certified range (shards whose certificate does not verify are left
 * out). Only the certificate keys' values are read: the key names first, then each certificate,
 * so large values a shard writes under its own prefix cannot push the answer past gRPC's limit.
 */
export async function registeredCertifiedRanges(etcd: Etcd3, cluster: string, verifier: PeerVerifier): Promise<Map<string, CertifiedRange>> {
  const keys = etcdKeys(cluster);
  const ids = await shardsWith(etcd, cluster, 'certificate');
  const out = new Map<string, CertifiedRange>();
  await Promise.all(
    [...ids].map(async (id) => {
      const range = certifiedRangeOf(verifier, id, await etcd.get(keys.shardCertificate(id)).string());
      if (range) out.set(id, range);
    }),
  );
  return out;
}

/** Shards that have a `shards/{id}/{leaf}` key, read by key name only (each value is read on its own). */
export async function shardsWith(etcd: Etcd3, cluster: string, leaf: string): Promise<Set<string>> {
  const prefix = etcdKeys(cluster).shardsPrefix;
  const ids = new Set<string>();
  for (const key of await etcd.getAll().prefix(prefix).keys()) {
    const [id, l] = key.slice(prefix.length).split('/');
    if (id && l === leaf) ids.add(id);
  }
  return ids;
}
