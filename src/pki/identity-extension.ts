// The ThemisIdentity certificate extension: its OID, the ASN.1 codec (asn1js) and the parsers
// for the values it carries (capabilities, role, 64-bit token range). See ARCHITECTURE.md "PKI".
import * as asn1js from 'asn1js';
import { TOKEN_MAX, parseToken, tokenHex } from '../hash.js';
import { PkiError, invalid } from './errors.js';

/** GUID-derived arc under Microsoft's private-OID base; every arc fits in 32 bits. */
export const THEMIS_IDENTITY_OID = '1.2.840.113556.1.8000.2554.53803.51159.47884.18026.35185.1890621.1456215.1';

export const CAPABILITIES = [
  'read',
  'write',
  'replicate',
  'admin',
  'rebalance',
  'add_shard',
  'remove_shard',
  'view_topology',
] as const;
export type Capability = (typeof CAPABILITIES)[number];

/** ENUMERATED values, in order: primary(0), replica(1), operator(2), client(3). */
export const ROLES = ['primary', 'replica', 'operator', 'client'] as const;
export type Role = (typeof ROLES)[number];

export interface ThemisIdentity {
  shardId: string; // "shard-001"; empty for operators and clients
  datacenter: string;
  tokenRangeStart: bigint; // 0 … 2^64-1
  tokenRangeEnd: bigint; // inclusive
  capabilities: readonly Capability[];
  role: Role;
}

export function isCapability(s: string): s is Capability {
  return (CAPABILITIES as readonly string[]).includes(s);
}

/** Parses "read,write" into known, unique capabilities; `allowed` narrows the set per profile. */
export function parseCapabilities(text: string, field = '--capabilities', allowed: readonly Capability[] = CAPABILITIES): Capability[] {
  const names = text.split(',').map((s) => s.trim());
  if (names.length === 0 || names.some((n) => n === '')) {
    throw invalid(field, `expected a comma-separated list such as read,write, got "${text}"`);
  }
  const out: Capability[] = [];
  for (const n of names) {
    if (!isCapability(n)) throw invalid(field, `unknown capability "${n}"; known capabilities are: ${CAPABILITIES.join(', ')}`);
    if (!allowed.includes(n)) throw invalid(field, `capability "${n}" is not allowed here; allowed: ${allowed.join(', ')}`);
    if (out.includes(n)) throw invalid(field, `capability "${n}" is listed twice`);
    out.push(n);
  }
  return out;
}

/** Parses "START:END" (each 0x-hex or decimal, 0 … 2^64-1, START ≤ END). */
export function parseTokenRange(text: string, field = '--token-range'): { start: bigint; end: bigint } {
  const parts = text.split(':');
  if (parts.length !== 2) throw invalid(field, `expected START:END (0x-hex or decimal), got "${text}"`);
  const [a, b] = parts as [string, string];
  const start = parseToken(a);
  const end = parseToken(b);
  if (start === undefined) throw invalid(field, `START "${a}" is not an unsigned 64-bit integer (0 … ${tokenHex(TOKEN_MAX)})`);
  if (end === undefined) throw invalid(field, `END "${b}" is not an unsigned 64-bit integer (0 … ${tokenHex(TOKEN_MAX)})`);
  if (start > end) throw invalid(field, `START ${tokenHex(start)} is greater than END ${tokenHex(end)}`);
  return { start, end };
}

function checkIdentity(id: ThemisIdentity, err: (field: string, problem: string) => PkiError): void {
  for (const [name, v] of [['tokenRangeStart', id.tokenRangeStart], ['tokenRangeEnd', id.tokenRangeEnd]] as const) {
    if (typeof v !== 'bigint' || v < 0n || v > TOKEN_MAX) throw err(name, `must be an integer from 0 to 2^64-1, got ${String(v)}`);
  }
  if (id.tokenRangeStart > id.tokenRangeEnd) throw err('tokenRangeStart', 'is greater than tokenRangeEnd');
  const seen = new Set<string>();
  for (const c of id.capabilities) {
    if (!isCapability(c)) throw err('capabilities', `unknown capability "${c}"`);
    if (seen.has(c)) throw err('capabilities', `capability "${c}" appears twice`);
    seen.add(c);
  }
  if (!ROLES.includes(id.role)) throw err('role', `unknown role "${id.role}"; expected one of ${ROLES.join(', ')}`);
}

/** DER of the extension value (the OCTET STRING contents). */
export function encodeIdentity(id: ThemisIdentity): Uint8Array {
  checkIdentity(id, invalid);
  const seq = new asn1js.Sequence({
    value: [
      new asn1js.Utf8String({ value: id.shardId }),
      new asn1js.Utf8String({ value: id.datacenter }),
      asn1js.Integer.fromBigInt(id.tokenRangeStart),
      asn1js.Integer.fromBigInt(id.tokenRangeEnd),
      new asn1js.Sequence({ value: id.capabilities.map((c) => new asn1js.Utf8String({ value: c })) }),
      new asn1js.Enumerated({ value: ROLES.indexOf(id.role) }),
    ],
  });
  return new Uint8Array(seq.toBER());
}

const malformed = (field: string, problem: string) => new PkiError('MALFORMED_EXTENSION', `ThemisIdentity.${field}`, problem);

/** Decodes and checks the extension value; throws PkiError MALFORMED_EXTENSION naming the field. */
export function decodeIdentity(der: Uint8Array): ThemisIdentity {
  const bytes = new Uint8Array(der);
  const parsed = asn1js.fromBER(bytes);
  if (parsed.offset === -1) throw malformed('value', `not valid ASN.1 (${parsed.result.error || 'decode error'})`);
  if (parsed.offset !== bytes.byteLength) throw malformed('value', `${bytes.byteLength - parsed.offset} trailing byte(s) after the SEQUENCE`);
  const seq = parsed.result;
  if (!(seq instanceof asn1js.Sequence)) throw malformed('value', 'is not a SEQUENCE');
  const f = seq.valueBlock.value;
  if (f.length !== 6) throw malformed('value', `expected 6 fields, found ${f.length}`);
  const utf8 = (i: number, name: string): string => {
    const v = f[i];
    if (!(v instanceof asn1js.Utf8String)) throw malformed(name, 'is not a UTF8String');
    return v.valueBlock.value;
  };
  const u64 = (i: number, name: string): bigint => {
    const v = f[i];
    if (!(v instanceof asn1js.Integer) || v instanceof asn1js.Enumerated) throw malformed(name, 'is not an INTEGER');
    const n = v.toBigInt();
    if (n < 0n || n > TOKEN_MAX) throw malformed(name, `${n} is outside 0 … 2^64-1`);
    return n;
  };
  const shardId = utf8(0, 'shardId');
  const datacenter = utf8(1, 'datacenter');
  const tokenRangeStart = u64(2, 'tokenRangeStart');
  const tokenRangeEnd = u64(3, 'tokenRangeEnd');
  const caps = f[4];
  if (!(caps instanceof asn1js.Sequence)) throw malformed('capabilities', 'is not a SEQUENCE OF UTF8String');
  const capabilities = caps.valueBlock.value.map((c) => {
    if (!(c instanceof asn1js.Utf8String)) throw malformed('capabilities', 'contains an element that is not a UTF8String');
    return c.valueBlock.value as Capability;
  });
  const r = f[5];
  if (!(r instanceof asn1js.Enumerated)) throw malformed('role', 'is not an ENUMERATED');
  const roleIndex = r.toBigInt();
  if (roleIndex < 0n || roleIndex >= BigInt(ROLES.length)) throw malformed('role', `value ${roleIndex} is not one of 0 … ${ROLES.length - 1}`);
  const id: ThemisIdentity = { shardId, datacenter, tokenRangeStart, tokenRangeEnd, capabilities, role: ROLES[Number(roleIndex)]! };
  checkIdentity(id, malformed);
  // DER is canonical: re-encoding must give the same bytes (rejects long-form lengths,
  // padded integers and other BER the fields above would not notice).
  if (Buffer.compare(Buffer.from(encodeIdentity(id)), Buffer.from(bytes)) !== 0) throw malformed('value', 'is BER but not DER');
  return id;
}

/** A plain-JSON view (token bounds as 0x-hex) for inspect output and logs. */
export function identityToJson(id: ThemisIdentity): Record<string, unknown> {
  return {
    shardId: id.shardId,
    datacenter: id.datacenter,
    tokenRange: { start: tokenHex(id.tokenRangeStart), end: tokenHex(id.tokenRangeEnd) },
    capabilities: [...id.capabilities],
    role: id.role,
  };
}
