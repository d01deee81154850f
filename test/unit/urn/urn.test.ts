import t from 'tap';
import { randomUUID } from 'node:crypto';
import { parseKey, parseTable, formatUrn, formatThemisKey, tokenOf } from '../../../src/urn/urn.js';
import { xxhsum64 } from '../../support/xxhsum.js';

const UUID = '550e8400-e29b-41d4-a716-446655440000';

t.test('both key forms parse to the same entity and format back', async (t) => {
  const a = parseKey(`urn:themis:relational:customers:users:${UUID}`);
  const b = parseKey(`relational.customers.users:${UUID}`);
  t.same(a, b);
  t.equal(a.table, 'relational.customers.users');
  t.equal(formatUrn(b), `urn:themis:relational:customers:users:${UUID}`);
  t.equal(formatThemisKey(a), `relational.customers.users:${UUID}`);
});

t.test('uuid is kept as written, in any case', async (t) => {
  const k = parseKey(`document:ns:col:${UUID.toUpperCase()}`.replace(/^/, 'urn:themis:'));
  t.equal(k.uuid, UUID.toUpperCase());
});

t.test('tokens match an independent XXH64 (Debian xxhsum)', async (t) => {
  const uuids = [UUID, UUID.toUpperCase(), ...Array.from({ length: 20 }, () => randomUUID())];
  for (const u of uuids) {
    t.equal(tokenOf(parseKey(`graph.social.edges:${u}`)), xxhsum64(u), u);
  }
});

t.test('ThemisDB validation rules reject malformed keys with INVALID_KEY', async (t) => {
  const bad = [
    '',
    'urn:themis:relational:customers:users',
    `urn:themis:relational:customers:users:${UUID}:extra`,
    `urn:other:relational:customers:users:${UUID}`,
    `urn:themis:blob:customers:users:${UUID}`,
    `urn:themis:relational::users:${UUID}`,
    `urn:themis:relational:customers::${UUID}`,
    'urn:themis:relational:customers:users:550e8400e29b41d4a716446655440000',
    'urn:themis:relational:customers:users:550e8400-e29b-41d4-a716-44665544000g',
    `relational.customers:${UUID}`,
    `relational.customers.users.x:${UUID}`,
    `relational.customers.users${UUID}`,
    `relational.cust/omers.users:${UUID}`,
    `relational.customers.users:${UUID}:x`,
    'x'.repeat(600),
  ];
  for (const k of bad) {
    t.throws(() => parseKey(k), { name: 'ThemisError', code: 'INVALID_KEY' }, JSON.stringify(k.slice(0, 60)));
  }
});

t.test('parseTable', async (t) => {
  t.same(parseTable('vector.ns.embeddings'), { model: 'vector', namespace: 'ns', collection: 'embeddings' });
  t.throws(() => parseTable('vector.ns'));
  t.throws(() => parseTable('nope.ns.c'));
});
