// Publishing and reading the signed topology in etcd. Publishing is a compare-and-swap on the
// key's revision after checking that the new epoch is higher, so two operators cannot both
// win and an older topology never replaces a newer one.
import type { Etcd3 } from 'etcd3';
import { parseTopology } from '../topology/document.js';
import type { SignedTopology } from '../topology/signed.js';

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

export async function publishSignedTopology(etcd: Etcd3, key: string, signed: SignedTopology): Promise<{ epoch: number; previousEpoch: number | undefined }> {
  const epoch = parseTopology(signed.document).epoch;
  const current = await readSignedTopology(etcd, key);
  let previousEpoch: number | undefined;
  if (current) {
    try {
      previousEpoch = parseTopology(current.signed?.document ?? '').epoch;
    } catch {
      previousEpoch = undefined; // garbage in etcd: a valid signed topology may replace it
    }
    if (previousEpoch !== undefined && epoch <= previousEpoch) {
      throw new PublishError(`epoch ${epoch} is not newer than the published epoch ${previousEpoch}; plan with --epoch ${previousEpoch + 1}`);
    }
  }
  const txn = etcd.if(key, 'Mod', '==', current ? current.revision : '0').then(etcd.put(key).value(JSON.stringify(signed)));
  const r = await txn.commit();
  if (!r.succeeded) throw new PublishError('the topology changed while publishing (another operator?); read it again and retry');
  return { epoch, previousEpoch };
}
