// Failover generations (issue 21): parsed from the failover keys (a record without one counts as
// 0; any rolled-back mark counts, readable or not), and kept per group on disk by each sidecar.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseSnapshot } from '../../../../src/control/failover-keys.js';
import { FailoverGenerations } from '../../../../proxy/failover/generations.js';
import { createLogger } from '../../../../src/log.js';

const base = '/themis/c/failover/';
const kv = (key: string, value: string, rev = 5, lease = '0') => ({ key: base + key, value, create_revision: String(rev), mod_revision: String(rev + 1), lease });
const log = createLogger('test', 'silent');

t.test('generations and rolled-back marks are parsed', async (t) => {
  const s = parseSnapshot(base, [
    kv('acting/g1', JSON.stringify({ shard: 's2', gen: 3 }), 40, '77'),
    kv('last/g1', JSON.stringify({ shard: 's2', gen: 3 }), 40),
    kv('last/g2', JSON.stringify({ shard: 's1' }), 9),
    kv('last/g3', JSON.stringify({ shard: 's1', gen: -2 }), 9),
    kv('rolled-back/g2', JSON.stringify({ gen: 4, holder: 's3', by: 's2' }), 50),
    kv('rolled-back/g3', 'not json', 51),
  ]);
  t.same(s.acting.get('g1'), { shard: 's2', term: 40, lease: '77', gen: 3 });
  t.same(s.last.get('g1'), { shard: 's2', term: 41, gen: 3 });
  t.equal(s.last.get('g2')?.gen, 0, 'a record written before generations counts as 0');
  t.equal(s.last.get('g3')?.gen, 0, 'and so does a nonsense one');
  t.same(s.rolledBack.get('g2'), { gen: 4, holder: 's3', by: 's2', mod: '51' });
  t.same(s.rolledBack.get('g3'), { gen: 0, holder: '?', by: '?', mod: '52' }, 'a mark that does not parse still stops the group');
  t.notOk(s.rolledBack.has('g1'));
});

t.test('a sidecar keeps the highest generation per group across restarts', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'themis-gen-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'state', 'failover-generations.json');
  const g = new FailoverGenerations(file, log);
  t.equal(g.get('g1'), undefined);
  await g.raise([{ group: 'g1', gen: 2, holder: 's2' }, { group: 'g2', gen: 1, holder: 's1' }]);
  await g.raise([{ group: 'g1', gen: 1, holder: 's1' }]);
  t.same(g.get('g1'), { gen: 2, holder: 's2' }, 'a lower generation does not replace a higher one');
  const again = new FailoverGenerations(file, log);
  t.same([again.get('g1'), again.get('g2')], [{ gen: 2, holder: 's2' }, { gen: 1, holder: 's1' }], 'read again after a restart');
  t.match(readFileSync(file, 'utf8'), /"g1"/);
  writeFileSync(file, '{"groups": {"g1": {"gen": "9", "holder": "s9"}, "g2": {"gen": 3, "holder": "s3"}}}');
  const odd = new FailoverGenerations(file, log);
  t.same([odd.get('g1'), odd.get('g2')], [undefined, { gen: 3, holder: 's3' }], 'entries that do not parse are left out');
  writeFileSync(file, '{');
  t.equal(new FailoverGenerations(file, log).get('g2'), undefined, 'an unreadable file: nothing known');
});

t.test('an unwritable file: kept in memory, failover goes on', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'themis-gen-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'not-a-dir'), '');
  const g = new FailoverGenerations(join(dir, 'not-a-dir', 'failover-generations.json'), log);
  await g.raise([{ group: 'g1', gen: 4, holder: 's1' }]);
  t.same(g.get('g1'), { gen: 4, holder: 's1' });
});
