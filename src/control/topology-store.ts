// Publishing and reading the signed topology in etcd. Publishing verifies what is stored before
// trusting its epoch, checks the new topology as the shards will, and is a compare-and-swap on
// the key's mod revision: two operators cannot both win, an older topology never replaces a
// newer one, and a forged value cannot block publishing.
import type { Etcd3 } from 'etcd3';
import type { PeerVerifier } from '../pki/verify.js';
import { parseTopology } from '../topology/document.js';
import { verifySignedTopology, type SignedTopology } from '../topology/signed.js';
import type { Topology } from '../topology/topology.js';
import type { CertifiedRange } from './certified-ranges.js';
import { reportedEpochFloor } from './epoch-floor.js';

export class PublishError extends Error {
  override name = 'PublishError';
}

/**
 * Reads the stored value (unverified: anyone with etcd access may have written it) and its mod
 * revision; `signed` is undefined when the value is not even JSON.
 */
export async function readSignedTopology(etcd: Etcd3, key: string): Promise<{ signed: SignedTopology | undefined; raw: string; revision: string } | undefined> {
  const r = await etcd.get(key).exec();
  const kv = r.kvs[0];
  if (!kv) return undefined;
  const raw = kv.value.toString('utf8');
  let signed: SignedTopology | undefined;
  try {
    signed = JSON.parse(raw) as SignedTopology;
  } catch {
    signed = undefined;
  }
  return { signed, raw, revision: kv.mod_revision };
}

export interface PublishChecks {
  verifier: PeerVerifier;
  cluster: string;
  /** Registered shards' certified ranges (certified-ranges.ts): every owner and replica is checked. */
  certifiedRanges: ReadonlyMap<string, CertifiedRange>;
  /** A further refusal of the change from the verified topology in force (its message), checked inside the compare-and-swap window. */
  refuseChange?: (current: Topology, next: Topology) => string | undefined;
}

export interface PublishResult {
  epoch: number;
  /** The epoch of the verified topology it replaced. */
  previousEpoch?: number;
  /** The stored value did not verify: why. It was replaced, not trusted. */
  replacedUnverified?: string;
}

/**
 * Publishes `signed` as the shards will judge it: the stored value is verified before its epoch
 * counts (an unverifiable one, such as garbage with a huge epoch, is replaced and reported), the
 * new one is checked against it (signer, every capability the change needs, newer epoch, every
 * registered shard's certified range), and the write is a compare-and-swap on the key's mod
 * revision, so of two racing publishers one fails. Over a stored value that does not verify, the
 * epoch the shards report serving (src/control/epoch-floor.ts) must be exceeded instead.
 */
export async function publishSignedTopology(etcd: Etcd3, key: string, signed: SignedTopology, checks: PublishChecks): Promise<PublishResult> {
  const stored = await readSignedTopology(etcd, key);
  let base: Topology | undefined;
  let replacedUnverified: string | undefined;
  if (stored) {
    const v = await verifySignedTopology(stored.signed ?? null, { verifier: checks.verifier, cluster: checks.cluster });
    if (v.ok) base = v.topology;
    else replacedUnverified = `${v.reason}: ${v.message}`;
  }
  const next = await verifySignedTopology(signed, {
    verifier: checks.verifier,
    cluster: checks.cluster,
    current: base,
    bootstrap: !stored,
    certifiedRange: (id) => checks.certifiedRanges.get(id),
  });
  if (!next.ok) {
    if (next.reason === 'not_newer' && base) throw new PublishError(`epoch ${parseTopology(signed.document).epoch} is not newer than the published epoch ${base.epoch}; ${nextEpochAdvice(base.epoch)}`);
    throw new PublishError(`refused (${next.reason}): ${next.message}`);
  }
  const refusal = base && checks.refuseChange?.(base, next.topology);
  if (refusal) throw new PublishError(refusal);
  if (!base && stored) {
    // Nothing verified to compare with (the stored value was replaced, or lost): the epoch the
    // shards serve is the floor, or they would refuse this one as not newer.
    const floor = await reportedEpochFloor(etcd, checks.cluster, '').catch(() => undefined);
    if (floor !== undefined && next.topology.epoch <= floor) {
      throw new PublishError(`epoch ${next.topology.epoch} is not newer than epoch ${floor}, which the shards serve (the stored value did not verify: ${replacedUnverified}); ${nextEpochAdvice(floor)}`);
    }
  }
  const txn = etcd.if(key, 'Mod', '==', stored ? stored.revision : '0').then(etcd.put(key).value(JSON.stringify(signed)));
  const r = await txn.commit();
  if (!r.succeeded) throw new PublishError('the topology changed while publishing (another operator?); read it again and retry');
  return { epoch: next.topology.epoch, ...(base ? { previousEpoch: base.epoch } : {}), ...(replacedUnverified ? { replacedUnverified } : {}) };
}

/** What to plan next after `epoch`: an epoch `themis-admin topology plan --epoch` accepts. */
export function nextEpochAdvice(epoch: number): string {
  return epoch < Number.MAX_SAFE_INTEGER ? `plan with --epoch ${epoch + 1}` : 'no higher epoch exists; this cluster\'s epochs are exhausted';
}
