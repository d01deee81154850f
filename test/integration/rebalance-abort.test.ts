// `rebalance abort` (3 shards, RF 1): a forged abort written with etcdctl is refused and audited,
// and changes nothing; the signed one stops the operation before cutover and the target deletes
// its copies; an operation already cut over cannot be aborted. And two operations from the same
// epoch: one cuts over, the other goes stale and its target deletes what it copied.
import t from 'tap';
import { runProgramAsync } from '../support/cli.js';
import { call } from '../support/storage-process.js';
import { audit, checkHistory, ctl, currentEpoch, epochs, inSlice, mesh, opIdOf, rebalance, sessionArgs, setupFaults, sleep, slice, statusOf, until } from '../support/rebalance-faults.js';

setupFaults();

t.test('rebalance abort: a forged abort is refused; the signed one stops the operation, and the target deletes its copies', async (t) => {
  const s = slice(0);
  const base = await currentEpoch();
  const r = await rebalance('shard-001', 'shard-002', s, ['--cutover', 'manual']);
  t.equal(r.status, 0, r.status === 0 ? 'themis-admin rebalance --cutover manual' : r.stderr);
  const id = opIdOf(r.stdout);
  await until('the target catches up', async () => (await statusOf(id, 'shard-002')).phase === 'catching-up');
  const copied = await Promise.all(inSlice(s).map(async (k) => (await call(mesh.nodes[1]!.storage.url, 'GET', `/entities/${encodeURIComponent(k)}`)).status));
  t.ok(copied.length > 10 && copied.every((c) => c === 200), `the target holds copies of the ${copied.length} keys`);

  // As an attacker with etcd access: an unsigned abort.
  ctl(['put', `/themis/${mesh.pki.cluster}/rebalance-abort/${id}`, JSON.stringify({ document: JSON.stringify({ op_id: id, cluster: mesh.pki.cluster, abort: true }), cms: 'AAAA' })]);
  await until('both shards audit the forged abort', async () => [0, 1].every((i) => audit(i).some((e) => e.event === 'REBALANCE_ABORT_REJECTED' && e.op_id === id)));
  await sleep(500);
  t.equal((await statusOf(id, 'shard-002')).phase, 'catching-up', 'the forged abort changes nothing: the target goes on');

  const abort = await runProgramAsync('themis-admin', ['rebalance', 'abort', '--op', id, ...sessionArgs()]);
  t.equal(abort.status, 0, abort.status === 0 ? 'themis-admin rebalance abort replaces the forged abort with a signed one' : abort.stderr);
  await until('the target deletes its copies', async () => (await statusOf(id, 'shard-002')).phase === 'aborted');
  t.match(await statusOf(id, 'shard-002'), { phase: 'aborted', keys_deleted: copied.length }, 'the target says aborted, and how many copies it deleted');
  t.equal((await statusOf(id, 'shard-001')).phase, 'aborted', 'so does the source');
  for (const i of [0, 1]) t.match(audit(i).find((e) => e.event === 'REBALANCE_ABORTED' && e.op_id === id), { signer: { subject: /admin/, verified: true } }, `${mesh.nodes[i]!.shard.id} audits the abort and who signed it`);
  const left = await Promise.all(inSlice(s).map(async (k) => (await call(mesh.nodes[1]!.storage.url, 'GET', `/entities/${encodeURIComponent(k)}`)).status));
  t.ok(left.every((c) => c === 404), 'none of the copies is left on the target');
  ctl(['put', `/themis/${mesh.pki.cluster}/rebalance-switch/${id}`, '{}']);
  await sleep(1500);
  t.same(await epochs(), [base, base, base], 'a switch after the abort cuts nothing over');
  const again = await runProgramAsync('themis-admin', ['rebalance', 'abort', '--op', id, ...sessionArgs()]);
  t.not(again.status, 0, 'a second abort is refused');
  t.match(again.stderr, /being aborted already/);
  await checkHistory(t, 'after the abort');
});

t.test('an operation that was cut over cannot be aborted', async (t) => {
  const r = await rebalance('shard-001', 'shard-002', slice(1), ['--wait']);
  t.equal(r.status, 0, r.status === 0 ? 'the operation cut over (--wait)' : `${r.stdout}\n${r.stderr}`);
  const abort = await runProgramAsync('themis-admin', ['rebalance', 'abort', '--op', opIdOf(r.stdout), ...sessionArgs()]);
  t.not(abort.status, 0, 'abort is refused');
  t.match(abort.stderr, /cannot be aborted/, 'because it was cut over');
});


t.test('two operations from the same epoch: one cuts over, the other is reported stale and changes nothing', async (t) => {
  const base = await currentEpoch();
  const [a, b] = await Promise.all([rebalance('shard-001', 'shard-002', slice(2), ['--cutover', 'manual']), rebalance('shard-001', 'shard-002', slice(3), ['--cutover', 'manual'])]);
  t.equal(a.status, 0, a.status === 0 ? 'the first operation is written' : a.stderr);
  t.equal(b.status, 0, b.status === 0 ? 'the second, from the same epoch, too' : b.stderr);
  const [first, second] = [opIdOf(a.stdout), opIdOf(b.stdout)];
  await until('both targets catch up', async () => (await statusOf(first, 'shard-002')).phase === 'catching-up' && (await statusOf(second, 'shard-002')).phase === 'catching-up');
  ctl(['put', `/themis/${mesh.pki.cluster}/rebalance-switch/${first}`, '{}']);
  await until('the first cuts over', async () => ['done', 'cleaned'].includes(String((await statusOf(first, 'shard-001')).phase)));
  ctl(['put', `/themis/${mesh.pki.cluster}/rebalance-switch/${second}`, '{}']);
  await until('the second is reported stale', async () => (await statusOf(second, 'shard-001')).phase === 'stale');
  t.match(await statusOf(second, 'shard-001'), { phase: 'stale', reason: 'stale_epoch' }, 'the second operation is stale');
  await sleep(1000);
  t.same(await epochs(), [base + 1, base + 1, base + 1], 'only the first one\'s epoch came into force');
  const moved = await call(mesh.nodes[2]!.appUrl, 'GET', `/entities/${encodeURIComponent(inSlice(slice(3))[0]!)}`);
  t.equal(moved.headers.get('x-themis-shard'), 'shard-001', 'the second one\'s keys stay where they were');
  await until('the second one\'s target drops its copies', async () => (await statusOf(second, 'shard-002')).keys_deleted !== undefined);
  const left = await Promise.all(inSlice(slice(3)).map(async (k) => (await call(mesh.nodes[1]!.storage.url, 'GET', `/entities/${encodeURIComponent(k)}`)).status));
  t.ok(left.length > 5 && left.every((c) => c === 404), `and its target deleted the ${left.length} copies it had made`);
  await checkHistory(t, 'after both');
});
