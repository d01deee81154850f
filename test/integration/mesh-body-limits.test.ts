// The mesh port's limits on request bodies, on real sidecars over real mTLS: a stream that stalls
// its body gets 408 REQUEST_TIMEOUT and is reset after mesh.bodyTimeoutMs (shard peers and
// client-certificate apps alike) while other streams on the same session are served; bodies in
// flight beyond mesh.maxInflightBodyBytes get 503 BODY_BUDGET_EXCEEDED (by declared length at
// once, by arriving bytes otherwise) while the ones within it complete. Nothing refused reaches
// the storage node, and the sidecar stays up.
import { statusesDuring } from '../support/raw-client.js';
import t, { type Test } from 'tap';
import http2 from 'node:http2';
import { startMesh, uuidOwnedBy, type Mesh } from '../support/mesh.js';
import { meshConnect, meshRequest, signHeaders } from '../support/mesh-client.js';

const MAX_BODY = 1024 * 1024;
const BUDGET = 1536 * 1024;
let mesh: Mesh;
let session: http2.ClientHttp2Session;
t.before(async () => {
  mesh = await startMesh({ shards: 2, sidecarConfig: { maxBodyBytes: MAX_BODY, mesh: { bodyTimeoutMs: 2500, maxInflightBodyBytes: BUDGET } } });
  const sender = mesh.pki.shards[0]!;
  session = meshConnect(`${mesh.nodes[1]!.shard.ip}:${mesh.nodes[1]!.meshPort}`, { cert: sender.chain, key: sender.key, ca: mesh.pki.root.cert });
});
t.teardown(async () => {
  session?.close();
  await mesh?.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const keyPath = () => `/entities/document.app.bodies:${uuidOwnedBy(mesh.nodes[1]!.shard.tokenRange)}`;
const entityBody = (kib: number) => Buffer.from(JSON.stringify({ blob: JSON.stringify({ pad: 'x'.repeat(kib * 1024) }) }));

interface Outcome {
  status: number;
  code: string | undefined;
  rst: number;
  ms: number;
}

/** A PUT whose body is sent `first` bytes now and the rest on `rest()`; signed as shard-001 unless `headers` are given. */
function put(s: http2.ClientHttp2Session, path: string, body: Buffer, o: { first: number; declare?: boolean; headers?: Record<string, string> }) {
  const sender = mesh.pki.shards[0]!;
  const headers = o.headers ?? signHeaders({ shardId: sender.id, serial: sender.serial, key: sender.key, method: 'PUT', path, body: body.toString() });
  const started = Date.now();
  const stream = s.request({ ':method': 'PUT', ':path': path, ...headers, ...(o.declare === false ? {} : { 'content-length': String(body.length) }) }, { endStream: false });
  stream.on('error', () => undefined);
  let status = 0;
  let text = '';
  const code = () => {
    try {
      return (JSON.parse(text) as { code?: string }).code;
    } catch {
      return undefined;
    }
  };
  stream.on('response', (h) => (status = Number(h[':status'])));
  stream.setEncoding('utf8');
  stream.on('data', (d: string) => (text += d));
  // Bounded, so that a limit that does not act fails the test instead of hanging it.
  const never = (): Outcome => ({ status, code: code(), rst: -1, ms: -1 });
  /** Once the stream closed (rst: how). */
  const outcome = Promise.race([
    new Promise<Outcome>((resolve) => stream.on('close', () => resolve({ status, code: code(), rst: stream.rstCode ?? -1, ms: Date.now() - started }))),
    sleep(8000).then(never),
  ]);
  /** Once the answer is in, while this side may still be sending; the stream is then closed from here, as a client would. */
  const answered = Promise.race([
    new Promise<Outcome>((resolve) => {
      const done = () => {
        resolve({ status, code: code(), rst: -1, ms: Date.now() - started });
        if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
      };
      stream.on('end', done);
      stream.on('close', done);
    }),
    sleep(8000).then(never),
  ]);
  stream.write(body.subarray(0, o.first));
  return { outcome, answered, rest: () => stream.end(body.subarray(o.first)) };
}

const signedGet = (s: http2.ClientHttp2Session, path: string) => {
  const sender = mesh.pki.shards[0]!;
  return meshRequest(s, 'GET', path, signHeaders({ shardId: sender.id, serial: sender.serial, key: sender.key, method: 'GET', path }));
};
const stored = async (path: string) => (await fetch(`${mesh.nodes[1]!.storage.url}${path}`)).status;
const metric = async (limit: string) => Number(new RegExp(`themis_listener_limits_total\\{listener="mesh",limit="${limit}"\\} (\\d+)`).exec(await (await fetch(`${mesh.nodes[1]!.adminUrl}/metrics`)).text())?.[1] ?? 0);

/** Runs `f` while signed GETs go out on the same session every 100 ms; each must be answered. */
async function servedThroughout(t: Test, f: () => Promise<void>): Promise<void> {
  const path = keyPath();
  const statuses = await statusesDuring(() => signedGet(session, path).then((r) => r.status), f);
  t.ok(statuses.length >= 5, `signed reads on the same session: ${statuses.length}`);
  t.same([...new Set(statuses)], [404], 'each answered (404: never written)');
  t.equal(mesh.nodes[1]!.sidecar!.child.exitCode, null, 'the sidecar is still running');
}

t.test('a stream that stalls its body gets 408 REQUEST_TIMEOUT and is reset after the body timeout', async (t) => {
  const signedPath = keyPath();
  const appPath = keyPath();
  const rw = mesh.pki.clients.readWrite;
  const client = meshConnect(`${mesh.nodes[1]!.shard.ip}:${mesh.nodes[1]!.meshPort}`, { cert: rw.chain, key: rw.key, ca: mesh.pki.root.cert });
  t.teardown(() => client.close());
  const before = await metric('body_timeout');
  await servedThroughout(t, async () => {
    const body = entityBody(1);
    const [peer, app] = await Promise.all([
      put(session, signedPath, body, { first: 10 }).outcome, // a shard peer: the core-API path
      put(client, appPath, body, { first: 10, headers: {} }).outcome, // a client-certificate app: the compatibility path
    ]);
    for (const [who, o] of [['shard peer', peer], ['client app', app]] as const) {
      t.equal(o.status, 408, `${who}: 408`);
      t.equal(o.code, 'REQUEST_TIMEOUT', `${who}: the stable code`);
      t.equal(o.rst, http2.constants.NGHTTP2_CANCEL, `${who}: the stream reset`);
      t.ok(o.ms >= 2400 && o.ms < 4500, `${who}: after ${o.ms} ms (timeout 2500)`);
    }
  });
  t.equal(await stored(signedPath), 404, 'the stalled peer write did not reach storage');
  t.equal(await stored(appPath), 404, 'nor the stalled app write');
  t.equal(await metric('body_timeout'), before + 2, 'counted');
});

t.test('bodies in flight beyond the budget get 503 BODY_BUDGET_EXCEEDED; the ones within it complete', async (t) => {
  const before = await metric('body_budget');
  await servedThroughout(t, async () => {
    // 900 KiB declared and held (half sent): within the 1.5 MiB budget.
    const heldPath = keyPath();
    const held = put(session, heldPath, entityBody(900), { first: 450 * 1024 });
    await sleep(200);
    // 700 KiB more, declared: refused at once, before its body is read.
    const declaredPath = keyPath();
    const declared = await put(session, declaredPath, entityBody(700), { first: 1024 }).answered;
    t.equal(declared.status, 503, 'declared over the budget: 503');
    t.equal(declared.code, 'BODY_BUDGET_EXCEEDED', 'with the stable code');
    t.ok(declared.ms < 1000, `refused at once (${declared.ms} ms)`);
    // 700 KiB with no content-length: refused once its bytes pass the budget.
    const undeclaredPath = keyPath();
    const undeclared = put(session, undeclaredPath, entityBody(700), { first: 400 * 1024, declare: false });
    await sleep(200);
    undeclared.rest();
    const u = await undeclared.answered;
    t.equal(u.status, 503, 'arriving over the budget: 503');
    t.equal(u.code, 'BODY_BUDGET_EXCEEDED', 'with the stable code');
    // The held one completes and is written.
    held.rest();
    const h = await held.outcome;
    t.equal(h.status, 201, 'the body within the budget is served');
    t.equal(await stored(heldPath), 200, 'and written');
    t.equal(await stored(declaredPath), 404, 'nothing of a refused body reached storage');
    t.equal(await stored(undeclaredPath), 404, 'of either');
    // Its bytes are given back: the next large body fits.
    const nextPath = keyPath();
    const next = put(session, nextPath, entityBody(900), { first: 0 });
    next.rest();
    t.equal((await next.outcome).status, 201, 'the budget is free again once the streams closed');
  });
  t.equal(await metric('body_budget'), before + 2, 'counted');
});
