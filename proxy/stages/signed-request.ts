// The signed-request stages for shard peers, cheapest first and in the documented order:
// headers (400) → identity matches the TLS peer (401) → capability (403) → timestamp (401)
// → signature (401) → body matches the signed hash (401) → nonce unseen (409). The nonce is
// remembered only after the signature verified, so forged requests cannot fill the cache.
import type { IncomingHttpHeaders, Http2ServerRequest } from 'node:http2';
import { ThemisError } from '../../src/errors.js';
import { readBody } from '../../src/http-body.js';
import { canonicalString, parseSignedHeaders, type SignedRequestHeaders } from '../../src/signing/canonical.js';
import { sha256Hex, verifySignature } from '../../src/signing/sign.js';
import type { ReplayGuard } from '../../src/signing/replay-guard.js';
import type { MeshPeer } from '../peer-identity.js';
import type { Operation } from '../operations.js';
import { requireCapability } from './capability.js';

export interface SignedRequestDeps {
  replay: ReplayGuard;
  maxBodyBytes: number;
}

/**
 * The checks that need only the request's head: headers, identity, capability, timestamp
 * and signature, in that order. Resolve the body next, then call checkSignedBody.
 */
export function checkSignedHead(method: string, url: string, headers: IncomingHttpHeaders, peer: MeshPeer, op: Operation, replay: ReplayGuard): SignedRequestHeaders {
  const sig = parseSignedHeaders(headers);
  if (sig.shardId !== peer.identity.shardId) {
    throw new ThemisError('IDENTITY_MISMATCH', `x-themis-shard-id "${sig.shardId}" is not the TLS peer's shard "${peer.identity.shardId}"`);
  }
  if (sig.certSerial !== peer.serial) {
    throw new ThemisError('IDENTITY_MISMATCH', `x-themis-cert-serial ${sig.certSerial} is not the TLS peer's certificate serial`);
  }
  requireCapability(peer, op.capability);
  replay.checkTimestamp(sig.timestamp);
  if (!verifySignature(canonicalString(method, url, sig), sig.signature, peer.publicKey)) {
    throw new ThemisError('SIGNATURE_INVALID', 'the signature does not verify over the canonical string with the peer certificate key');
  }
  return sig;
}

/** The body matches the signed hash, then the nonce is unseen (and remembered from now on). */
export function checkSignedBody(sig: SignedRequestHeaders, body: Buffer, replay: ReplayGuard): void {
  if (sha256Hex(body) !== sig.contentSha256) {
    throw new ThemisError('SIGNATURE_INVALID', 'the body does not match the signed x-themis-content-sha256');
  }
  replay.checkAndRemember(sig.shardId, sig.nonce, sig.timestamp);
}

/** Runs every check on a compatibility-API request; resolves with the verified body bytes. */
export async function checkSignedRequest(req: Http2ServerRequest, peer: MeshPeer, op: Operation, deps: SignedRequestDeps): Promise<Buffer> {
  const sig = checkSignedHead(req.method, req.url, req.headers, peer, op, deps.replay);
  const body = await readBody(req, deps.maxBodyBytes);
  checkSignedBody(sig, body, deps.replay);
  return body;
}
