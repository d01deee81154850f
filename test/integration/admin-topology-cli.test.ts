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
  const r = runProgram('themis-admin', ['topology', 'plan', '--shards', 'shard-001,shard-002,shard-003', '--cluster', 'cluster-a', '--vnodes', '4', '--sample', '1000', '--seed', '1', '--endpoints', 'shard-001=127.0.0.2:7443', '--out', out]);
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
  t.equal(runProgram('themis-admin', ['topology', 'plan', '--shards', 's1,s2,s3', '--cluster', 'cluster-a', '--sample', '0', '--out', a]).status, 0);
  t.equal(runProgram('themis-admin', ['topology', 'plan', '--shards', 's1,s2,s3,s4', '--cluster', 'cluster-a', '--sample', '0', '--out', b]).status, 0);
  const r = runProgram('themis-admin', ['topology', 'diff', '--from', a, '--to', b, '--json']);
  t.equal(r.status, 0, r.stderr);
  const { moves, tokenShareMoved } = JSON.parse(r.stdout);
  t.ok(moves.length > 0);
  t.ok(moves.every((m: { to: string }) => m.to === 's4'));
  t.ok(tokenShareMoved > 0.1 && tokenShareMoved < 0.45, `moved ${tokenShareMoved}`);
});

t.test('plan --balanced: equal shares written to --out; --from --add moves ≤ 1.05/(N+1), all to the new shard; --remove only the leaving shard', async (t) => {
  const shares = (doc: { ranges: { start: string; end: string; owner: string }[] }) => {
    const m = new Map<string, bigint>();
    for (const r of doc.ranges) m.set(r.owner, (m.get(r.owner) ?? 0n) + BigInt(r.end) - BigInt(r.start) + 1n);
    return m;
  };
  const three = join(dir, 'balanced-3.json');
  const r = runProgram('themis-admin', ['topology', 'plan', '--balanced', '--shards', 'shard-001,shard-002,shard-003', '--cluster', 'cluster-a', '--replicas', '1', '--datacenters', 'shard-001=dc1,shard-002=dc2,shard-003=dc2', '--sample', '1000', '--seed', '1', '--out', three]);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /3 shards, balanced \(not the ring\)/);
  t.match(r.stdout, /shard-001\s+33\.33%/);
  t.match(r.stdout, /token share: std dev\s+0\.00% of the mean/);
  const doc = JSON.parse(readFileSync(three, 'utf8'));
  t.equal(doc.shards['shard-002'].datacenter, 'dc2');
  const each = [...shares(doc).values()];
  t.ok(each.every((v) => v - 2n ** 64n / 3n <= 1n && 2n ** 64n / 3n - v <= 1n), 'each shard holds 2^64/3 tokens, to the token');
  t.ok(doc.ranges.every((x: { owner: string; replicas: string[] }) => x.replicas.length === 1 && (x.owner === 'shard-001') !== (x.replicas[0] === 'shard-001')), 'each replica in the other datacenter');

  const four = join(dir, 'balanced-4.json');
  const add = runProgram('themis-admin', ['topology', 'plan', '--balanced', '--from', three, '--add', 'shard-004', '--datacenters', 'shard-004=dc1', '--endpoints', 'shard-004=127.0.0.5:7443', '--sample', '0', '--json', '--out', four]);
  t.equal(add.status, 0, add.stderr);
  const plan = JSON.parse(add.stdout);
  t.equal(plan.epoch, 2);
  t.ok(plan.tokenShareMoved <= 1.05 / 4, `moved ${plan.tokenShareMoved} ≤ 1.05/4`);
  t.ok(plan.moves.length > 0 && plan.moves.every((m: { from: string; to: string }) => m.to === 'shard-004' && m.from !== 'shard-004'));
  t.ok(plan.balance.tokens.relStdDev <= 0.01, 'spread after ≤ 1 %');
  const next = JSON.parse(readFileSync(four, 'utf8'));
  t.same(next.shards['shard-004'], { endpoint: '127.0.0.5:7443', datacenter: 'dc1' });
  const moved = plan.moves.reduce((a: bigint, m: { start: string; end: string }) => a + BigInt(m.end) - BigInt(m.start) + 1n, 0n);
  t.equal(moved, shares(next).get('shard-004'), 'the moves are exactly what shard-004 now owns');
  const d = runProgram('themis-admin', ['topology', 'diff', '--from', three, '--to', four, '--json']);
  t.ok(Math.abs(JSON.parse(d.stdout).tokenShareMoved - plan.tokenShareMoved) < 1e-12, 'topology diff agrees on the movement');

  const text = runProgram('themis-admin', ['topology', 'plan', '--balanced', '--from', three, '--add', 'shard-004', '--sample', '0']);
  t.equal(text.status, 0, text.stderr);
  t.match(text.stdout, /0x[0-9a-f]{16}  0x[0-9a-f]{16}  shard-00[123] → shard-004\s+\d+\.\d{3}%/);
  t.match(text.stdout, /ranges change owner, 25\.000% of the token space \(adding shard-004 to 3 shards: the minimum is its equal share, 1\/4 = 25\.000%\)/);
  t.match(text.stdout, /4 shards, balanced/);

  const rm = runProgram('themis-admin', ['topology', 'plan', '--balanced', '--from', four, '--remove', 'shard-002', '--sample', '0', '--json']);
  t.equal(rm.status, 0, rm.stderr);
  const removed = JSON.parse(rm.stdout);
  t.ok(removed.moves.every((m: { from: string }) => m.from === 'shard-002'), 'only shard-002 gives tokens');
  t.ok(Math.abs(removed.tokenShareMoved - 0.25) < 1e-12, `moved ${removed.tokenShareMoved}: shard-002's quarter`);
  t.ok(removed.balance.tokens.relStdDev <= 0.01);
});

t.test('plan --balanced refuses what it cannot do, in one line', async (t) => {
  const base = join(dir, 'balanced-base.json');
  t.equal(runProgram('themis-admin', ['topology', 'plan', '--balanced', '--shards', 'a,b,c', '--cluster', 'cluster-a', '--sample', '0', '--out', base]).status, 0);
  const cases: [string[], number, RegExp][] = [
    [['--balanced', '--shards', 'a,b', '--vnodes', '4'], 2, /--vnodes does not apply to --balanced/],
    [['--shards', 'a,b', '--ranges-per-shard', '4'], 2, /--ranges-per-shard needs --balanced/],
    [['--balanced', '--add', 'd'], 2, /--add and --remove need --from/],
    [['--balanced', '--from', base], 2, /--from needs one of --add SHARD or --remove SHARD/],
    [['--balanced', '--from', base, '--add', 'a'], 2, /--add: a is already in/],
    [['--balanced', '--from', base, '--remove', 'z'], 2, /--remove: z is not in/],
    [['--balanced', '--from', base, '--add', 'd', '--shards', 'a'], 2, /--shards does not apply with --from/],
    [['--balanced', '--shards', 'a,b', '--allowed', 'a=5:1'], 2, /--allowed a: START .* is greater than END/],
    [['--balanced', '--shards', 'a,b,c', '--allowed', 'a=0:0x3fffffffffffffff'], 1, /a's certified token range 0x0000000000000000…0x3fffffffffffffff holds 25\.000% .* less than its equal share of 33\.333%/],
    [['--balanced', '--shards', 'a,b', '--allowed', 'a=0:0x7fffffffffffffff,b=0:0x7fffffffffffffff'], 1, /no shard may own 0x8000000000000000…0xffffffffffffffff/],
    [['--balanced', '--from', base, '--add', 'd', '--allowed', 'd=0:0x0fffffffffffffff'], 1, /d's certified token range .* less than its equal share of 25\.000%/],
  ];
  for (const [args, status, msg] of cases) {
    const r = runProgram('themis-admin', ['topology', 'plan', ...args, ...(args.includes('--from') ? [] : ['--cluster', 'cluster-a']), '--sample', '0']);
    t.equal(r.status, status, args.join(' '));
    t.match(r.stderr, msg, args.join(' '));
    t.equal(r.stderr.split('\n').filter(Boolean).length <= 2, true, 'one line (and the usage hint)');
  }
  const allowed = runProgram('themis-admin', ['topology', 'plan', '--balanced', '--from', base, '--add', 'd', '--allowed', 'd=0:0x7fffffffffffffff', '--sample', '0', '--json']);
  t.equal(allowed.status, 0, allowed.stderr);
  t.ok(JSON.parse(allowed.stdout).moves.every((m: { end: string }) => BigInt(m.end) <= 0x7fffffffffffffffn), 'the added shard gets tokens only in its certified half');
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
    [['topology', 'plan', '--shards', 'a,b', '--cluster', 'cluster-a', '--endpoints', 'c=1.2.3.4:1'], /--endpoints/],
    // No silent cluster-dev: a topology names the cluster it is for, given or from a context.
    [['topology', 'plan', '--shards', 'a,b'], /--cluster is required: the cluster this topology is for/],
    [['topology', 'plan', '--balanced', '--shards', 'a,b'], /--cluster is required/],
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

t.test('a reader that stops early (| head) ends the command quietly, without an EPIPE stack trace', async (t) => {
  const a = join(dir, 'many-a.json');
  const b = join(dir, 'many-b.json');
  t.equal(runProgram('themis-admin', ['topology', 'plan', '--shards', 's1,s2,s3', '--cluster', 'cluster-a', '--vnodes', '3000', '--sample', '0', '--out', a]).status, 0);
  t.equal(runProgram('themis-admin', ['topology', 'plan', '--shards', 's1,s2,s3,s4', '--cluster', 'cluster-a', '--vnodes', '3000', '--sample', '0', '--out', b]).status, 0);
  const { spawnSync } = await import('node:child_process');
  const { ROOT, PROGRAMS } = await import('../support/cli.js');
  // The shell's pipe, as an operator types it; PIPESTATUS gives themis-admin's own status.
  const r = spawnSync('bash', ['-c', `"${process.execPath}" "${ROOT}${PROGRAMS['themis-admin']}" topology diff --from "$A" --to "$B" | head -n 1; echo "status=\${PIPESTATUS[0]}" >&2`], { encoding: 'utf8', env: { ...process.env, A: a, B: b } });
  t.match(r.stdout, /^0x[0-9a-f]{16}  0x[0-9a-f]{16}  s[123] → s4\n$/, 'head printed its one line');
  t.match(r.stderr, /^status=0\n$/, 'themis-admin ended with status 0 and printed nothing on stderr');
});
