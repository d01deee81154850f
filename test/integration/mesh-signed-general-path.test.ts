// Regression for "the body hash and the nonce are checked only on the entity GET/PUT/DELETE
// path" (issue 25): shard-to-shard POST /entities, /query, /vector/search and the change feed
// reach the mesh port's compatibility adapter, not the core-stream fast path. A tampered body
// and a replayed request on each of them must get the stable error code, reach no storage node,
// and be audited. Real sidecars over real mTLS, with shard-001's certificate from the test PKI.
import t from 'tap';
import type { ClientHttp2Session } from 'node:http2';
import { readFileSync } from 'node:fs';
import { startMesh, uuidOwnedBy, type Mesh } from '../support/mesh.js';
import { meshConnect, meshRequest, signHeaders } from '../support/mesh-client.js';

let mesh: Mesh;
let session: ClientHttp2Session;
t.before(async () => {
  mesh = await startMesh({ shards: 2 });
  const sender = mesh.pki.shards[0]!;
  session = meshConnect(`${mesh.nodes[1]!.shard.ip}:${mesh.nodes[1]!.meshPort}`, { cert: sender.chain, key: sender.key, ca: mesh.pki.root.cert });
});
t.teardown(async () => {
  session?.close();
  await mesh?.close();
});

const TABLE = 'document.app.general';
const sender = () => mesh.pki.shards[0]!;
const receiver = () => mesh.nodes[1]!;
const audit = () => readFileSync(receiver().auditFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { event: string; reason?: string; peer?: { serial?: string } });
const storage = (path: string, init?: RequestInit) => fetch(`${receiver().storage.url}${path}`, init).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));
const lastSeq = async () => (await storage('/health')).body.last_seq as number;
const sign = (method: string, path: string, body?: string) => signHeaders({ shardId: sender().id, serial: sender().serial, key: sender().key, method, path, body });
const send = (method: string, path: string, headers: Record<string, string>, body?: string) => meshRequest(session, method, path, headers, body);

/** One request on the general path: accepted once; with another body than signed, 401; sent again as it was, 409. */
interface Case {
  name: string;
  method: string;
  path: string;
  body: string | undefined;
  accepted: number;
  /** Sent in place of the signed body (same length or not: the hash is what counts). */
  tampered: string;
}

function cases(): Case[] {
  const key = `${TABLE}:${uuidOwnedBy(receiver().shard.tokenRange)}`;
  return [
    { name: 'POST /entities', method: 'POST', path: '/entities', body: JSON.stringify({ key, blob: '{"v":"signed"}' }), accepted: 201, tampered: JSON.stringify({ key, blob: '{"v":"forged"}' }) },
    { name: 'POST /query', method: 'POST', path: '/query', body: JSON.stringify({ table: TABLE, return: 'count' }), accepted: 200, tampered: JSON.stringify({ table: TABLE, return: 'entities' }) },
    { name: 'POST /vector/search', method: 'POST', path: '/vector/search', body: JSON.stringify({ table: TABLE, vector: [0.1, 0.2], k: 1 }), accepted: 200, tampered: JSON.stringify({ table: TABLE, vector: [0.9, 0.9], k: 9 }) },
    // A GET is signed over the empty body: any body sent with it is one the sender did not sign.
    { name: 'GET /changefeed', method: 'GET', path: '/changefeed?from_seq=0&limit=5', body: undefined, accepted: 200, tampered: '{"smuggled":true}' },
    { name: 'POST /changefeed/followers', method: 'POST', path: '/changefeed/followers', body: JSON.stringify({ id: 'general-path-test', seq: 0 }), accepted: 200, tampered: JSON.stringify({ id: 'general-path-forged', seq: 0 }) },
  ];
}

t.test('a tampered body on every general-path route is refused 401 SIGNATURE_INVALID and reaches no storage', async (t) => {
  for (const c of cases()) {
    const seqBefore = await lastSeq();
    const r = await send(c.method, c.path, sign(c.method, c.path, c.body), c.tampered);
    t.equal(r.status, 401, `${c.name}: ${r.text.slice(0, 200)}`);
    t.equal(r.body?.code, 'SIGNATURE_INVALID', `${c.name}: the stable code`);
    t.match(r.body?.message, /does not match the signed x-themis-content-sha256/, `${c.name}: refused by the body hash, not by anything else`);
    t.equal(await lastSeq(), seqBefore, `${c.name}: nothing written`);
  }
  const [entity] = cases();
  const key = (JSON.parse(entity!.body!) as { key: string }).key;
  t.equal((await storage(`/entities/${key}`)).status, 404, 'the forged POST /entities is not in storage');
  const followers = (await storage('/changefeed/followers')).body;
  t.notMatch(JSON.stringify(followers), /general-path-forged/, 'the forged follower registration is not in storage');
  const failed = audit().filter((e) => e.event === 'SIGNATURE_FAILED' && e.reason === 'SIGNATURE_INVALID' && e.peer?.serial === sender().serial);
  t.ok(failed.length >= cases().length, `every refusal audited as SIGNATURE_FAILED (${failed.length})`);
});

t.test('a replay on every general-path route is refused 409 REPLAY_DETECTED and does nothing', async (t) => {
  for (const c of cases()) {
    const headers = sign(c.method, c.path, c.body);
    const first = await send(c.method, c.path, headers, c.body);
    t.equal(first.status, c.accepted, `${c.name}: the signed request is accepted once: ${first.text.slice(0, 200)}`);
    const seqBefore = await lastSeq();
    const again = await send(c.method, c.path, headers, c.body);
    t.equal(again.status, 409, `${c.name}: the same request again: ${again.text.slice(0, 200)}`);
    t.equal(again.body?.code, 'REPLAY_DETECTED', `${c.name}: the stable code`);
    t.equal(await lastSeq(), seqBefore, `${c.name}: the replay wrote nothing`);
  }
  const replays = audit().filter((e) => e.event === 'REPLAY_REJECTED' && e.peer?.serial === sender().serial);
  t.ok(replays.length >= cases().length, `every replay audited as REPLAY_REJECTED (${replays.length})`);
});

t.test('a replayed nonce with a fresh, correctly signed body is still refused on the general path', async (t) => {
  // The nonce is the sender's promise of "once": a new body signed again under a used nonce is a replay too.
  const key = `${TABLE}:${uuidOwnedBy(receiver().shard.tokenRange)}`;
  const body = (v: string) => JSON.stringify({ key, blob: JSON.stringify({ v }) });
  const first = sign('POST', '/entities', body('one'));
  t.equal((await send('POST', '/entities', first, body('one'))).status, 201);
  const reused = signHeaders({ shardId: sender().id, serial: sender().serial, key: sender().key, method: 'POST', path: '/entities', body: body('two'), nonce: first['x-themis-nonce']! });
  const r = await send('POST', '/entities', reused, body('two'));
  t.equal(r.status, 409, r.text);
  t.equal(r.body?.code, 'REPLAY_DETECTED');
  t.equal((await storage(`/entities/${key}`)).body.blob, '{"v":"one"}', 'the second body never reached storage');
});
