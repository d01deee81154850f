// The control process's hub and its workers' links, wired by an in-memory channel that copies
// every message through JSON as node:cluster's IPC does: write holds reach every worker and are
// drained only when every worker has drained them; the replay check and position waits are the
// control process's; a worker that joins during a hold holds from its first request.
import t from 'tap';
import { silentLogger } from '../../../../src/log.js';
import { WorkerHub, type HubDeps, type WorkerPort } from '../../../../proxy/cluster/worker-hub.js';
import type { WorkerDocs } from '../../../../proxy/cluster/messages.js';
import { ControlLink, type Channel } from '../../../../proxy/cluster/control-link.js';
import { WriteHold } from '../../../../proxy/rebalance/write-hold.js';
import { ReplayGuard } from '../../../../src/signing/replay-guard.js';
import { localAdmission } from '../../../../src/signing/replay-admission.js';
import { FakeClock } from '../../../../src/runtime.js';

const copy = (m: unknown) => JSON.parse(JSON.stringify(m)) as unknown;
const tick = () => new Promise((r) => setImmediate(r));

function worker(hub: WorkerHub, slot: number): { link: ControlLink; writes: WriteHold; port: WorkerPort; channel: Channel & { connected: boolean }; sent: string[]; received: string[] } {
  let deliver: (m: unknown) => void = () => undefined;
  const sent: string[] = [];
  const received: string[] = [];
  const port: WorkerPort = { slot, send: (m) => (received.push(m.kind), queueMicrotask(() => deliver(copy(m)))) };
  const channel = {
    connected: true,
    send: (m: unknown) => (sent.push((m as { kind: string }).kind), queueMicrotask(() => hub.handle(port, copy(m))), true),
    on: (_e: 'message', l: (m: unknown) => void) => (deliver = l),
  };
  const link = new ControlLink(channel);
  const writes = new WriteHold();
  link.serveHolds(writes);
  link.hello();
  return { link, writes, port, channel, sent, received };
}

// Keys whose tokens fall in the held span and outside it (the whole ring: any key is inside).
const KEY = 'document.app.orders:0b6c2f0e-3d6e-4c57-9a51-9d7f1c1f7a11';
const ALL = [{ start: 0n, end: 2n ** 64n - 1n }];

const NO_DOCS: WorkerDocs = { topology: null, crls: null };

function hub(epoch = () => 1, docs: Pick<HubDeps, 'docs' | 'refreshTopology'> = { docs: () => NO_DOCS, refreshTopology: async () => undefined }): WorkerHub {
  const h = new WorkerHub();
  const clock = new FakeClock(1_700_000_000_000);
  h.serve({
    admit: localAdmission(new ReplayGuard(clock), { cover: () => undefined }),
    positions: { record: () => undefined, waitFor: async (replicas, needed) => [...replicas.keys()].slice(0, needed) },
    movePositions: { record: () => undefined },
    epoch,
    log: silentLogger,
    ...docs,
  });
  return h;
}

t.test('a hold is on in every worker, and drained only once every worker has drained it', async (t) => {
  const h = hub();
  const [w1, w2] = [worker(h, 1), worker(h, 2)];
  w1.link.epoch(1);
  w2.link.epoch(1);
  await tick();
  t.equal(h.size, 2);
  const done1 = await w1.writes.enter(KEY); // a write in flight in worker 1
  const held = h.hold(ALL);
  let drained = false;
  void held.drained.then(() => (drained = true));
  await tick();
  t.equal(w1.writes.active, 1, 'worker 1 holds');
  t.equal(w2.writes.active, 1, 'worker 2 holds');
  t.notOk(drained, 'not drained while worker 1 has a write in flight');
  let entered = false;
  void w2.writes.enter(KEY).then((d) => ((entered = true), d()));
  await tick();
  t.notOk(entered, 'a new write in worker 2 waits');
  done1();
  await tick();
  await tick();
  t.ok(drained, 'drained once worker 1\'s write finished');
  held.release();
  await tick();
  await tick();
  t.ok(entered, 'released: the waiting write goes on');
  t.equal(w1.writes.active + w2.writes.active, 0);
});

t.test('a worker that joins during a hold holds before it serves; one that dies is not waited for', async (t) => {
  const h = hub();
  const w1 = worker(h, 1);
  await tick();
  const done = await w1.writes.enter(KEY);
  const held = h.hold(ALL);
  let drained = false;
  void held.drained.then(() => (drained = true));
  const w2 = worker(h, 2);
  await tick();
  await tick();
  t.equal(w2.writes.active, 1, 'the new worker got the hold in its welcome');
  h.gone(w1.port);
  await tick();
  t.ok(drained, 'the dead worker\'s write is not waited for');
  done();
  held.release();
});

t.test('the replay check is the control process\'s: a nonce used through one worker is refused through another', async (t) => {
  const h = hub();
  const [w1, w2] = [worker(h, 1), worker(h, 2)];
  await tick();
  const ts = 1_700_000_000_000;
  await w1.link.admit('CN=shard-002', 'n1', ts);
  await t.rejects(async () => w2.link.admit('CN=shard-002', 'n1', ts), { name: 'ThemisError', code: 'REPLAY_DETECTED', status: 409 });
  await w2.link.admit('CN=shard-002', 'n2', ts);
  t.same(await w1.link.waitFor(new Map([['shard-002', 'd'], ['shard-003', 'd']]), 1, 5, 100), ['shard-002'], 'position waits are answered by the control process');
});

t.test('the control process gone: calls fail with 503, and no call is left hanging', async (t) => {
  const h = hub();
  const w = worker(h, 1);
  await tick();
  w.channel.connected = false;
  await t.rejects(async () => w.link.admit('CN=shard-002', 'n3', 1_700_000_000_000), { code: 'REPLAY_STATE_UNAVAILABLE' });
  t.same(await w.link.waitFor(new Map([['shard-002', 'd']]), 1, 5, 100), [], 'no replica counts');
});

t.test('the calls of one event-loop turn go in one message, and their answers come back in one', async (t) => {
  const h = hub();
  const w = worker(h, 1);
  await tick();
  w.sent.length = 0;
  w.received.length = 0;
  const ts = 1_700_000_000_000;
  const results = await Promise.allSettled(['a', 'b', 'c', 'a'].map(async (n) => w.link.admit('CN=shard-002', n, ts)));
  t.same(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'fulfilled', 'rejected'], 'the repeated nonce in the same batch is refused');
  t.match((results[3] as PromiseRejectedResult).reason, { code: 'REPLAY_DETECTED' });
  t.same(w.sent, ['rpcs'], 'four calls, one message');
  t.same(w.received, ['replies'], 'four answers, one message');
});

t.test('a released hold lets a worker\'s writes go only once that worker routes by the cutover\'s epoch', async (t) => {
  let epoch = 4;
  const h = hub(() => epoch);
  const w = worker(h, 1);
  w.link.epoch(4);
  await tick();
  const held = h.hold(ALL);
  await tick();
  let entered = false;
  void w.writes.enter(KEY).then((d) => ((entered = true), d()));
  epoch = 5; // the control process applied the epoch that moved the range
  held.release();
  await tick();
  await tick();
  t.notOk(entered, 'still held: this worker routes by epoch 4 yet, where this shard owns the key');
  t.equal(w.writes.active, 1);
  w.link.epoch(5);
  await tick();
  t.ok(entered, 'released once it routes by epoch 5');
});

t.test('a hold released in the same read as the welcome that carries it is not left on', async (t) => {
  const h = hub();
  const w1 = worker(h, 1);
  w1.link.epoch(1);
  await tick();
  const held = h.hold(ALL);
  const w2 = worker(h, 2); // its hello reaches the hub after the hold …
  w2.link.epoch(1);
  await tick(); // … so its welcome carries the hold
  held.release(); // and the release follows
  await tick();
  await tick();
  t.equal(w2.writes.active, 0, 'no hold is left in the new worker');
  t.equal(w1.writes.active, 0);
});

t.test('documents: asked for before anything is built, then every change; a refresh answers after the change it brought', async (t) => {
  let docs: WorkerDocs = { topology: { document: '{"epoch":1}', epoch: 1, signer: null }, crls: ['AAAA'] };
  let refreshed = 0;
  const h = hub(() => docs.topology!.epoch, {
    docs: () => docs,
    refreshTopology: async () => {
      refreshed++;
      docs = { ...docs, topology: { document: '{"epoch":3}', epoch: 3, signer: null } };
      h.publishDocs();
    },
  });
  const w = worker(h, 1);
  const first = await w.link.docs();
  t.same(first, docs, 'the documents in force');
  t.equal(w.sent.filter((k) => k === 'subscribe').length, 1, 'asked once');
  const seen: WorkerDocs[] = [];
  docs = { ...docs, topology: { document: '{"epoch":2}', epoch: 2, signer: null } };
  h.publishDocs(); // before the worker listens: kept for it
  await tick();
  w.link.serveDocs((d) => seen.push(d));
  t.same(seen.map((d) => d.topology?.epoch), [2], 'a change made while it was building is handed over at once');
  await w.link.refreshTopology();
  t.equal(refreshed, 1, 'the control process read etcd again');
  t.same(seen.map((d) => d.topology?.epoch), [2, 3], 'the change it brought arrived before the answer');
  docs = { ...docs, crls: ['AAAA', 'BBBB'] };
  h.publishDocs();
  await tick();
  t.same(seen.at(-1)?.crls, ['AAAA', 'BBBB'], 'a new CRL set reaches the worker');
  h.gone(w.port);
  const before = w.received.length;
  h.publishDocs();
  t.equal(w.received.length, before, 'a worker that exited gets nothing more');
});
