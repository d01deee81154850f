// Scaling out and in: a loaded 3-shard cluster (RF 1) gains a 4th shard with
// `themis-admin shard add` and loses it again with `shard remove`, while a write loop runs
// through every original sidecar. The plan is printed with its estimate; the moves come from
// three sources at once (add) and go to three targets (remove), each as one operation cut over
// together. Throughout, no write fails and every key reads; afterwards every acknowledged write reads back (none
// lost, reverted or invented) through every sidecar, shard-004's node is empty again, and the
// final balance is reported.
import t from 'tap';
import { randomUUID } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import { etcdClient, operatorArgs, startMesh, type Mesh, HUNG_REQUEST } from '../support/mesh.js';
import { History, writeLoop } from '../support/history.js';
import { call } from '../support/storage-process.js';
import { runProgramAsync } from '../support/cli.js';

let mesh: Mesh;
let etcd: Etcd3;
t.before(async () => {
  // Under etcd least privilege: the shards' and the operator's rights are exactly enough.
  mesh = await startMesh({ shards: 3, withEtcd: true, etcdTopology: true, etcdRbac: true, spares: 1 });
  etcd = etcdClient(mesh);
});
t.teardown(async () => {
  etcd?.close();
  await mesh?.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const T = 'document.shop.scale';

function sessionArgs(): string[] {
  return operatorArgs(mesh);
}

/** A key's value in etcd ('' when absent), read with an async client: a test process blocked in etcdctl would stall its own load loops. */
async function get(key: string): Promise<string> {
  return (await etcd.get(`/themis/${mesh.pki.cluster}/${key}`).string()) ?? '';
}

/** Until every one of `sources` says it deleted its copies (the cleanup runs 5 s after the cutover; later under load). */
async function cleaned(opId: string, sources: string[]): Promise<void> {
  const phase = async (shard: string) => (JSON.parse((await get(`rebalance-status/${opId}/${shard}`)) || '{}') as { phase?: string }).phase;
  for (let i = 0; i < 300; i++) {
    if ((await Promise.all(sources.map(phase))).every((p) => p === 'cleaned')) return;
    await sleep(100);
  }
}

async function countOn(url: string): Promise<number> {
  let n = 0;
  let after = '';
  for (;;) {
    const r = await call(url, 'GET', `/entities?limit=1000${after ? `&after=${encodeURIComponent(after)}` : ''}`);
    n += (r.body.entities as unknown[]).length;
    if (!r.body.next) return n;
    after = r.body.next as string;
  }
}

async function epochOf(url: string): Promise<number> {
  return (await call(url, 'GET', '/health')).body.topology_epoch as number;
}

t.test('shard add, then shard remove, under a write loop: nothing fails, nothing is lost', async (t) => {
  const keys = Array.from({ length: 600 }, () => `${T}:${randomUUID()}`);
  const history = new History();
  // Every key written once before anything moves.
  for (const [i, key] of keys.entries()) {
    const { blob, n } = history.next(key);
    const r = await call(mesh.nodes[i % 3]!.appUrl, 'PUT', `/entities/${encodeURIComponent(key)}`, { blob });
    if (r.status === 201) history.ack(key, n);
  }
  // The sources report how much they hold (for the plan's estimate): recounted every 5 s here.
  const reported = async (shard: string) => (JSON.parse((await get(`shards/${shard}/replication`)) || '{}') as { data?: { keys: number } }).data?.keys ?? 0;
  for (let i = 0; i < 150 && !(await Promise.all(['shard-001', 'shard-002', 'shard-003'].map(reported))).every((n) => n > 100); i++) await sleep(100);
  for (let i = 0; i < 100 && !(await get('shards/shard-004/certificate')); i++) await sleep(100);

  let lane = 0;
  let stop!: () => void;
  const until = new Promise<void>((r) => (stop = r));
  const slow: string[] = [];
  const loop = writeLoop(history, keys.slice(0, 120), async (key, blob) => {
    const via = lane++ % 3;
    const t0 = Date.now();
    let headersAt: number | undefined; // when the answer's headers came: tells a stalled body from no answer
    try {
      const res = await fetch(`${mesh.nodes[via]!.appUrl}/entities/${encodeURIComponent(key)}`, { method: 'PUT', body: JSON.stringify({ blob }), signal: AbortSignal.timeout(30_000) });
      headersAt = Date.now();
      const body = JSON.parse((await res.text()) || '{}') as { code?: string };
      return { status: res.status, code: body.code };
    } finally {
      if (Date.now() - t0 > 5000) slow.push(`${key} via shard-00${via + 1} from ${t0} took ${Date.now() - t0} ms (headers ${headersAt === undefined ? 'never came' : `after ${headersAt - t0} ms`})`);
    }
  }, { until, concurrency: 4, paceMs: 10 }); // traffic through the move, not throughput (the suite is CPU-bound)
  // And a read loop over every key: each one stays readable throughout.
  let reads = 0;
  const unreadable: string[] = [];
  const readLoop = (async () => {
    let stopped = false;
    void until.then(() => (stopped = true));
    while (!stopped) {
      const key = keys[reads % keys.length]!;
      const r = await call(mesh.nodes[reads++ % 3]!.appUrl, 'GET', `/entities/${encodeURIComponent(key)}`, undefined, 30_000).catch((e: Error) => ({ status: e.message }));
      if (r.status !== 200) unreadable.push(`${key}: ${String(r.status)}`);
    }
  })();
  const base = mesh.topology.epoch;

  const refused = await runProgramAsync('themis-admin', ['shard', 'add', '--id', 'shard-004', ...sessionArgs()]);
  t.not(refused.status, 0, 'without --yes and without a terminal, shard add refuses to go ahead');
  t.match(refused.stderr, /--yes/, 'and says to pass --yes');
  t.match(refused.stdout, /shard-001 +shard-004/, 'it printed the plan first');

  const add = await runProgramAsync('themis-admin', ['shard', 'add', '--id', 'shard-004', '--yes', '--wait', ...sessionArgs()]);
  t.equal(add.status, 0, add.status === 0 ? 'shard add --yes --wait ends once the operation cut over' : `${add.stdout}\n${add.stderr}`);
  const moves = add.stdout.split('\n').filter((l) => /^shard-00[123] +shard-004 /.test(l));
  t.ok(new Set(moves.map((l) => l.split(/ +/)[0])).size === 3, `every one of the three shards gives shard-004 tokens (${moves.length} moves)`);
  const est = /about (\d+) keys and (\d+) bytes/.exec(add.stdout);
  t.ok(est && Number(est[1]) > 50 && Number(est[1]) < 300, `the plan estimates the keys it moves: ${est?.[0]} (600 keys, a quarter of them expected)`);
  t.match(add.stdout, /cut over: epoch \d+ is in force/);
  const addId = /operation ([0-9a-f-]{36})/.exec(add.stdout)?.[1] ?? '';
  const holds = await Promise.all(['shard-001', 'shard-002', 'shard-003'].map(async (sh) => {
    const st = JSON.parse((await get(`rebalance-status/${addId}/${sh}`)) || '{}') as { pause_ms?: number };
    return `${sh} ${String(st.pause_ms)} ms`;
  }));
  t.comment(`shard add: the three sources held writes ${holds.join(', ')} at the joint cutover`);
  t.equal(await epochOf(mesh.spares[0]!.appUrl), base + 1, 'shard-004 serves the next epoch');

  // The moved keys are served by shard-004 (from every sidecar), before and after the sources' cleanup.
  await cleaned(addId, ['shard-001', 'shard-002', 'shard-003']);
  const on4 = await countOn(mesh.spares[0]!.storage.url);
  t.ok(on4 > 0.15 * keys.length && on4 < 0.35 * keys.length, `shard-004's storage node holds ${on4} of ${keys.length} keys (about a quarter)`);
  const totals = await Promise.all(mesh.nodes.map((n) => countOn(n.storage.url)));
  t.equal(totals.reduce((a, b) => a + b, 0) + on4, keys.length, `after cleanup each key is on exactly one node (${totals.join(' + ')} + ${on4})`);
  const balance = `after shard add: keys per shard ${[...totals, on4].map((n, i) => `shard-00${i + 1} ${(100 * n / keys.length).toFixed(1)} %`).join(', ')}`;

  const remove = await runProgramAsync('themis-admin', ['shard', 'remove', '--id', 'shard-004', '--yes', '--wait', ...sessionArgs()]);
  t.equal(remove.status, 0, remove.status === 0 ? 'shard remove --yes --wait ends once the operation cut over' : `${remove.stdout}\n${remove.stderr}`);
  t.equal(new Set(remove.stdout.split('\n').filter((l) => /^shard-004 +shard-00[123] /.test(l)).map((l) => l.split(/ +/)[1])).size, 3, 'shard-004 gives its tokens to all three others');
  await cleaned(/operation ([0-9a-f-]{36})/.exec(remove.stdout)?.[1] ?? '', ['shard-004']);
  stop();
  const stats = await loop;
  await readLoop;
  // Reported, not asserted: on a 2-core machine running another mesh beside this one (CI's two
  // jobs), the whole machine stalls for seconds at times; a sidecar that holds a request longer
  // than 5 s logs "request still running" with its steps.
  t.comment(slow.length ? `writes slower than 5 s: ${slow.join('; ')}` : 'no write took more than 5 s');
  if (slow.length) for (const line of mesh.sidecarLogLines(HUNG_REQUEST)) t.comment(`sidecar: ${line}`);
  t.same(unreadable, [], `every key was readable throughout (${reads} reads through every sidecar)`);
  t.equal(stats.failed, 0, `no write failed while the shard came and went (${stats.acknowledged} acknowledged; ${JSON.stringify(stats.failures)})`);
  t.equal(await countOn(mesh.spares[0]!.storage.url), 0, 'shard-004\'s storage node is empty again (it may be stopped)');
  const final = await Promise.all(mesh.nodes.map((n) => countOn(n.storage.url)));
  t.equal(final.reduce((a, b) => a + b, 0), keys.length, 'every key is on exactly one of the three nodes');
  for (const n of mesh.nodes) {
    const v = await history.check(async (key) => {
      const r = await call(n.appUrl, 'GET', `/entities/${encodeURIComponent(key)}`);
      return r.status === 200 ? (r.body.blob as string) : undefined;
    });
    t.same({ lost: v.lost, reverted: v.reverted, invented: v.invented }, { lost: [], reverted: [], invented: [] }, `through ${n.shard.id}: every acknowledged write reads back (${v.checked} keys)`);
  }
  t.comment(balance);
  t.comment(`after shard remove: keys per shard ${final.map((n, i) => `shard-00${i + 1} ${(100 * n / keys.length).toFixed(1)} %`).join(', ')}; ${stats.acknowledged} writes acknowledged meanwhile`);
});
