// The manifest parser names the field that is wrong (BACKUP_MALFORMED), and every refusal code
// a backup or restore can print is documented in the runbook's table.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { parseManifest } from '../../../src/backup/manifest.js';
import { BACKUP_REFUSALS } from '../../../src/backup/refusal.js';
import { ROOT } from '../../support/cli.js';

const good = {
  format: 'themis-backup/1', cluster: 'c', shard: 'shard-001', seq: 5, topology_epoch: 2, keys: 3,
  created_at: '2026-12-06T10:00:00.000Z', data_xxh64: '0123456789abcdef',
  files: { 'data.ndjson': { bytes: 10, sha256: 'a'.repeat(64) } },
};

t.test('a well-formed manifest parses', async (t) => {
  t.same(parseManifest(JSON.stringify(good)), good);
});

const cases: [string, unknown, RegExp][] = [
  ['not JSON', '{', /not JSON/],
  ['an array', [], /not a JSON object/],
  ['another format', { ...good, format: 'themis-backup/2' }, /format/],
  ['no cluster', { ...good, cluster: '' }, /cluster/],
  ['a negative seq', { ...good, seq: -1 }, /seq/],
  ['a fractional key count', { ...good, keys: 1.5 }, /keys/],
  ['an epoch as text', { ...good, topology_epoch: '2' }, /topology_epoch/],
  ['a short digest', { ...good, data_xxh64: 'abc' }, /data_xxh64/],
  ['files as a list', { ...good, files: [] }, /files must be an object/],
  ['a path in files', { ...good, files: { ...good.files, '../etc/passwd': { bytes: 1, sha256: 'a'.repeat(64) } } }, /not a plain file name/],
  ['the manifest listed as a file', { ...good, files: { ...good.files, 'manifest.json': { bytes: 1, sha256: 'a'.repeat(64) } } }, /not a plain file name/],
  ['a file without sha256', { ...good, files: { 'data.ndjson': { bytes: 1 } } }, /sha256/],
  ['no data file', { ...good, files: {} }, /data\.ndjson/],
];
for (const [what, input, message] of cases) {
  t.test(`refused: ${what}`, async (t) => {
    t.throws(() => parseManifest(typeof input === 'string' ? input : JSON.stringify(input)), { code: 'BACKUP_MALFORMED', message });
  });
}

t.test('every refusal code is in docs/disaster-recovery.md', async (t) => {
  const doc = readFileSync(`${ROOT}docs/disaster-recovery.md`, 'utf8');
  for (const code of Object.keys(BACKUP_REFUSALS)) t.match(doc, `| \`${code}\` |`, code);
});
