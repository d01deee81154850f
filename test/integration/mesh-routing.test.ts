import t from 'tap';
import http2 from 'node:http2';
import { startMesh, uuidOwnedBy, type Mesh } from '../support/mesh.js';
import { call } from '../support/storage-process.js';
import { openssl } from '../support/pki-fixture.js';

let mesh: Mesh;
t.before(async () => {
  mesh = await startMesh({ shards: 3 });
});
t.teardown(() => mesh?.close());

t.test('put through one sidecar, get through another, for keys owned by every shard', async (t) => {
  const [a, , c] = mesh.nodes;
  for (const owner of mesh.nodes) {
    const uuid = uuidOwnedBy(owner.shard.tokenRange);
    const urn = `urn:themis:document:app:orders:${uuid}`;
    const blob = JSON.stringify({ owner: owner.shard.id, n: 1 });
    const put = await call(a!.appUrl, 'PUT', `/entities/${encodeURIComponent(urn)}`, { blob });
    t.equal(put.status, 201, `PUT via ${a!.shard.id} for ${owner.shard.id}: ${put.text}`);
    t.equal(put.headers.get('x-themis-shard'), owner.shard.id, 'served by the owner');
    t.equal(put.headers.get('x-themis-topology-epoch'), '1');
    // The other key form, through another sidecar.
    const got = await call(c!.appUrl, 'GET', `/entities/document.app.orders:${uuid}`);
    t.equal(got.status, 200);
    t.equal(got.body.blob, blob);
    t.equal(got.headers.get('x-themis-shard'), owner.shard.id);
    // It physically lives on the owner's storage node and nowhere else.
    for (const node of mesh.nodes) {
      const direct = await call(node.storage.url, 'GET', `/entities/document.app.orders:${uuid}`);
      t.equal(direct.status, node === owner ? 200 : 404, `${node.shard.id} holds it: ${node === owner}`);
    }
    const del = await call(c!.appUrl, 'DELETE', `/entities/${encodeURIComponent(urn)}`);
    t.equal(del.status, 200);
    t.equal((await call(a!.appUrl, 'GET', `/entities/${encodeURIComponent(urn)}`)).status, 404);
  }
});

t.test('the admin port reports requests, latency and the topology epoch', async (t) => {
  const node = mesh.nodes[0]!;
  const text = await fetch(`${node.adminUrl}/metrics`).then((r) => r.text());
  t.match(text, /themis_requests_total\{listener="app",operation="entity",result="2xx"\} [1-9]/);
  t.match(text, /themis_request_duration_seconds_count\{listener="app",operation="entity"\} [1-9]/);
  t.match(text, /themis_topology_epoch 1/);
  const expiry = Number(/themis_certificate_expiry_seconds\{shard_id="shard-001"\} (\d+)/.exec(text)?.[1]);
  t.ok(expiry > 300 * 86400 && expiry <= 366 * 86400, `this shard's certificate expires in ${expiry} s (a one-year certificate)`);
  const days = Number(/themis_certificate_expiry_days\{shard_id="shard-001"\} ([\d.]+)/.exec(text)?.[1]);
  t.ok(Math.abs(days - expiry / 86400) < 0.01, `the seed's days gauge (${days}) says the same as the seconds gauge`);
  // Expected values come from openssl reading the files, not from our parser.
  const secondsUntil = (args: string[], field: string) => {
    const line = openssl(args).stdout.split('\n').find((l) => l.startsWith(field))!;
    return (Date.parse(line.slice(field.length)) - Date.now()) / 1000;
  };
  const root = secondsUntil(['x509', '-in', mesh.pki.root.certPath, '-noout', '-enddate'], 'notAfter=');
  const anchor = Number(/themis_trust_anchor_expiry_seconds\{subject="CN=Themis Root CA, O=themis-mesh",serial="[0-9a-f]+"\} (\d+)/.exec(text)?.[1]);
  t.ok(Math.abs(anchor - root) < 120, `trust anchor expires in ${anchor} s; openssl says ${Math.round(root)} s`);
  for (const [ca, path] of [['Cluster', mesh.pki.cas.cluster.crlPath], ['Root', mesh.pki.root.crlPath]] as const) {
    const next = secondsUntil(['crl', '-in', path, '-noout', '-nextupdate'], 'nextUpdate=');
    const re = new RegExp(`themis_crl_expiry_seconds\\{issuer="CN=Themis ${ca} CA[^"]*"\\} (\\d+)`);
    const got = Number(re.exec(text)?.[1]);
    t.ok(Math.abs(got - next) < 120, `${ca} CA's CRL reaches nextUpdate in ${got} s; openssl says ${Math.round(next)} s`);
  }
  const ready = await fetch(`${node.adminUrl}/readyz`);
  t.equal(ready.status, 200);
  t.equal((await fetch(`${node.adminUrl}/healthz`)).status, 200);
});

t.test('the app port speaks h2c too', async (t) => {
  const node = mesh.nodes[0]!;
  const owner = mesh.nodes[2]!;
  const uuid = uuidOwnedBy(owner.shard.tokenRange);
  const session = http2.connect(node.appUrl);
  t.teardown(() => session.close());
  const res = await new Promise<{ status: number; shard: string; body: string }>((resolve, reject) => {
    const s = session.request({ ':method': 'PUT', ':path': `/entities/graph.social.edges:${uuid}`, 'content-type': 'application/json' });
    let body = '';
    let status = 0;
    let shard = '';
    s.on('response', (h) => {
      status = Number(h[':status']);
      shard = String(h['x-themis-shard']);
    });
    s.setEncoding('utf8');
    s.on('data', (d: string) => (body += d));
    s.on('end', () => resolve({ status, shard, body }));
    s.on('error', reject);
    s.end(JSON.stringify({ blob: '{"h2c":true}' }));
  });
  t.equal(res.status, 201, res.body);
  t.equal(res.shard, owner.shard.id);
});

t.test('bad keys get 400 INVALID_KEY from the sidecar itself, never forwarded', async (t) => {
  const node = mesh.nodes[0]!;
  for (const key of ['urn:themis:nope:a:b:x', 'relational.a.b:not-a-uuid', '%E0%A4%A']) {
    const r = await call(node.appUrl, 'GET', `/entities/${key}`);
    t.equal(r.status, 400, key);
    t.equal(r.body.code, 'INVALID_KEY', key);
    t.equal(r.headers.get('x-themis-shard'), '-', `${key}: no shard served it (the sidecar's own answer)`);
  }
});

t.test('POST /entities with a table: the sidecar picks the uuid and routes to its owner, local or remote', async (t) => {
  const node = mesh.nodes[0]!;
  const servedBy = new Set<string>();
  for (let i = 0; i < 12; i++) {
    const r = await call(node.appUrl, 'POST', '/entities', { table: 'document.app.generated', blob: JSON.stringify({ i }) });
    t.equal(r.status, 201, r.text);
    servedBy.add(String(r.headers.get('x-themis-shard')));
    const back = await call(mesh.nodes[2]!.appUrl, 'GET', `/entities/${r.body.key}`);
    t.equal(back.body.blob, JSON.stringify({ i }), 'readable from anywhere');
  }
  t.ok([...servedBy].some((s) => s !== node.shard.id), `some went to remote owners: ${[...servedBy]}`);
});

t.test('HEAD is not part of the storage API', async (t) => {
  const r = await fetch(`${mesh.nodes[0]!.appUrl}/entities/document.a.b:${uuidOwnedBy(mesh.nodes[1]!.shard.tokenRange)}`, { method: 'HEAD' });
  t.equal(r.status, 405);
});
