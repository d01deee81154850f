// A sidecar with `workers: 2` (docs/sidecar.md "Workers"): the control process and two worker
// processes behind the same app and mesh ports. What must hold across workers is tested here
// with real processes, TLS and signatures: one replay cache for the host (the same signed request
// sent on two sessions that two workers serve), one /metrics, updates reaching every worker, and
// a killed worker replaced while the other one keeps serving its sessions.
import t, { type Test } from 'tap';
import http from 'node:http';
import http2 from 'node:http2';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { startMesh, uuidOwnedBy, type Mesh } from '../support/mesh.js';
import { meshConnect, meshRequest, signHeaders } from '../support/mesh-client.js';
import { call } from '../support/storage-process.js';
import { serializeTopology } from '../../src/topology/document.js';

let mesh: Mesh;
t.before(async () => {
  // Topology changes reach the sidecars only by SIGHUP here (no polling): the control process must pass it on.
  mesh = await startMesh({ shards: 2, topologyPollMs: 3_600_000, sidecarConfig: { workers: 2, accessLog: { mode: 'on', file: 'access.log' } } });
});
t.teardown(async () => mesh?.close());

interface Line { sidecar: string; worker: number | null; status: number; trace_id: string; listener: string; path: string; code: string | null }
/** Both sidecars write one access log (their configs share the accessLog field). */
const accessLines = (i: number): Line[] =>
  readFileSync(join(mesh.dir, 'access.log'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line).filter((l) => l.sidecar === mesh.nodes[i]!.shard.id);

const metrics = async (i: number) => (await fetch(`${mesh.nodes[i]!.adminUrl}/metrics`)).text();
const sample = (text: string, re: RegExp) => text.split('\n').filter((l) => re.test(l));

/** The worker processes of node i's sidecar, by slot (read from their environment). */
function workers(i: number): Map<number, number> {
  const parent = mesh.nodes[i]!.sidecar!.child.pid!;
  const out = new Map<number, number>();
  for (const pid of execFileSync('pgrep', ['-P', String(parent)], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number)) {
    const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    const slot = env.find((e) => e.startsWith('THEMIS_WORKER_SLOT='));
    if (slot) out.set(Number(slot.split('=')[1]), pid);
  }
  return out;
}

t.test('two worker processes serve; /readyz and the listening line say so', async (t) => {
  t.equal(workers(0).size, 2, 'two workers under the control process');
  const ready = await fetch(`${mesh.nodes[0]!.adminUrl}/readyz`);
  const body = (await ready.json()) as { ready: boolean; checks: { workers?: { ok: boolean; detail: string } } };
  t.equal(ready.status, 200, JSON.stringify(body));
  t.same(body.checks.workers, { ok: true, detail: '2 of 2 workers serve' });
});

/** Sessions to node 0's mesh port as shard-002 until two are served by different workers; each session's worker from the access log. */
async function sessionsOnTwoWorkers(t: Test): Promise<[http2.ClientHttp2Session, http2.ClientHttp2Session]> {
  const [a, b] = mesh.nodes as [Mesh['nodes'][0], Mesh['nodes'][0]];
  const id = { cert: b.shard.chain, key: b.shard.key, ca: mesh.pki.root.cert };
  const path = `/entities/document.app.probe:${uuidOwnedBy(a.shard.tokenRange)}`;
  const seen = new Map<number, http2.ClientHttp2Session>();
  for (let n = 0; n < 8 && seen.size < 2; n++) {
    const s = meshConnect(`${a.shard.ip}:${a.meshPort}`, id);
    const trace = (n + 1).toString(16).padStart(32, 'a');
    const r = await meshRequest(s, 'GET', path, { ...signHeaders({ shardId: b.shard.id, serial: b.shard.serial, key: b.shard.key, method: 'GET', path }), traceparent: `00-${trace}-00f067aa0ba902b7-01` });
    t.not(r.status, 409, 'a fresh nonce is accepted');
    const line = await until(() => accessLines(0).find((l) => l.trace_id === trace));
    if (seen.has(line.worker!)) s.close();
    else seen.set(line.worker!, s);
  }
  t.equal(seen.size, 2, 'two sessions, each served by another worker');
  return [...seen.values()] as [http2.ClientHttp2Session, http2.ClientHttp2Session];
}

/** GET on a connection of its own (no keep-alive pool): its status. */
function freshGet(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http.get(url, { agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    }).on('error', reject);
  });
}

async function until<T>(f: () => T | undefined | Promise<T | undefined>, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${f.toString().slice(0, 200)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

t.test('a nonce accepted by one worker is refused by the other (one replay cache per host)', async (t) => {
  const [a, b] = mesh.nodes as [Mesh['nodes'][0], Mesh['nodes'][0]];
  const [s1, s2] = await sessionsOnTwoWorkers(t);
  const path = `/entities/document.app.replayed:${uuidOwnedBy(a.shard.tokenRange)}`;
  const signed = () => signHeaders({ shardId: b.shard.id, serial: b.shard.serial, key: b.shard.key, method: 'GET', path });
  const headers = signed();
  const first = await meshRequest(s1, 'GET', path, headers);
  t.equal(first.status, 404, `accepted by the first worker (no such entity): ${first.text}`);
  const copy = await meshRequest(s2, 'GET', path, headers);
  t.equal(copy.status, 409, `the copy sent to the other worker: ${copy.text}`);
  t.equal(copy.body?.code, 'REPLAY_DETECTED');
  // Sent at once on both sessions, exactly one of two copies gets through.
  for (let i = 0; i < 5; i++) {
    const h = signed();
    const both = await Promise.all([meshRequest(s1, 'GET', path, h), meshRequest(s2, 'GET', path, h)]);
    t.same(both.map((r) => r.status).sort(), [404, 409], `round ${i}: one accepted, one refused`);
  }
  s1.close();
  s2.close();
});

t.test('/metrics: the workers\' counters summed into one page, each worker\'s topology epoch', async (t) => {
  const a = mesh.nodes[0]!;
  const count = async () => sample(await metrics(0), /^themis_requests_total\{listener="app"/).reduce((n, l) => n + Number(l.split(' ').pop()), 0);
  const before = await count();
  const lines = accessLines(0).length;
  const N = 12;
  for (let i = 0; i < N; i++) {
    // A new connection each: node:cluster hands them to the workers in turn.
    t.equal(await freshGet(`${a.appUrl}/entities/document.app.m:${uuidOwnedBy(a.shard.tokenRange)}`), 404);
  }
  t.equal((await count()) - before, N, 'every request counted once, whichever worker served it');
  const served = new Set(accessLines(0).slice(lines).filter((l) => l.listener === 'app').map((l) => l.worker));
  t.same([...served].sort(), [1, 2], 'both workers served some');
  const text = await metrics(0);
  t.same(sample(text, /^themis_workers /), ['themis_workers 2']);
  t.same(sample(text, /^themis_worker_topology_epoch/).sort(), ['themis_worker_topology_epoch{slot="1"} 1', 'themis_worker_topology_epoch{slot="2"} 1']);
  t.same(sample(text, /^themis_topology_epoch /), ['themis_topology_epoch 1'], 'a gauge of the host is not summed over the workers');
  t.equal(sample(text, /^themis_changefeed_last_seq \d+$/).length, 1, "the storage node's change-log gauges, read by the control process only");
});

t.test('a new topology (SIGHUP) and a new CRL reach every worker', async (t) => {
  const a = mesh.nodes[0]!;
  const epochs = async () => sample(await metrics(0), /^themis_worker_topology_epoch/).sort();
  writeFileSync(mesh.topologyFile, serializeTopology(mesh.topology.withEpoch(2)));
  await new Promise((r) => setTimeout(r, 300));
  t.same(await epochs(), ['themis_worker_topology_epoch{slot="1"} 1', 'themis_worker_topology_epoch{slot="2"} 1'], 'no worker polls the file by itself here');
  const sent = Date.now();
  a.sidecar!.child.kill('SIGHUP');
  await until(async () => ((await epochs()).every((l) => l.endsWith(' 2')) ? true : undefined), 3000);
  t.pass(`both workers route by epoch 2, ${Date.now() - sent} ms after SIGHUP to the control process`);

  // The read-only client's certificate is accepted by both workers, then revoked: by neither.
  const ro = mesh.pki.clients.readOnly;
  const id = { cert: ro.chain, key: ro.key, ca: mesh.pki.root.cert };
  const path = `/entities/document.app.crl:${uuidOwnedBy(a.shard.tokenRange)}`;
  const tryRead = async () => {
    const s = meshConnect(`${a.shard.ip}:${a.meshPort}`, id);
    try {
      return (await meshRequest(s, 'GET', path)).status;
    } catch {
      return 0;
    } finally {
      s.close();
    }
  };
  const lines = accessLines(0).length;
  const before = [];
  for (let i = 0; i < 4; i++) before.push(await tryRead());
  t.same(before, [404, 404, 404, 404], 'four connections with the client certificate are served');
  t.same([...new Set(accessLines(0).slice(lines).map((l) => l.worker))].sort(), [1, 2], 'by both workers');
  await mesh.pki.revoke(ro.serial);
  mesh.publishCrls();
  a.sidecar!.child.kill('SIGHUP');
  const after = await until(async () => {
    const r = [];
    for (let i = 0; i < 4; i++) r.push(await tryRead());
    return r.every((s) => s === 0) ? r : undefined;
  }, 3000);
  t.same(after, [0, 0, 0, 0], 'four connections after the revocation: every handshake refused');
});

t.test('a killed worker is replaced; the other keeps serving its sessions', async (t) => {
  const a = mesh.nodes[0]!;
  const path = `/entities/document.app.kill:${uuidOwnedBy(a.shard.tokenRange)}`;
  // Four h2c sessions to the app port; which worker serves each, from the access log.
  const sessions: { s: http2.ClientHttp2Session; worker: number; ok: number; failed: number }[] = [];
  for (let i = 0; i < 4; i++) {
    const s = http2.connect(a.appUrl);
    s.on('error', () => undefined);
    const trace = (i + 1).toString(16).padStart(32, 'b');
    const r = await h2Get(s, path, { traceparent: `00-${trace}-00f067aa0ba902b7-01` });
    t.equal(r, 404);
    const line = await until(() => accessLines(0).find((l) => l.trace_id === trace));
    sessions.push({ s, worker: line.worker!, ok: 0, failed: 0 });
  }
  t.same([...new Set(sessions.map((x) => x.worker))].sort(), [1, 2], 'the sessions are spread over both workers');
  const before = workers(0);
  const victim = 2;
  let running = true;
  const loops = sessions.map(async (x) => {
    while (running && !x.s.destroyed && !x.s.closed) {
      const status = await h2Get(x.s, path).catch(() => 0);
      if (status === 404) x.ok++;
      else x.failed++;
    }
  });
  await new Promise((r) => setTimeout(r, 300));
  process.kill(before.get(victim)!, 'SIGKILL');
  await new Promise((r) => setTimeout(r, 700));
  running = false;
  await Promise.all(loops);
  for (const x of sessions.filter((x) => x.worker !== victim)) {
    t.equal(x.failed, 0, `a session on worker ${x.worker}: none of its ${x.ok} requests failed`);
    t.ok(x.ok > 5, 'and it kept being served after the kill');
  }
  for (const x of sessions.filter((x) => x.worker === victim)) t.ok(x.s.destroyed || x.s.closed || x.failed > 0, 'a session on the killed worker ended');
  for (const x of sessions) x.s.destroy();

  const replaced = await until(() => {
    const now = workers(0);
    return now.size === 2 && now.get(victim) !== before.get(victim) ? now : undefined;
  }, 10_000);
  t.equal(replaced.get(1), before.get(1), 'the other worker is the same process');
  const ready = await until(async () => ((await fetch(`${a.adminUrl}/readyz`)).status === 200 ? true : undefined), 10_000);
  t.ok(ready, '/readyz: 2 of 2 workers again');
  t.same(sample(await metrics(0), /^themis_worker_restarts_total/), [`themis_worker_restarts_total{slot="${victim}"} 1`]);
  const statuses = [];
  for (let i = 0; i < 4; i++) statuses.push(await freshGet(`${a.appUrl}${path}`));
  t.same(statuses, [404, 404, 404, 404], 'new connections are served by both');
  const audit = readdirSync(mesh.dir).filter((f) => /\.worker-\d\.log$/.test(f)).sort();
  t.ok(audit.length >= 2, `each worker keeps its own audit chain: ${audit.join(', ')}`);
});

function h2Get(s: http2.ClientHttp2Session, path: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = s.request({ ':method': 'GET', ':path': path, ...headers });
    let status = 0;
    req.on('response', (h) => (status = Number(h[':status'])));
    req.resume();
    req.on('end', () => resolve(status));
    req.on('error', reject);
    req.on('close', () => (status ? resolve(status) : reject(new Error('stream closed'))));
  });
}

t.test('SIGTERM to the control process: every worker drains and exits, then the control process, with status 0', async (t) => {
  const b = mesh.nodes[1]!;
  const pids = [...workers(1).values()];
  t.equal(pids.length, 2);
  const exit = await b.sidecar!.kill('SIGTERM');
  t.same(exit, { code: 0, signal: null }, 'the control process exited 0');
  const alive = pids.filter((pid) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  });
  t.same(alive, [], 'no worker outlives it');
});
