// Who is on the other end of a mesh connection, decided once per TLS session: the presented
// chain is verified in code (root, CRL of every CA, validity, usage, identity extension) so
// every refusal has a reason to log, audit and count. The result is reused for every stream.
import { X509Certificate, type KeyObject } from 'node:crypto';
import type { TLSSocket, DetailedPeerCertificate } from 'node:tls';
import type { AuditPeer } from '../src/audit/audit-log.js';
import type { CaKind } from '../src/pki/ca-kind.js';
import type { ThemisIdentity } from '../src/pki/identity-extension.js';
import type { ClaimedLeaf, PeerVerifier } from '../src/pki/verify.js';

export type PeerKind = 'shard' | 'client' | 'operator';

/** The verifier bound the role to its issuing CA's kind, so the kind says what the peer is. */
const KIND_OF_ISSUER: Record<CaKind, PeerKind> = { cluster: 'shard', operator: 'operator', client: 'client' };

export interface MeshPeer {
  readonly kind: PeerKind;
  readonly identity: ThemisIdentity;
  readonly serial: string;
  readonly subject: string;
  /** The issuing CA's subject. */
  readonly issuer: string;
  readonly notAfter: Date;
  /** Made once per session: verifying signatures with it costs no parsing. */
  readonly publicKey: KeyObject;
  readonly address: string;
  /** The chain as presented (DER, leaf first): re-verified when CRLs or trust change. */
  readonly chain: readonly Uint8Array[];
}

export type Admission =
  | { ok: true; peer: MeshPeer }
  /** `leaf`: what the refused certificate claims (subject, issuer), when it decoded. */
  | { ok: false; reason: string; message: string; serial?: string; leaf?: ClaimedLeaf };

/** How the audit trail names a mesh peer. */
export function auditPeer(peer: MeshPeer): AuditPeer {
  return { shardId: peer.identity.shardId || undefined, cn: peer.subject, serial: peer.serial, issuer: peer.issuer, address: peer.address };
}

import { chainOf, presentedChain } from '../src/pki/presented-chain.js';

export { chainOf, presentedChain };

/**
 * The cluster CAs (hex DER names) whose certificates may act as shards here: this sidecar's own
 * cluster CA and, during a root rotation, the other generation's (TlsMaterial.shardIssuers).
 */
export type ShardIssuers = string | ReadonlySet<string>;

function isShardIssuer(issuers: ShardIssuers, name: string): boolean {
  return typeof issuers === 'string' ? issuers === name : issuers.has(name);
}

/**
 * Verifies the TLS peer. `clusterIssuer`: the cluster CA(s) of this cluster (ShardIssuers):
 * only certificates they issued may act as shards.
 */
export function admitPeer(socket: TLSSocket, verifier: PeerVerifier, clusterIssuer: ShardIssuers): Admission {
  if (socket.getProtocol() !== 'TLSv1.3') return { ok: false, reason: 'tls_version', message: `protocol ${socket.getProtocol()} is not TLS 1.3` };
  const chain = presentedChain(socket);
  if (chain.length === 0) return { ok: false, reason: 'no_client_certificate', message: 'the client presented no certificate' };
  const r = verifier.verify(chain, 'clientAuth');
  if (!r.ok) return { ok: false, reason: r.reason, message: r.message, ...(r.serial ? { serial: r.serial } : {}), ...(r.leaf ? { leaf: r.leaf } : {}) };
  const { identity } = r.peer;
  // A shard must also come from this sidecar's own cluster CA and name its shard.
  const kind = KIND_OF_ISSUER[r.peer.issuerKind];
  if (kind === 'shard' && (!isShardIssuer(clusterIssuer, r.peer.issuerName) || !identity.shardId)) {
    return {
      ok: false,
      reason: 'wrong_issuer',
      message: `${r.peer.subject} claims a shard role but was not issued by this cluster's CA`,
      serial: r.peer.serial,
      leaf: { subject: r.peer.subject, issuer: r.peer.issuer, serial: r.peer.serial },
    };
  }
  return {
    ok: true,
    peer: {
      kind,
      identity,
      serial: r.peer.serial,
      subject: r.peer.subject,
      issuer: r.peer.issuer,
      notAfter: r.peer.notAfter,
      publicKey: new X509Certificate(Buffer.from(chain[0]!)).publicKey,
      address: `${socket.remoteAddress}:${socket.remotePort}`,
      chain,
    },
  };
}

/**
 * For outgoing sessions: the server must present a valid chain for exactly the shard the
 * topology names, issued by the cluster CA. Returns its serial and chain; throws with the reason.
 */
export function verifyServerCert(cert: DetailedPeerCertificate, expectedShard: string, verifier: PeerVerifier, clusterIssuer: ShardIssuers): { serial: string; chain: Uint8Array[] } {
  const chain = chainOf(cert);
  const r = verifier.verify(chain, 'serverAuth');
  if (!r.ok) throw new Error(`peer certificate refused: ${r.reason}: ${r.message}`);
  if (r.peer.identity.shardId !== expectedShard || !isShardIssuer(clusterIssuer, r.peer.issuerName)) {
    throw new Error(`peer presented a certificate for "${r.peer.identity.shardId || r.peer.subject}", expected shard ${expectedShard}`);
  }
  return { serial: r.peer.serial, chain };
}
