// The signed-request protocol's wire form: the six x-themis-* headers, their validation,
// and the canonical string (ARCHITECTURE.md "Mesh protocol") that the signature covers.
import type { IncomingHttpHeaders } from 'node:http';
import { ThemisError } from '../errors.js';
import { SHARD_ID_RE } from '../topology/topology.js';

export const SIG_VERSION = 'THEMIS-SIG-V1';

export const H = {
  shardId: 'x-themis-shard-id',
  certSerial: 'x-themis-cert-serial',
  timestamp: 'x-themis-timestamp',
  nonce: 'x-themis-nonce',
  contentSha256: 'x-themis-content-sha256',
  signature: 'x-themis-signature',
} as const;

/** SHA-256 of the empty string: the content hash of a request without a body. */
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

export interface SignedFields {
  shardId: string;
  /** Lower-case hex of the serial's integer value, no leading zeros. */
  certSerial: string;
  /** Unix milliseconds. */
  timestamp: number;
  /** 16 lower-case hex digits. */
  nonce: string;
  contentSha256: string;
}

export interface SignedRequestHeaders extends SignedFields {
  signature: Buffer;
}

/** The eight fields joined by "\n", no trailing newline. `path` includes the query string as sent. */
export function canonicalString(method: string, path: string, f: SignedFields): string {
  return `${SIG_VERSION}\n${method}\n${path}\n${f.shardId}\n${f.certSerial}\n${f.timestamp}\n${f.nonce}\n${f.contentSha256}`;
}

const SERIAL_RE = /^(0|[1-9a-f][0-9a-f]{0,39})$/;
const TIMESTAMP_RE = /^\d{1,15}$/;
const NONCE_RE = /^[0-9a-f]{16}$/;
const SHA256_RE = /^[0-9a-f]{64}$/;
const BASE64_RE = /^[A-Za-z0-9+/]{8,1400}={0,2}$/;

function one(headers: IncomingHttpHeaders, name: string, re: RegExp, what: string): string {
  const v = headers[name];
  if (v === undefined) throw new ThemisError('SIGNATURE_HEADERS_INVALID', `missing header ${name}`);
  if (typeof v !== 'string' || !re.test(v)) {
    throw new ThemisError('SIGNATURE_HEADERS_INVALID', `header ${name} must be ${what}`);
  }
  return v;
}

/** Reads and validates the six headers; throws SIGNATURE_HEADERS_INVALID naming the header. */
export function parseSignedHeaders(headers: IncomingHttpHeaders): SignedRequestHeaders {
  const shardId = one(headers, H.shardId, SHARD_ID_RE, 'a shard id such as shard-001');
  const certSerial = one(headers, H.certSerial, SERIAL_RE, 'lower-case hex without leading zeros');
  const timestamp = Number(one(headers, H.timestamp, TIMESTAMP_RE, 'Unix time in milliseconds'));
  const nonce = one(headers, H.nonce, NONCE_RE, '16 lower-case hex digits');
  const contentSha256 = one(headers, H.contentSha256, SHA256_RE, '64 lower-case hex digits (SHA-256 of the body)');
  const signature = Buffer.from(one(headers, H.signature, BASE64_RE, 'base64'), 'base64');
  return { shardId, certSerial, timestamp, nonce, contentSha256, signature };
}
