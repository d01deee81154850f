// The chain a TLS peer presented, as Node reports it: leaf first, as DER. Shared by the mesh's
// peer checks (proxy/peer-identity.ts) and the renewal service (renewal-server.ts).
import type { TLSSocket, DetailedPeerCertificate } from 'node:tls';

/** A peer certificate and its issuers as Node reports them, leaf first, as DER. */
export function chainOf(cert: DetailedPeerCertificate | undefined): Uint8Array[] {
  const out: Uint8Array[] = [];
  const seen = new Set<string>();
  for (let c = cert; c?.raw && !seen.has(c.fingerprint256); c = c.issuerCertificate) {
    seen.add(c.fingerprint256);
    out.push(new Uint8Array(c.raw));
  }
  return out;
}

/**
 * The presented chain, leaf first, as DER.
 *
 * A server that wants it must not give OpenSSL a trust store (`ca`): when OpenSSL's own check of
 * a client certificate succeeds, Node 24.21 (and 26.8+, nodejs/node#65579) drops the issuers from
 * what getPeerCertificate(true) reports, and the chain ends at the leaf. Our servers verify every
 * chain in code (src/pki/verify.ts) with `rejectUnauthorized: false` and never read
 * `socket.authorized`, so OpenSSL's check only cost that. See serverTlsOptions.
 */
export function presentedChain(socket: TLSSocket): Uint8Array[] {
  return chainOf(socket.getPeerCertificate(true) as DetailedPeerCertificate);
}
