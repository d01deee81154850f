// Which CA may grant which role, bound in the certificates themselves: every intermediate
// carries the certificate-policy OID of its kind (cluster, operator, client), signed by the
// root, and a role counts only when the CA that issued the leaf carries the matching policy.
// Leaves carry their issuer's policy too, so `openssl verify -policy OID -explicit_policy`
// checks the same binding without our code. See docs/security-model.md "Roles and issuers".
import type { Role } from './identity-extension.js';
import { x509 } from './x509.js';

export const CA_KINDS = ['cluster', 'operator', 'client'] as const;
export type CaKind = (typeof CA_KINDS)[number];
export type LeafProfile = 'shard' | 'operator' | 'client' | 'server';

/** Under the identity extension's arc (…1456215.1): …1456215.2.{1,2,3}; every arc fits in 32 bits. */
const POLICY_ARC = '1.2.840.113556.1.8000.2554.53803.51159.47884.18026.35185.1890621.1456215.2';
export const CA_KIND_POLICY: Readonly<Record<CaKind, string>> = {
  cluster: `${POLICY_ARC}.1`,
  operator: `${POLICY_ARC}.2`,
  client: `${POLICY_ARC}.3`,
};

/** Which CA signs which leaf: shards and the etcd server come from the cluster CA. */
export const ISSUER_OF: Readonly<Record<LeafProfile, CaKind>> = {
  shard: 'cluster',
  server: 'cluster',
  operator: 'operator',
  client: 'client',
};

/** The only CA kind that may grant each role. */
export const ISSUER_KIND_OF_ROLE: Readonly<Record<Role, CaKind>> = {
  primary: 'cluster',
  replica: 'cluster',
  operator: 'operator',
  client: 'client',
};

/** What a certificate's policies say of its kind: one of ours, none, or contradictory. */
export type KindClaim = { kind: CaKind } | { kind: undefined; reason: 'none' | 'several' };

export function kindClaimOf(cert: x509.X509Certificate): KindClaim {
  const ext = cert.getExtension(x509.CertificatePolicyExtension);
  const kinds = CA_KINDS.filter((k) => ext?.policies.includes(CA_KIND_POLICY[k]));
  if (kinds.length === 1) return { kind: kinds[0]! };
  return { kind: undefined, reason: kinds.length === 0 ? 'none' : 'several' };
}

export function policyExtension(kind: CaKind): x509.CertificatePolicyExtension {
  // Not critical: relying parties that do not process policies (etcd's Go TLS among them)
  // must still accept the chain; the binding is enforced by our verifier and by openssl.
  return new x509.CertificatePolicyExtension([CA_KIND_POLICY[kind]], false);
}

/**
 * Why a leaf claiming `role` may not have been issued by a CA with `issuer` claim, or
 * undefined when it may. `leaf` is the leaf's own claim, which must not contradict.
 */
export function roleIssuerMismatch(role: Role, issuer: KindClaim, leaf: KindClaim, issuerSubject: string): string | undefined {
  const want = ISSUER_KIND_OF_ROLE[role];
  if (issuer.kind === undefined) {
    const why = issuer.reason === 'none' ? 'carries no CA-kind policy' : 'claims several CA kinds';
    return `a ${role} certificate must be issued by the ${want} CA; its issuer ${issuerSubject} ${why}`;
  }
  if (issuer.kind !== want) return `a ${role} certificate must be issued by the ${want} CA, not by the ${issuer.kind} CA (${issuerSubject})`;
  if (leaf.kind === undefined && leaf.reason === 'several') return `the certificate claims several CA kinds in its policies`;
  if (leaf.kind !== undefined && leaf.kind !== want) return `the certificate's policy names the ${leaf.kind} CA, but its role is ${role}`;
  return undefined;
}
