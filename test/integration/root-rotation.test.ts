// Root rotation without downtime (issue 19, docs/pki.md "Rotating the root") on real processes:
// three sidecars, a write and read loop through every app port (so every request crosses the
// mesh's mTLS and signed requests), and the operator's four steps done to the sidecars' files:
//   1. trust both roots (tls.ca = old + new root; CRL files hold both generations' CRLs);
//   2. move every shard to a certificate of the new generation, one at a time;
//   3. remove the old root (tls.ca = new root; its CRLs only).
// No request may fail, every acknowledged write reads back (history checker), and afterwards a
// certificate of the old generation is refused while the new ones are served.
import t, { type Test } from 'tap';
import tls from 'node:tls';
import { renameSync, writeFileSync, copyFileSync } from 'node:fs';
import { startMesh, uuidOwnedBy, type Mesh } from '../support/mesh.js';
import { checkLoad, startMeshLoad } from '../support/mesh-load.js';
import { call } from '../support/storage-process.js';
import { probeHandshake } from '../support/tls-probe.js';
import { createPkiFixture, type PkiFixture } from '../support/pki-fixture.js';

t.setTimeout(180_000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let mesh: Mesh;
let next: PkiFixture;
t.before(async () => {
  mesh = await startMesh({ shards: 3, trustFile: true });
  // The new generation: the same shards (ids, addresses, ranges), every CA named "… G2".
  next = await createPkiFixture({ shards: 3, generation: 'G2' });
});
t.teardown(async () => {
  await mesh?.close();
  await next?.cleanup();
});

/** Atomic replace, as an operator's config management would do it (the sidecar polls files). */
function put(path: string, text: string): void {
  writeFileSync(path + '.new', text);
  renameSync(path + '.new', path);
}

const metricsOf = async (i: number) => (await call(mesh.nodes[i]!.adminUrl, 'GET', '/metrics')).text;
const anchors = (m: string) => [...m.matchAll(/themis_trust_anchor_expiry_seconds\{subject="([^"]+)"/g)].map((x) => x[1]!).sort();

/** Until every sidecar trusts exactly these roots (it reloads its files within about a second). */
async function untilTrusted(t: Test, subjects: string[]): Promise<void> {
  const want = [...subjects].sort();
  const deadline = Date.now() + 20_000;
  let got: string[][] = [];
  while (Date.now() < deadline) {
    got = await Promise.all(mesh.nodes.map(async (_, i) => anchors(await metricsOf(i))));
    if (got.every((a) => JSON.stringify(a) === JSON.stringify(want))) break;
    await sleep(250);
  }
  t.same(got, mesh.nodes.map(() => want), `every sidecar trusts ${want.join(' + ')}`);
}

/** The issuer of the certificate a sidecar presents on its mesh port (we present a new-generation shard certificate). */
function presentedIssuer(i: number): Promise<string> {
  const n = mesh.nodes[i]!;
  return new Promise((resolve) => {
    const s = tls.connect({ host: n.shard.ip, port: n.meshPort, ca: mesh.pki.root.cert + next.root.cert, cert: next.shards[0]!.chain, key: next.shards[0]!.key, servername: 'localhost', ALPNProtocols: ['h2'], checkServerIdentity: () => undefined }, () => {
      resolve(String(s.getPeerCertificate().issuer.CN));
      s.destroy();
    });
    s.once('error', (e) => resolve(`error: ${e.message}`));
  });
}

t.test('old root → both → new root, with traffic running: no failed request, nothing lost', async (t) => {
  // The loop's keys are owned by shard-001 and shard-003 (every app port still sends across the
  // mesh); shard-002 gets only the probe of step 3, whose storage node is stopped for a while.
  const keys = mesh.nodes.filter((_, i) => i !== 1).flatMap((n) => [0, 1, 2, 3].map(() => `/entities/document.app.rotate:${uuidOwnedBy(n.shard.tokenRange)}`));
  const probe = `/entities/document.app.rotate:${uuidOwnedBy(mesh.nodes[1]!.shard.tokenRange)}`;
  t.equal((await call(mesh.nodes[1]!.appUrl, 'PUT', probe, { blob: '{"probe":1}' })).status, 201, 'the probe key is written');
  const load = startMeshLoad(mesh.nodes, keys);
  let failure: unknown;
  const oldCrls = mesh.pki.crls();
  const newCrls = next.crls();
  try {
    await sleep(1000);
    // 1. Trust both: the new generation's CRLs first, then the bundle.
    mesh.crlFiles.forEach((f, i) => put(f, oldCrls[i]! + newCrls[i]!));
    // As `themis-pki trust-bundle --pki OLD --pki NEW` writes it: both roots, both cluster CAs.
    put(mesh.trustFile!, mesh.pki.root.cert + next.root.cert + mesh.pki.cas.cluster.cert + next.cas.cluster.cert);
    await untilTrusted(t, ['CN=Themis Root CA, O=themis-mesh', 'CN=Themis Root CA G2, O=themis-mesh']);
    t.same(await Promise.all(mesh.nodes.map((_, i) => presentedIssuer(i))), mesh.nodes.map(() => 'Themis Cluster CA'), 'every sidecar still presents its old certificate');

    // 2. Move the leaves, one shard at a time: for a while both generations talk to each other.
    for (const [i, n] of mesh.nodes.entries()) {
      copyFileSync(next.shards[i]!.keyPath, n.shard.keyPath);
      copyFileSync(next.shards[i]!.chainPath, n.shard.chainPath);
      n.sidecar!.child.kill('SIGHUP');
      await sleep(1500);
      // shard-001 moved first: the session it opens to shard-002 now meets shard-002's old certificate.
      if (i === 0) t.equal((await call(mesh.nodes[0]!.appUrl, 'GET', probe)).status, 200, 'shard-001 reads from shard-002 after its own move');
    }
    t.same(await Promise.all(mesh.nodes.map((_, i) => presentedIssuer(i))), mesh.nodes.map(() => 'Themis Cluster CA G2'), 'every sidecar presents a certificate of the new generation');

    // 3. Remove the old root. shard-001's session to shard-002 was opened when shard-001 moved
    // (first), so it carries shard-002's old-generation certificate; a read is held in flight on
    // it (shard-002's storage node stopped) while the old root goes: the session must end
    // gracefully (GOAWAY), not cut that read — a removed root is not a revocation.
    mesh.nodes[1]!.storage.child.kill('SIGSTOP');
    const held = call(mesh.nodes[0]!.appUrl, 'GET', probe, undefined, 20_000).finally(() => mesh.nodes[1]!.storage.child.kill('SIGCONT'));
    await sleep(500);
    put(mesh.trustFile!, next.root.cert);
    mesh.crlFiles.forEach((f, i) => put(f, newCrls[i]!));
    await untilTrusted(t, ['CN=Themis Root CA G2, O=themis-mesh']);
    mesh.nodes[1]!.storage.child.kill('SIGCONT');
    const answer = await held;
    t.equal(answer.status, 200, `a read in flight on a session of the old generation is answered (${answer.text.slice(0, 200)})`);
    t.equal(answer.headers.get('x-themis-shard'), 'shard-002', 'by shard-002');
    await sleep(1500);
  } catch (e) {
    failure = e;
  }
  const result = await load.stop(); // the loops end whatever happened
  if (failure) throw failure;
  await checkLoad(t, load, result, mesh.nodes[0]!, 50, 'during the rotation');

  // The old generation is out: its shard certificate no longer gets in; the new one does.
  const n = mesh.nodes[1]!;
  const old = mesh.pki.shards[0]!;
  t.equal(await probeHandshake(n.shard.ip, n.meshPort, next.root.cert, { cert: old.chain, key: old.key }), 'refused', 'an old-generation shard certificate is refused');
  t.not(await probeHandshake(n.shard.ip, n.meshPort, next.root.cert, { cert: next.shards[0]!.chain, key: next.shards[0]!.key }), 'refused', 'a new-generation one is accepted');
  t.match(await metricsOf(1), /themis_mtls_handshakes_total\{result="failure",reason="unknown_issuer"\} [1-9]/, 'counted as unknown_issuer');
});
