import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { ObjectIdentifier } from 'asn1js';
import { join } from 'node:path';
import {
  THEMIS_IDENTITY_OID, decodeIdentity, encodeIdentity, parseCapabilities, parseTokenRange, type ThemisIdentity,
} from '../../../src/pki/identity-extension.js';
import { openssl } from '../../support/pki-fixture.js';

// From ARCHITECTURE.md, made by `openssl asn1parse -genconf` (shard-001, dc1, 0…2^64-1,
// read/write/replicate, primary).
const ARCH_VECTOR =
  '303b0c0973686172642d3030310c03646331020100020900ffffffffffffffff30180c04726561640c0577726974650c097265706c69636174650a0100';

const shard001: ThemisIdentity = {
  shardId: 'shard-001',
  datacenter: 'dc1',
  tokenRangeStart: 0n,
  tokenRangeEnd: 0xffff_ffff_ffff_ffffn,
  capabilities: ['read', 'write', 'replicate'],
  role: 'primary',
};

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const unhex = (h: string) => new Uint8Array(Buffer.from(h, 'hex'));

/** DER made by OpenSSL's own ASN.1 generator (`asn1parse -genconf` or `-genstr`). */
function opensslGen(args: string[], conf?: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'themis-asn1-'));
  try {
    if (conf !== undefined) writeFileSync(join(dir, 'g.cnf'), conf);
    const r = openssl(['asn1parse', ...args.map((a) => a.replace('CONF', join(dir, 'g.cnf'))), '-out', join(dir, 'd.der'), '-noout']);
    if (r.status !== 0) throw new Error(r.stderr);
    return readFileSync(join(dir, 'd.der')).toString('hex');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function opensslDer(fields: string[], caps: string[]): string {
  const conf = ['asn1=SEQUENCE:ident', '[ident]', ...fields.map((f, i) => `f${i}=${f}`), '[caps]', ...caps.map((c, i) => `c${i}=UTF8:${c}`)];
  return opensslGen(['-genconf', 'CONF'], conf.join('\n') + '\n');
}

t.test('encodes the ARCHITECTURE.md test vector byte for byte and decodes it back', async (t) => {
  t.equal(hex(encodeIdentity(shard001)), ARCH_VECTOR);
  t.same(decodeIdentity(unhex(ARCH_VECTOR)), shard001);
});

t.test('matches openssl -genconf for other roles, empty fields and the 2^63 sign boundary', async (t) => {
  const cases: Array<[ThemisIdentity, string[], string[]]> = [
    [
      { shardId: 'shard-042', datacenter: 'eu-west', tokenRangeStart: 0x4000000000000000n, tokenRangeEnd: 0x7fffffffffffffffn, capabilities: ['read', 'replicate'], role: 'replica' },
      ['UTF8:shard-042', 'UTF8:eu-west', 'INTEGER:0x4000000000000000', 'INTEGER:0x7FFFFFFFFFFFFFFF', 'SEQUENCE:caps', 'ENUMERATED:1'],
      ['read', 'replicate'],
    ],
    [
      { shardId: '', datacenter: 'dc2', tokenRangeStart: 0x8000000000000000n, tokenRangeEnd: 0x8000000000000001n, capabilities: [], role: 'operator' },
      ['UTF8:', 'UTF8:dc2', 'INTEGER:0x8000000000000000', 'INTEGER:0x8000000000000001', 'SEQUENCE:caps', 'ENUMERATED:2'],
      [],
    ],
    [
      { shardId: '', datacenter: '', tokenRangeStart: 0n, tokenRangeEnd: 0n, capabilities: ['read', 'write'], role: 'client' },
      ['UTF8:', 'UTF8:', 'INTEGER:0', 'INTEGER:0', 'SEQUENCE:caps', 'ENUMERATED:3'],
      ['read', 'write'],
    ],
  ];
  for (const [id, fields, caps] of cases) {
    const expected = opensslDer(fields, caps);
    t.equal(hex(encodeIdentity(id)), expected, `${id.role} encodes like openssl`);
    t.same(decodeIdentity(unhex(expected)), id, `${id.role} decodes from openssl's DER`);
  }
});

t.test('the OID encodes as openssl encodes it (every arc below 2^32)', async (t) => {
  const theirs = opensslGen(['-genstr', `OID:${THEMIS_IDENTITY_OID}`]);
  const ours = Buffer.from(new ObjectIdentifier({ value: THEMIS_IDENTITY_OID }).toBER()).toString('hex');
  t.equal(ours, theirs);
  t.equal(theirs.slice(0, 4), '0621', 'OBJECT IDENTIFIER of 33 octets');
  t.ok(THEMIS_IDENTITY_OID.split('.').every((a) => Number(a) < 2 ** 32));
});

t.test('encode refuses values outside the schema, naming the field', async (t) => {
  const bad: Array<[Partial<ThemisIdentity>, RegExp]> = [
    [{ tokenRangeEnd: 1n << 64n }, /tokenRangeEnd/],
    [{ tokenRangeStart: -1n }, /tokenRangeStart/],
    [{ tokenRangeStart: 5n, tokenRangeEnd: 4n }, /tokenRangeStart: is greater than tokenRangeEnd/],
    [{ capabilities: ['read', 'fly' as 'read'] }, /unknown capability "fly"/],
    [{ capabilities: ['read', 'read'] }, /appears twice/],
    [{ role: 'boss' as 'primary' }, /role/],
  ];
  for (const [patch, msg] of bad) {
    t.throws(() => encodeIdentity({ ...shard001, ...patch }), { code: 'INVALID_ARGUMENT', message: msg }, String(msg));
  }
});

t.test('decode rejects malformed values with MALFORMED_EXTENSION naming the field', async (t) => {
  const v = ARCH_VECTOR;
  const cases: Array<[string, string, RegExp]> = [
    ['truncated', v.slice(0, -4), /ThemisIdentity.value/],
    ['trailing bytes', v + '00', /trailing byte/],
    ['not a SEQUENCE', '0c0161', /not a SEQUENCE/],
    ['five fields', opensslDer(['UTF8:a', 'UTF8:b', 'INTEGER:0', 'INTEGER:1', 'SEQUENCE:caps'], []), /expected 6 fields/],
    ['INTEGER where shardId is', opensslDer(['INTEGER:1', 'UTF8:dc1', 'INTEGER:0', 'INTEGER:1', 'SEQUENCE:caps', 'ENUMERATED:0'], []), /shardId: is not a UTF8String/],
    ['end = 2^64', opensslDer(['UTF8:s', 'UTF8:d', 'INTEGER:0', 'INTEGER:0x10000000000000000', 'SEQUENCE:caps', 'ENUMERATED:0'], []), /tokenRangeEnd: 18446744073709551616 is outside/],
    ['negative start', opensslDer(['UTF8:s', 'UTF8:d', 'INTEGER:-1', 'INTEGER:1', 'SEQUENCE:caps', 'ENUMERATED:0'], []), /tokenRangeStart: -1 is outside/],
    ['start > end', opensslDer(['UTF8:s', 'UTF8:d', 'INTEGER:9', 'INTEGER:8', 'SEQUENCE:caps', 'ENUMERATED:0'], []), /greater than tokenRangeEnd/],
    ['role 4', opensslDer(['UTF8:s', 'UTF8:d', 'INTEGER:0', 'INTEGER:1', 'SEQUENCE:caps', 'ENUMERATED:4'], []), /role: value 4/],
    ['role as INTEGER', opensslDer(['UTF8:s', 'UTF8:d', 'INTEGER:0', 'INTEGER:1', 'SEQUENCE:caps', 'INTEGER:0'], []), /role: is not an ENUMERATED/],
    ['unknown capability', opensslDer(['UTF8:s', 'UTF8:d', 'INTEGER:0', 'INTEGER:1', 'SEQUENCE:caps', 'ENUMERATED:0'], ['read', 'root']), /unknown capability "root"/],
    // the vector with the shardId length in long form (0c 81 09): valid BER, not DER
    ['BER long-form length', '303c0c8109' + v.slice(8), /BER but not DER/],
    // 0x00 0x01 is a padded INTEGER 1: not minimal, not DER
    ['padded INTEGER', '3012' + '0c0173' + '0c0164' + '02020001' + '020101' + '3000' + '0a0100', /not DER/],
  ];
  for (const [name, h, msg] of cases) {
    t.throws(() => decodeIdentity(unhex(h)), { code: 'MALFORMED_EXTENSION', message: msg }, name);
  }
});

t.test('token bounds round-trip at every edge of 64 bits', async (t) => {
  for (const [a, b] of [[0n, 0n], [0n, 1n], [0x7fffffffffffffffn, 0x8000000000000000n], [0xfffffffffffffffen, 0xffffffffffffffffn]] as const) {
    const id = { ...shard001, tokenRangeStart: a, tokenRangeEnd: b };
    t.same(decodeIdentity(encodeIdentity(id)), id, `${a}…${b}`);
  }
});

t.test('parseTokenRange reads hex and decimal and names --token-range when wrong', async (t) => {
  t.same(parseTokenRange('0:0xffffffffffffffff'), { start: 0n, end: 0xffffffffffffffffn });
  t.same(parseTokenRange('0x4000000000000000:9223372036854775807'), { start: 1n << 62n, end: (1n << 63n) - 1n });
  t.same(parseTokenRange('7:7'), { start: 7n, end: 7n });
  const bad: Array<[string, RegExp]> = [
    ['10:5', /START 0x000000000000000a is greater than END 0x0000000000000005/],
    ['0:18446744073709551616', /END "18446744073709551616" is not an unsigned 64-bit integer/],
    ['0:0x10000000000000000', /END .* is not an unsigned 64-bit/],
    ['-1:5', /START "-1"/],
    ['5', /expected START:END/],
    ['a:b', /START "a"/],
  ];
  for (const [text, msg] of bad) {
    t.throws(() => parseTokenRange(text), { code: 'INVALID_ARGUMENT', field: '--token-range', message: msg }, text);
  }
});

t.test('parseCapabilities accepts known names and names the unknown one', async (t) => {
  t.same(parseCapabilities('read,write'), ['read', 'write']);
  t.same(parseCapabilities(' rebalance , view_topology '), ['rebalance', 'view_topology']);
  t.throws(() => parseCapabilities('read,fly'), { field: '--capabilities', message: /unknown capability "fly"; known capabilities are: read, write/ });
  t.throws(() => parseCapabilities('read,read'), { message: /listed twice/ });
  t.throws(() => parseCapabilities('read,'), { message: /comma-separated/ });
  t.throws(() => parseCapabilities('rebalance', '--capabilities', ['read', 'write']), { message: /"rebalance" is not allowed here; allowed: read, write/ });
});
