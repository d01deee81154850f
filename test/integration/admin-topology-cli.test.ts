import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runProgram } from '../support/cli.js';
import { xxhsum64 } from '../support/xxhsum.js';

const dir = mkdtempSync(join(tmpdir(), 'themis-admin-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('plan writes a document whose ranges follow the ring as computed by xxhsum', async (t) => {
  const out = join(dir, 'three.json');
  const r = runProgram('themis-admin', ['topology', 'plan', '--shards', 'shard-001,shard-002,shard-003', '--vnodes', '4', '--sample', '1000', '--seed', '1', '--endpoints', 'shard-001=127.0.0.2:7443', '--out', out]);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /shard-001\s+\d+\.\d\d%\s+\d+\.\d\d%/);
  t.match(r.stdout, /token share: std dev/);
  const doc = JSON.parse(readFileSync(out, 'utf8'));
  t.equal(doc.epoch, 1);
  t.equal(doc.shards['shard-001'].endpoint, '127.0.0.2:7443');
  // Every vnode token (from the independent xxhsum) must end a range owned by its shard
  // or lie inside one; and the vnode with the largest token ends a range unless it is the max.
  for (const shard of ['shard-001', 'shard-002', 'shard-003']) {
    for (let i = 0; i < 4; i++) {
      const tok = xxhsum64(`${shard}#${i}`);
      const range = doc.ranges.find((x: { start: string; end: string }) => BigInt(x.start) <= tok && tok <= BigInt(x.end));
      t.equal(range.owner, shard, `${shard}#${i}`);
    }
  }
});

t.test('diff after adding a shard lists only moves to the new shard', async (t) => {
  const a = join(dir, 'a.json');
  const b = join(dir, 'b.json');
  t.equal(runProgram('themis-admin', ['topology', 'plan', '--shards', 's1,s2,s3', '--sample', '0', '--out', a]).status, 0);
  t.equal(runProgram('themis-admin', ['topology', 'plan', '--shards', 's1,s2,s3,s4', '--sample', '0', '--out', b]).status, 0);
  const r = runProgram('themis-admin', ['topology', 'diff', '--from', a, '--to', b, '--json']);
  t.equal(r.status, 0, r.stderr);
  const { moves, tokenShareMoved } = JSON.parse(r.stdout);
  t.ok(moves.length > 0);
  t.ok(moves.every((m: { to: string }) => m.to === 's4'));
  t.ok(tokenShareMoved > 0.1 && tokenShareMoved < 0.45, `moved ${tokenShareMoved}`);
});

t.test('bad input: one-line errors, non-zero exit, nothing written', async (t) => {
  const existing = join(dir, 'existing.json');
  writeFileSync(existing, 'keep');
  const cases: [string[], RegExp][] = [
    [['topology', 'plan'], /--shards is required/],
    [['topology', 'plan', '--shards', 'Bad!'], /not a valid shard id/],
    [['topology', 'plan', '--shards', 'a,a'], /unique/],
    [['topology', 'plan', '--shards', 'a,b', '--vnodes', '0'], /--vnodes must be an integer from 1/],
    [['topology', 'plan', '--shards', 'a,b', '--replicas', '2'], /--replicas must be an integer from 0 to 1/],
    [['topology', 'plan', '--shards', 'a,b', '--bogus'], /Unknown option '--bogus'/],
    [['topology', 'plan', '--shards', 'a,b', '--endpoints', 'c=1.2.3.4:1'], /--endpoints/],
    [['topology', 'plan', '--shards', 'a,b', '--out', existing], /already exists; pass --force/],
    [['topology', 'diff', '--from', existing, '--to', existing], /not valid JSON/],
    [['topology', 'nope'], /unknown topology command/],
  ];
  for (const [args, msg] of cases) {
    const r = runProgram('themis-admin', args);
    t.not(r.status, 0, args.join(' '));
    t.match(r.stderr, msg, args.join(' '));
  }
  t.equal(readFileSync(existing, 'utf8'), 'keep', 'existing file untouched');
  t.notOk(existsSync(join(dir, 'nothing.json')));
});
