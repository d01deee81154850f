// Whether this sidecar may act as primary of a replica group, from its own certificate: valid and
// not revoked; a group's first term only with a `primary`-role certificate (a `replica`
// certificate acts as primary only by failover); a failover only with `replicate`; and either
// way only for ranges inside its certified token range. The signed topology naming it as a
// copy of the group is the operator's part of the authorisation (failover.ts checks that).
import type { ThemisIdentity } from '../../src/pki/identity-extension.js';
import type { ReplicaGroup } from '../../src/topology/replica-groups.js';

export interface OwnCertificate {
  identity: ThemisIdentity;
  notAfter: Date;
  /** Why its own certificate is revoked, when it is. */
  ownRevoked?: string | undefined;
}

/** Why this shard may not act for `g` now; undefined when it may. */
export function ineligibility(cert: OwnCertificate, g: ReplicaGroup, firstTerm: boolean, now: number): string | undefined {
  const id = cert.identity;
  if (cert.ownRevoked) return `its certificate is revoked (${cert.ownRevoked})`;
  if (cert.notAfter.getTime() <= now) return 'its certificate has expired';
  if (firstTerm && id.role !== 'primary') return `a "${id.role}" certificate takes a group's first term only by failover`;
  if (!firstTerm && !id.capabilities.includes('replicate')) return 'its certificate lacks the replicate capability';
  const outside = g.ranges.find((r) => r.start < id.tokenRangeStart || r.end > id.tokenRangeEnd);
  if (outside) return `its certified token range does not cover ${outside.start.toString(16)}–${outside.end.toString(16)}`;
  return undefined;
}
