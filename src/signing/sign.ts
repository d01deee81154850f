// Signing and verifying the canonical string: ECDSA keys sign ECDSA-with-SHA256 (DER),
// RSA keys RSASSA-PKCS1-v1_5 with SHA-256 — exactly what `openssl dgst -sha256 -sign` makes.
// Keys are KeyObjects made once; signing with a PEM string per call is ~15× slower.
// With `signing.threadpool` the same operations run on libuv's thread pool (the callback forms
// of crypto.sign/verify), off the event loop; the bytes signed and checked are the same.
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
    /** Whether the next request is signed on libuv's thread pool (headersAsync) rather than on the event loop (headers). */
    readonly offload: () => boolean = () => false,
  ) {
    if (key.type !== 'private') throw new TypeError('RequestSigner needs a private key');
  }

  /** The six x-themis-* headers for one request, signed on the event loop. */
  headers(method: string, path: string, contentSha256 = EMPTY_SHA256): Record<string, string> {
    const f = this.fields(contentSha256);
    return asHeaders(f, sign('sha256', Buffer.from(canonicalString(method, path, f)), this.key));
  }

  /** The same headers, signed on libuv's thread pool. */
  headersAsync(method: string, path: string, contentSha256 = EMPTY_SHA256): Promise<Record<string, string>> {
    const f = this.fields(contentSha256);
    return new Promise((resolve, reject) => {
      sign('sha256', Buffer.from(canonicalString(method, path, f)), this.key, (err, signature) => (err ? reject(err) : resolve(asHeaders(f, signature))));
    });
  }

  /** Timestamp and nonce are taken when the request is signed, not when its signature is done. */
  private fields(contentSha256: string): SignedFields {
    return {
      shardId: this.shardId,
      certSerial: this.certSerial,
      timestamp: this.clock.now(),
      nonce: this.random.bytes(8).toString('hex'),
      contentSha256,
    };
  }
}

function asHeaders(f: SignedFields, signature: Buffer): Record<string, string> {
  return {
    [H.shardId]: f.shardId,
    [H.certSerial]: f.certSerial,
    [H.timestamp]: String(f.timestamp),
    [H.nonce]: f.nonce,
    [H.contentSha256]: f.contentSha256,
    [H.signature]: signature.toString('base64'),
  };
}

/** Verifies without throwing: a malformed signature is simply not valid. */
export function verifySignature(canonical: string, signature: Buffer, publicKey: KeyObject): boolean {
  try {
    return verify('sha256', Buffer.from(canonical), publicKey, signature);
  } catch {
    return false;
  }
}

/** verifySignature on libuv's thread pool; never rejects. */
export function verifySignatureAsync(canonical: string, signature: Buffer, publicKey: KeyObject): Promise<boolean> {
  return new Promise((resolve) => {
    try {
      verify('sha256', Buffer.from(canonical), publicKey, signature, (err, ok) => resolve(!err && ok));
    } catch {
      resolve(false);
    }
  });
}
