// `themis-admin check`: does etcd hold CRLs older than those the shards enforce? Each sidecar
// reports the CRL number in force per issuer (shards/{id}/replication, `crls`); a number above the
// one etcd holds means etcd was restored from an older snapshot or rolled back. The sidecars keep
// refusing the older CRL (`not_newer`, docs/disaster-recovery.md); this names it and the fix.
import type { Etcd3 } from 'etcd3';
import { readStoredCrls, verifiedCrls } from '../control/crl-store.js';
import { CrlTrust } from '../pki/crl-trust.js';
import type { Clock } from '../runtime.js';

/** The verified CRL etcd holds per issuer (its subject DN): the crl/{name} key and its number. */
export type EtcdCrlNumbers = Map<string, { name: string; number: bigint }>;

export async function etcdCrlNumbers(etcd: Etcd3, cluster: string, rootPem: string, clock: Clock): Promise<EtcdCrlNumbers> {
  const out: EtcdCrlNumbers = new Map();
  for (const { name, value } of verifiedCrls(await readStoredCrls(etcd, cluster), new CrlTrust(rootPem, clock)).values()) {
    if (value.crl.crlNumber !== undefined) out.set(value.crl.issuer, { name, number: value.crl.crlNumber });
  }
  return out;
}

export interface CrlCheck {
  name: 'crl';
  status: 'ok' | 'fail';
  detail: string;
  fix?: string;
}

/** One check per shard: `reported` is its report's `crls` (issuer DN → CRL number, decimal text). */
export function crlRollbackCheck(shard: string, reported: unknown, etcd: EtcdCrlNumbers): CrlCheck | undefined {
  if (!reported || typeof reported !== 'object' || Array.isArray(reported)) return undefined; // a sidecar before it reported CRLs
  const ahead: string[] = [];
  const fixes = new Set<string>();
  for (const [issuer, text] of Object.entries(reported as Record<string, unknown>)) {
    if (typeof text !== 'string' || !/^\d{1,40}$/.test(text)) continue;
    // An issuer etcd holds no CRL of is not compared: CRLs may come from files alone.
    const held = etcd.get(issuer);
    if (!held || BigInt(text) <= held.number) continue;
    ahead.push(`CRL number ${text} of ${issuer}, newer than the ${held.number} etcd holds (crl/${held.name})`);
    fixes.add(`themis-admin crl publish --ca ${held.name} --pki DIR …`);
  }
  if (ahead.length === 0) return { name: 'crl', status: 'ok', detail: `${shard} enforces no CRL newer than etcd's` };
  return {
    name: 'crl',
    status: 'fail',
    detail: `${shard} enforces ${ahead.join('; ')}: etcd was restored from an older snapshot or rolled back; the sidecars refuse the older CRL (not_newer) and keep every revocation they have seen`,
    fix: `publish each CA's current CRL (with every revocation since): ${[...fixes].join(', ')}; docs/disaster-recovery.md`,
  };
}
