// CRLs in etcd: `crl/{ca}` holds a CA's signed CRL (PEM, followed by the CA's certificate
// unless it is the root) and `crl/revoked` a derived, human-readable list of every revoked
// serial. Publishing refuses a CRL that sidecars would refuse (bad signature, not newer) and
// writes both keys in one transaction that fails if any CRL key changed since it was read.
import type { Etcd3 } from 'etcd3';
import { CA_NAMES, type CaName } from '../pki/ca-store.js';
import { CrlTrust, type TrustedCrl } from '../pki/crl-trust.js';
import { PeerVerifier } from '../pki/verify.js';
import type { Clock } from '../runtime.js';
import { newerCrl } from '../pki/crl.js';
import { etcdKeys } from './etcd-keys.js';

/**
 * The only `crl/{name}` keys: one per CA of our PKI, and `next-{ca}` for the CAs of the new root
 * while a root rotation trusts two roots (docs/pki.md "Rotating the root").
 */
export const CRL_NAMES = [...CA_NAMES, ...CA_NAMES.map((ca) => `next-${ca}` as const)] as const;
export type CrlSlot = (typeof CRL_NAMES)[number];

/** The CA kind whose CRL a `crl/{name}` key holds: `next-cluster` holds a cluster CA's. */
export function caOfSlot(name: string): string {
  return name.startsWith('next-') ? name.slice('next-'.length) : name;
}
/** A CRL value larger than this is refused unread (about 20 000 revoked serials fit in 1 MiB). */
export const MAX_CRL_VALUE_BYTES = 1024 * 1024;

export class CrlPublishError extends Error {
  override name = 'CrlPublishError';
}

/**
 * The `crl/{name}` value for a CA's CRL: the CRL PEM followed by the CA's own certificate, so
 * sidecars can check CRLs of CAs they have not met in a chain yet. The root's certificate is
 * already in every sidecar's trust, so its CRL travels alone.
 */
export function crlValue(name: CaName, crlPem: string, caCertPem: string): string {
  return caOfSlot(name) === 'root' ? crlPem : crlPem.trimEnd() + '\n' + caCertPem.trimEnd() + '\n';
}

export interface StoredCrl {
  /** The last path segment: root, cluster, operator, client (or whatever label was used). */
  name: string;
  key: string;
  value: string;
  revision: string;
}

/** The `crl/{name}` values of CRL_NAMES, unverified (other keys under crl/ are not read). */
export async function readStoredCrls(etcd: Etcd3, cluster: string): Promise<StoredCrl[]> {
  const k = etcdKeys(cluster);
  const out: StoredCrl[] = [];
  for (const name of CRL_NAMES) {
    const r = await etcd.get(k.crl(name)).exec();
    const kv = r.kvs[0];
    if (kv) out.push({ name, key: k.crl(name), value: kv.value.toString('utf8'), revision: kv.mod_revision });
  }
  return out;
}

/** The verified CRLs among those stored, keeping the highest number per issuer. */
export function verifiedCrls(stored: readonly StoredCrl[], trust: CrlTrust): Map<string, { name: string; value: TrustedCrl }> {
  const best = new Map<string, { name: string; value: TrustedCrl }>();
  for (const s of stored) {
    if (s.value.length > MAX_CRL_VALUE_BYTES) continue;
    const c = trust.check(s.value, () => undefined);
    if (!c.ok) continue;
    const prev = best.get(c.value.issuerKey);
    if (!prev || newerCrl(c.value.crl, prev.value.crl) === c.value.crl) best.set(c.value.issuerKey, { name: s.name, value: c.value });
  }
  return best;
}

/**
 * A verifier for `rootPem` that knows the verified CRLs etcd holds, and any `extra` CRLs (PEM)
 * the caller brings; per issuer the highest CRL number counts.
 */
export async function verifierWithEtcdCrls(etcd: Etcd3, cluster: string, rootPem: string, clock: Clock, extra: readonly string[] = []): Promise<PeerVerifier> {
  const stored = verifiedCrls(await readStoredCrls(etcd, cluster), new CrlTrust(rootPem, clock));
  return new PeerVerifier({ root: rootPem, clock, crls: [...[...stored.values()].map((c) => c.value.crl), ...extra] });
}

export interface RevokedIndex {
  updated_at: string;
  revoked: { ca: string; issuer: string; crl_number: string; serial: string; reason: string; revoked_at: string }[];
}

export function revokedIndex(crls: Iterable<{ name: string; value: TrustedCrl }>, now: Date): RevokedIndex {
  const revoked: RevokedIndex['revoked'] = [];
  for (const { name, value } of crls) {
    for (const [serial, r] of value.crl.revoked) {
      revoked.push({ ca: name, issuer: value.crl.issuer, crl_number: String(value.crl.crlNumber), serial, reason: r.reason, revoked_at: r.date.toISOString() });
    }
  }
  revoked.sort((a, b) => a.ca.localeCompare(b.ca) || a.serial.localeCompare(b.serial));
  return { updated_at: now.toISOString(), revoked };
}

/**
 * Publishes `value` (CRL PEM + issuer certificate) under `crl/{name}` and refreshes
 * `crl/revoked`. Throws CrlPublishError when the CRL does not verify or is not newer.
 */
export async function publishCrl(etcd: Etcd3, cluster: string, name: string, value: string, trust: CrlTrust, now: Date): Promise<{ crl: TrustedCrl; previous: bigint | undefined; revokedTotal: number }> {
  const k = etcdKeys(cluster);
  const stored = await readStoredCrls(etcd, cluster);
  const current = verifiedCrls(stored, trust);
  const check = trust.check(value, (issuerKey) => current.get(issuerKey)?.value.crl);
  if (!check.ok) throw new CrlPublishError(`refused (${check.reason}): ${check.message}`);
  // crl/{name} holds the CRL of the CA of that kind only (its policy, signed by the root, says which).
  if (check.value.issuerKind !== caOfSlot(name)) {
    const is = check.value.issuerKind === undefined ? 'a CA that names no kind in its policies' : `the ${check.value.issuerKind} CA`;
    throw new CrlPublishError(`refused (wrong_issuer): this is the CRL of ${check.value.crl.issuer}, ${is}, not of the ${caOfSlot(name)} CA`);
  }
  const next = check.value.crl.nextUpdate;
  if (next && next.getTime() < now.getTime()) {
    throw new CrlPublishError(`refused: the CRL's nextUpdate (${next.toISOString()}) has passed; make a fresh one with themis-pki crl --ca ${caOfSlot(name)}`);
  }
  if (value.length > MAX_CRL_VALUE_BYTES) throw new CrlPublishError(`refused: the value is larger than ${MAX_CRL_VALUE_BYTES} bytes`);
  const previous = current.get(check.value.issuerKey)?.value.crl.crlNumber;
  current.set(check.value.issuerKey, { name, value: check.value });
  const index = revokedIndex(current.values(), now);
  const own = stored.find((s) => s.name === name);
  let txn = etcd.if(k.crl(name), 'Mod', '==', own ? own.revision : '0');
  for (const s of stored) if (s !== own) txn = txn.and(s.key, 'Mod', '==', s.revision);
  const r = await txn.then(etcd.put(k.crl(name)).value(value), etcd.put(k.revoked).value(JSON.stringify(index, null, 2))).commit();
  if (!r.succeeded) throw new CrlPublishError('the CRLs in etcd changed while publishing (another operator?); run the command again');
  return { crl: check.value, previous, revokedTotal: index.revoked.length };
}
