// Regression for "a certificate's role is trusted whatever CA issued it": every role claimed by
// a leaf from every CA (ours three and a foreign root's), made by our library and by openssl,
// at every place a role is trusted — mesh handshake and capabilities, topology signatures
// (applied by a sidecar from etcd, and `themis-admin topology verify`), `themis-admin shards`,
// `themis-pki inspect` — plus CRL publishing (each CA's CRL into each crl/{ca} slot).
// Refusals are checked in the audit trail and the metrics.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMesh, type Mesh } from '../support/mesh.js';
import { createPkiFixture, type PkiFixture } from '../support/pki-fixture.js';
import { meshConnect, meshRequest, signHeaders } from '../support/mesh-client.js';
import { runProgram } from '../support/cli.js';
import { buildRoleMatrix, expectedVerdict, MAY_GRANT, shardClaimWithoutId, type MatrixCert } from '../support/role-matrix.js';
import { uuidOwnedBy } from '../support/keys.js';
import { connectEtcd, etcdKeys } from '../../src/control/etcd.js';
import { CrlPublishError, crlValue, publishCrl } from '../../src/control/crl-store.js';
import { writeCrl } from '../../src/pki/commands.js';
import { CrlTrust } from '../../src/pki/crl-trust.js';
import { loadPrivateKey } from '../../src/pki/keys.js';
import { parsePem } from '../../src/pki/pem.js';
import { PeerVerifier } from '../../src/pki/verify.js';
import { signTopology } from '../../src/topology/signed.js';
import { systemClock } from '../../src/runtime.js';

let mesh: Mesh;
let foreign: PkiFixture;
let dir: string;
let cells: MatrixCert[];

t.before(async () => {
  mesh = await startMesh({ shards: 1, withEtcd: true, etcdTopology: true });
  foreign = await createPkiFixture({ shards: 1 });
  dir = mkdtempSync(join(tmpdir(), 'themis-matrix-'));
  cells = await buildRoleMatrix(dir, mesh.pki, foreign);
});
t.teardown(async () => {
  await mesh?.close();
  await foreign?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const node = () => mesh.nodes[0]!;
const audit = () => readFileSync(node().auditFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const metric = async (re: RegExp) => Number(re.exec(await fetch(`${node().adminUrl}/metrics`).then((r) => r.text()))?.[1] ?? 0);
const isShard = (c: MatrixCert) => c.role === 'primary' || c.role === 'replica';
const der = (pem: string) => parsePem(pem, 'chain').map((b) => new Uint8Array(b.der));

t.test('the matrix holds 32 distinct cells, 4 roles x 4 issuers x 2 builders', async (t) => {
  t.equal(cells.length, 32);
  t.equal(new Set(cells.map((c) => c.serial)).size, 32, 'every certificate is distinct');
  t.equal(cells.filter((c) => expectedVerdict(c) === 'ok').length, 8, 'one legitimate issuer per role per builder');
});

t.test('chain verification: a role counts only from the CA that may grant it', async (t) => {
  const v = new PeerVerifier({ root: mesh.pki.root.cert, crls: mesh.pki.crls(), clock: systemClock });
  for (const c of cells) {
    const r = v.verify(der(c.chain), 'clientAuth');
    const want = expectedVerdict(c);
    t.equal(r.ok ? 'ok' : r.reason, want, c.label);
    if (!r.ok && want === 'wrong_issuer') t.match(r.message, new RegExp(`must be issued by the ${MAY_GRANT[c.role]} CA`), `${c.label}: says which CA it needs`);
  }
});

t.test('mesh port: admission and capabilities by role and issuer; refusals audited and counted', async (t) => {
  const failures = /themis_mtls_handshakes_total\{result="failure",reason="(\w+)"\} (\d+)/g;
  const counts = async () => {
    const text = await fetch(`${node().adminUrl}/metrics`).then((r) => r.text());
    return Object.fromEntries([...text.matchAll(failures)].map((m) => [m[1]!, Number(m[2])]));
  };
  const before = await counts();
  const endpoint = `${node().shard.ip}:${node().meshPort}`;
  const entity = `/entities/document.app.e:${uuidOwnedBy(node().shard.tokenRange)}`;
  const feed = '/changefeed?from_seq=0&limit=1';
  for (const c of cells) {
    const s = meshConnect(endpoint, { cert: c.chain, key: c.key, ca: mesh.pki.root.cert });
    try {
      const ask = (path: string) => {
        const headers = isShard(c) ? signHeaders({ shardId: c.shardId, serial: c.serial, key: c.key, method: 'GET', path }) : {};
        return meshRequest(s, 'GET', path, headers).then((r) => `${r.status} ${r.body?.code ?? ''}`.trim(), () => 'refused');
      };
      const got = [await ask(feed), await ask(entity)];
      if (expectedVerdict(c) !== 'ok') t.same(got, ['refused', 'refused'], `${c.label}: connection refused`);
      else if (isShard(c)) t.same(got, ['200', '404 ENTITY_NOT_FOUND'], `${c.label}: a shard reads the feed and entities`);
      else if (c.role === 'client') t.same(got, ['403 CAPABILITY_DENIED', '404 ENTITY_NOT_FOUND'], `${c.label}: a client reads entities, never the feed`);
      else t.same(got, ['403 CAPABILITY_DENIED', '403 CAPABILITY_DENIED'], `${c.label}: an operator has no data-path capability`);
    } finally {
      s.destroy();
    }
  }
  await sleep(200);
  const lines = audit();
  for (const c of cells.filter((x) => expectedVerdict(x) !== 'ok')) {
    const line = lines.find((e) => e.event === 'MTLS_CONNECTION_FAILED' && e.peer?.serial === c.serial);
    t.equal(line?.reason, expectedVerdict(c), `${c.label}: audited as ${expectedVerdict(c)}`);
    t.ok(line?.peer?.cn && line?.peer?.issuer, `${c.label}: the audit line names the subject and issuer it claimed`);
  }
  for (const c of cells.filter((x) => expectedVerdict(x) === 'ok' && !isShard(x))) {
    const denied = lines.find((e) => e.event === 'CAPABILITY_DENIED' && e.peer?.serial === c.serial);
    t.match(denied?.peer, { cn: /mallory/, issuer: new RegExp(`OU=${c.issuer}`) }, `${c.label}: capability refusal names subject and issuer`);
  }
  const after = await counts();
  t.equal((after.wrong_issuer ?? 0) - (before.wrong_issuer ?? 0), 16, '16 handshakes refused as wrong_issuer');
  t.equal((after.unknown_issuer ?? 0) - (before.unknown_issuer ?? 0), 8, '8 handshakes refused as unknown_issuer');
});

// The cells issue 25 names, written out by hand rather than derived through expectedVerdict:
// a certificate claiming a shard role from the client or operator CA never acts as a shard, and
// the reason is wrong_issuer, literally — in chain verification, at the mesh port's handshake,
// in the audit trail and in the handshake counter. Plus one cell outside the 32: our cluster
// CA's own leaf claiming a shard role with no shard id, refused by the mesh port itself.
t.test('who may act as a shard: shard roles from the client or operator CA, and a shard claim without a shard id, are refused as wrong_issuer', async (t) => {
  const hand: [string, string, string][] = [];
  for (const builder of ['themis-pki', 'openssl']) {
    for (const role of ['primary', 'replica']) for (const issuer of ['client', 'operator']) hand.push([builder, role, issuer]);
  }
  const named = hand.map(([builder, role, issuer]) => cells.find((c) => c.builder === builder && c.role === role && c.issuer === issuer)!);
  t.equal(named.filter(Boolean).length, 8, 'the matrix holds all 8 cells: 2 builders x 2 shard roles x client and operator CA');
  const v = new PeerVerifier({ root: mesh.pki.root.cert, crls: mesh.pki.crls(), clock: systemClock });
  for (const c of named) {
    const r = v.verify(der(c.chain), 'clientAuth');
    t.equal(r.ok ? 'accepted' : r.reason, 'wrong_issuer', `${c.label}: chain verification`);
    if (!r.ok) t.match(r.message, new RegExp(`a ${c.role} certificate must be issued by the cluster CA, not by the ${c.issuer} CA`), `${c.label}: says which CA it needs`);
  }
  const noId = await shardClaimWithoutId(dir, mesh.pki);
  const chain = v.verify(der(noId.chain), 'clientAuth');
  t.equal(chain.ok ? 'accepted' : chain.reason, 'accepted', `${noId.label}: the chain itself verifies (the cluster CA may grant the role)`);

  const counted = async () => Number(/themis_mtls_handshakes_total\{result="failure",reason="wrong_issuer"\} (\d+)/.exec(await fetch(`${node().adminUrl}/metrics`).then((r) => r.text()))?.[1] ?? 0);
  const before = await counted();
  const endpoint = `${node().shard.ip}:${node().meshPort}`;
  const entity = `/entities/document.app.e:${uuidOwnedBy(node().shard.tokenRange)}`;
  for (const c of [...named, noId]) {
    const s = meshConnect(endpoint, { cert: c.chain, key: c.key, ca: mesh.pki.root.cert });
    try {
      const headers = signHeaders({ shardId: c.shardId, serial: c.serial, key: c.key, method: 'GET', path: entity });
      const got = await meshRequest(s, 'GET', entity, headers).then((r) => `${r.status} ${r.body?.code ?? ''}`.trim(), () => 'refused');
      t.equal(got, 'refused', `${c.label}: the mesh port refuses the connection`);
    } finally {
      s.destroy();
    }
  }
  await sleep(200);
  // Repeats from one address are aggregated per interval (the test above connected these cells
  // too), so every audit line for the serial counts; the counter below counts each handshake.
  const lines = audit();
  for (const c of [...named, noId]) {
    const reasons = lines.filter((e) => e.event === 'MTLS_CONNECTION_FAILED' && e.peer?.serial === c.serial).map((e) => e.reason);
    t.ok(reasons.length > 0 && reasons.every((r) => r === 'wrong_issuer'), `${c.label}: audited as wrong_issuer (${reasons.join(', ') || 'not audited'})`);
  }
  t.match(lines.find((e) => e.peer?.serial === noId.serial)?.message ?? '', /claims a shard role but was not issued by this cluster's CA/, `${noId.label}: the audit line says why`);
  t.equal((await counted()) - before, 9, '9 handshakes counted as wrong_issuer');
});

/** What a topology signed by this cell must get: applied, or the refusal reason. */
function topologyVerdict(c: MatrixCert): RegExp {
  const v = expectedVerdict(c);
  if (v !== 'ok') return new RegExp(`^untrusted_signer: ${v}`);
  return c.role === 'operator' ? /^applied$/ : /^not_operator/;
}

t.test('topology signatures: written into etcd, applied only when an operator-CA operator signed', async (t) => {
  const key = etcdKeys(mesh.pki.cluster).topology;
  const etcd = connectEtcd({ endpoints: [mesh.etcd!.endpoint], certPem: mesh.pki.operators.admin.chain, keyPem: mesh.pki.operators.admin.key, caPem: mesh.pki.root.cert });
  const rejectedBefore = await metric(/themis_topology_rejections_total (\d+)/);
  let epoch = 1;
  try {
    // Refusals first, so that every applied one raises the epoch by exactly one.
    const ordered = [...cells].sort((a, b) => Number(topologyVerdict(a).test('applied')) - Number(topologyVerdict(b).test('applied')));
    for (const c of ordered) {
      const signed = await signTopology(mesh.topology.withEpoch(epoch + 1), der(c.chain), (await loadPrivateKey(c.key, undefined, 'key')).privateKey);
      writeFileSync(join(dir, `${c.serial}.signed.json`), JSON.stringify(signed));
      const seen = audit().length;
      await etcd.put(key).value(JSON.stringify(signed));
      let line: { event: string; reason?: string; signer?: { serial: string; subject: string; issuer: string } } | undefined;
      for (let i = 0; i < 200 && !line; i++) {
        await sleep(20);
        line = audit().slice(seen).find((e) => e.event === 'TOPOLOGY_APPLIED' || e.event === 'TOPOLOGY_REJECTED');
      }
      const got = line?.event === 'TOPOLOGY_APPLIED' ? 'applied' : line?.reason ?? 'nothing audited';
      t.match(got, topologyVerdict(c), `${c.label}: ${got.slice(0, 70)}`);
      t.match(line?.signer, { serial: c.serial, subject: /themis\.local/, issuer: /CN=/ }, `${c.label}: the audit line names the signer's subject, serial and issuer`);
      if (got === 'applied') epoch++;
    }
  } finally {
    etcd.close();
  }
  t.equal(epoch, 3, 'exactly the two operator-CA operators were applied');
  const health = await fetch(`${node().appUrl}/health`).then((r) => r.json() as Promise<{ topology_epoch: number }>);
  t.equal(health.topology_epoch, 3, 'the sidecar routes by the last good epoch');
  t.equal((await metric(/themis_topology_rejections_total (\d+)/)) - rejectedBefore, 30, '30 refusals counted');
});

// One cell of each role and issuer (16), the builder alternating between them: the CLI runs the
// same check as the sidecar, which the test above gives all 32 cells (each run is a process).
t.test('themis-admin topology verify: the same verdict for every role and issuer', async (t) => {
  const crls = mesh.pki.crls().map((crl, i) => {
    const f = join(dir, `crl-${i}.pem`);
    writeFileSync(f, crl);
    return f;
  });
  const roles = [...new Set(cells.map((c) => c.role))];
  const issuers = [...new Set(cells.map((c) => c.issuer))];
  const each = cells.filter((c) => (roles.indexOf(c.role) + issuers.indexOf(c.issuer)) % 2 === (c.builder === 'themis-pki' ? 0 : 1));
  t.equal(new Set(each.map((c) => `${c.role} ${c.issuer}`)).size, 16, 'every role from every issuer once');
  t.equal(each.filter((c) => c.builder === 'openssl').length, 8, 'half of them made by openssl');
  for (const c of each) {
    const r = runProgram('themis-admin', ['topology', 'verify', '--signed', join(dir, `${c.serial}.signed.json`), '--ca', mesh.pki.root.certPath, '--crls', crls.join(','), '--json']);
    const out = JSON.parse(r.stdout || '{}') as { ok?: boolean; reason?: string; message?: string; signer?: { serial?: string } };
    const got = out.ok ? 'applied' : `${out.reason}: ${out.message}`;
    t.match(got, topologyVerdict(c), `${c.label}: ${got.slice(0, 70)}`);
    t.equal(r.status, out.ok ? 0 : 1, `${c.label}: exit status`);
    t.equal(out.signer?.serial, c.serial, `${c.label}: names the signer`);
  }
});

t.test('themis-admin shards: a registered certificate is a shard only from the cluster CA', async (t) => {
  const matrixCluster = 'matrix';
  const k = etcdKeys(matrixCluster);
  const etcd = connectEtcd({ endpoints: [mesh.etcd!.endpoint], certPem: mesh.pki.operators.admin.chain, keyPem: mesh.pki.operators.admin.key, caPem: mesh.pki.root.cert });
  const idOf = (c: MatrixCert) => c.shardId || `x-${c.builder}-${c.role}-${c.issuer}`;
  try {
    for (const c of cells) await etcd.put(k.shardCertificate(idOf(c))).value(JSON.stringify({ cert_pem: c.chain, serial_number: c.serial }));
  } finally {
    etcd.close();
  }
  const crls = mesh.pki.crls().map((_, i) => join(dir, `crl-${i}.pem`));
  const ro = mesh.pki.operators.readonly;
  const r = runProgram('themis-admin', ['shards', '--etcd', mesh.etcd!.endpoint, '--ca', mesh.pki.root.certPath, '--cert', ro.chainPath, '--key', ro.keyPath, '--cluster', matrixCluster, '--crls', crls.join(','), '--json']);
  t.equal(r.status, 0, r.stderr);
  const rows = new Map((JSON.parse(r.stdout) as { shard: string; status: string }[]).map((x) => [x.shard, x.status]));
  for (const c of cells) {
    const v = expectedVerdict(c);
    // Our library gives operators and clients clientAuth only, so as servers they fail on the
    // extended key usage before their role is looked at (chains from the foreign CA, earlier).
    const clientOnly = c.builder === 'themis-pki' && !isShard(c) && c.issuer !== 'foreign';
    const want = clientOnly ? 'wrong_key_usage' : v !== 'ok' ? v : isShard(c) ? 'valid' : `not a shard certificate (role ${c.role})`;
    t.equal(rows.get(idOf(c)), want, c.label);
  }
});

t.test('themis-pki inspect: says when a role does not match its issuer', async (t) => {
  const r = runProgram('themis-pki', ['inspect', '--json', ...cells.map((c) => c.chainPath)]);
  t.equal(r.status, 0, r.stderr);
  const files = JSON.parse(r.stdout) as { file: string; items: { roleIssuer?: string }[] }[];
  for (const c of cells) {
    const leaf = files.find((f) => f.file === c.chainPath)?.items[0];
    // inspect judges the issuer in the file by its kind; trust in the root is verify's job, and
    // the foreign CA claims the cluster kind.
    const kind = c.issuer === 'foreign' ? 'cluster' : c.issuer;
    t.match(leaf?.roleIssuer, MAY_GRANT[c.role] === kind ? /^ok: / : /^MISMATCH: /, `${c.label}: ${leaf?.roleIssuer?.slice(0, 60)}`);
  }
});

t.test('CRL publishing: crl/{ca} takes only that CA kind’s CRL', async (t) => {
  const etcd = connectEtcd({ endpoints: [mesh.etcd!.endpoint], certPem: mesh.pki.operators.admin.chain, keyPem: mesh.pki.operators.admin.key, caPem: mesh.pki.root.cert });
  const trust = new CrlTrust(mesh.pki.root.cert, systemClock);
  const slots = ['root', 'cluster', 'operator', 'client'] as const;
  const sources = [
    ...slots.map((ca) => ({ name: ca, fx: mesh.pki, ca })),
    { name: 'foreign cluster', fx: foreign, ca: 'cluster' as const },
  ];
  try {
    for (const src of sources) {
      for (const slot of slots) {
        await writeCrl(src.fx.ctx, { ca: src.ca, passphrase: src.fx.passphrase }); // a fresh, higher number each time
        const crl = readFileSync(src.fx.layout.caCrl(src.ca), 'utf8');
        const value = crlValue(src.ca, crl, readFileSync(src.fx.layout.caCert(src.ca), 'utf8'));
        const got = await publishCrl(etcd, 'crl-matrix', slot, value, trust, new Date()).then(
          () => 'published',
          (e: Error) => (e instanceof CrlPublishError ? e.message : `unexpected: ${e.message}`),
        );
        const want = src.name === 'foreign cluster' ? /unknown_issuer/ : src.ca === slot ? /^published$/ : /wrong_issuer/;
        t.match(got, want, `${src.name} CA's CRL into crl/${slot}: ${got.slice(0, 60)}`);
      }
    }
  } finally {
    etcd.close();
  }
});
