// Signing and verifying the canonical string: ECDSA keys sign ECDSA-with-SHA256 (DER),
// RSA keys RSASSA-PKCS1-v1_5 with SHA-256 — exactly what `openssl dgst -sha256 -sign` makes.
// Keys are KeyObjects made once; signing with a PEM string per call is ~15× slower.
import { createHash, sign, verify, type KeyObject } from 'node:crypto';
import type { Clock, Random } from '../runtime.js';
import { H, canonicalString, EMPTY_SHA256, type SignedFields } from './canonical.js';

export function sha256Hex(body: Buffer | string | undefined): string {
  if (body === undefined || body.length === 0) return EMPTY_SHA256;
  return createHash('sha256').update(body).digest('hex');
}

export class RequestSigner {
  constructor(
    private readonly key: KeyObject,
    readonly shardId: string,
    readonly certSerial: string,
    private readonly clock: Clock,
    private readonly random: Random,
  ) {
    if (key.type !== 'private') throw new TypeError('RequestSigner needs a private key');
  }

  /** The six x-themis-* headers for one request. */
  headers(method: string, path: string, contentSha256 = EMPTY_SHA256): Record<string, string> {
    const f: SignedFields = {
      shardId: this.shardId,
      certSerial: this.certSerial,
      timestamp: this.clock.now(),
      nonce: this.random.bytes(8).toString('hex'),
      contentSha256,
    };
    const signature = sign('sha256', Buffer.from(canonicalString(method, path, f)), this.key);
    return {
      [H.shardId]: f.shardId,
      [H.certSerial]: f.certSerial,
      [H.timestamp]: String(f.timestamp),
      [H.nonce]: f.nonce,
      [H.contentSha256]: f.contentSha256,
      [H.signature]: signature.toString('base64'),
    };
  }
}

/** Verifies without throwing: a malformed signature is simply not valid. */
export function verifySignature(canonical: string, signature: Buffer, publicKey: KeyObject): boolean {
  try {
    return verify('sha256', Buffer.from(canonical), publicKey, signature);
  } catch {
    return false;
  }
}
