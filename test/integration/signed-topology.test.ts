import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPkiFixture, splitTokenRange, type PkiFixture, type LeafMaterial } from '../support/pki-fixture.js';
import { loadPrivateKey } from '../../src/pki/keys.js';
import { parsePem } from '../../src/pki/pem.js';
import { PeerVerifier } from '../../src/pki/verify.js';
import { signTopology, verifySignedTopology } from '../../src/topology/signed.js';
import { Topology } from '../../src/topology/topology.js';
import { HashRing } from '../../src/ring/ring.js';
import { topologyFromRing } from '../../src/topology/from-ring.js';
import { systemClock } from '../../src/runtime.js';

let pki: PkiFixture;
let foreign: PkiFixture;
const dir = mkdtempSync(join(tmpdir(), 'themis-signed-topo-'));
t.before(async () => {
  pki = await createPkiFixture({ shards: 3 });
  foreign = await createPkiFixture({ shards: 1 });
});
t.teardown(async () => {
  rmSync(dir, { recursive: true, force: true });
  await pki?.cleanup();
  await foreign?.cleanup();
});

const chainOf = (l: LeafMaterial) => parsePem(l.chain, 'chain').map((b) => new Uint8Array(b.der));
const sign = async (topo: Topology, l: LeafMaterial) => signTopology(topo, chainOf(l), (await loadPrivateKey(l.key, undefined, 'key')).privateKey);

function contiguous(epoch: number): Topology {
  const ids = pki.shards.map((s) => s.id);
  return new Topology({
    cluster: pki.cluster,
    epoch,
    vnodes: 0,
    shards: Object.fromEntries(ids.map((id) => [id, {}])),
    ranges: splitTokenRange(ids.length).map((r, i) => ({ ...r, owner: ids[i]!, replicas: [] })),
  });
}

const options = (current?: Topology) => ({
  verifier: new PeerVerifier({ root: pki.root.cert, crls: pki.crls(), clock: systemClock }),
  current,
  cluster: pki.cluster,
  certifiedRange: (id: string) => pki.shards.find((s) => s.id === id)?.tokenRange,
});

t.test('an admin-signed topology verifies in our code and with stock openssl; one changed byte fails both', async (t) => {
  const st = await sign(contiguous(1), pki.operators.admin);
  const v = await verifySignedTopology(st, options());
  t.ok(v.ok, v.ok ? 'verified' : v.message);
  if (v.ok) t.equal(v.signer.serial, pki.operators.admin.serial);
  writeFileSync(join(dir, 'doc.json'), st.document);
  writeFileSync(join(dir, 'doc.p7s'), Buffer.from(st.cms, 'base64'));
  const ossl = (content: string) =>
    spawnSync('openssl', ['cms', '-verify', '-binary', '-inform', 'DER', '-in', join(dir, 'doc.p7s'), '-content', content, '-CAfile', pki.root.certPath, '-purpose', 'any', '-out', '/dev/null'], { encoding: 'utf8' });
  const good = ossl(join(dir, 'doc.json'));
  t.equal(good.status, 0, good.stderr);
  const tampered = st.document.replace('"epoch": 1', '"epoch": 7');
  writeFileSync(join(dir, 'bad.json'), tampered);
  t.not(ossl(join(dir, 'bad.json')).status, 0, 'openssl rejects the changed document');
  const forged = await verifySignedTopology({ ...st, document: tampered }, options());
  t.match(forged, { ok: false, reason: 'bad_signature' });
});

t.test('every forgery and unauthorised change is refused with its reason', async (t) => {
  const current = contiguous(5);
  const next = contiguous(6);
  const revokedOp = await pki.issue((await import('../../src/pki/profiles.js')).operatorProfile({ name: 'leaver', capabilities: ['rebalance', 'add_shard'] }), 'leaver');
  const revokedSigned = await sign(next, revokedOp);
  await pki.revoke(revokedOp.serial);
  const cases: [string, unknown, string][] = [
    ['not a signed document', { document: 'x' }, 'malformed'],
    ['cms that is not CMS', { document: (await sign(next, pki.operators.admin)).document, cms: Buffer.from('nope').toString('base64') }, 'malformed'],
    ['signed by a shard', await sign(next, pki.shards[0]!), 'not_operator'],
    ['signed by a read-only operator', await sign(next, pki.operators.readonly), 'missing_capability'],
    ['signed by a client', await sign(next, pki.clients.readWrite), 'not_operator'],
    ['signed under a foreign root', await sign(next, foreign.operators.admin), 'untrusted_signer'],
    ['signed by a revoked operator', revokedSigned, 'untrusted_signer'],
    ['an older epoch', await sign(contiguous(4), pki.operators.admin), 'not_newer'],
    ['the same epoch', await sign(contiguous(5), pki.operators.admin), 'not_newer'],
    ['ranges outside certified token ranges', await sign(topologyFromRing(new HashRing(pki.shards.map((s) => s.id), 16), { cluster: pki.cluster, epoch: 6 }), pki.operators.admin), 'range_not_certified'],
  ];
  for (const [name, st, reason] of cases) {
    const v = await verifySignedTopology(st, options(current));
    // The verdict holds BigInt token ranges when it accepts: describe it without JSON.stringify,
    // so an accepted forgery fails this assertion instead of crashing while naming it.
    const got = v.ok ? `accepted (epoch ${v.topology.epoch})` : `${v.reason}: ${v.message.slice(0, 120)}`;
    t.equal(v.ok ? 'accepted' : v.reason, reason, `${name}: ${got}`);
  }
  t.match(await verifySignedTopology(await sign(next, pki.operators.admin), options(current)), { ok: true }, 'the admin’s newer one passes');
});

t.test('themis-admin topology sign and verify', async (t) => {
  const { runProgram } = await import('../support/cli.js');
  const { readFileSync } = await import('node:fs');
  const crlFiles = pki.crls().map((c, i) => {
    const f = join(dir, `crl-${i}.pem`);
    writeFileSync(f, c);
    return f;
  });
  const plan = join(dir, 'plan.json');
  t.equal(runProgram('themis-admin', ['topology', 'plan', '--shards', 'shard-001,shard-002,shard-003', '--cluster', pki.cluster, '--sample', '0', '--out', plan]).status, 0);
  const signAs = (who: LeafMaterial, out: string) =>
    runProgram('themis-admin', ['topology', 'sign', '--plan', plan, '--operator-cert', who.chainPath, '--operator-key', who.keyPath, '--out', out]);
  const verifyFile = (f: string) => runProgram('themis-admin', ['topology', 'verify', '--signed', f, '--ca', pki.root.certPath, '--crls', crlFiles.join(',')]);
  const good = join(dir, 'admin.signed.json');
  const s = signAs(pki.operators.admin, good);
  t.equal(s.status, 0, s.stderr);
  t.match(s.stdout, /wrote .*admin\.signed\.json: epoch 1/);
  const v = verifyFile(good);
  t.equal(v.status, 0, v.stdout + v.stderr);
  t.match(v.stdout, /valid — epoch 1, signed by .*admin/);
  const ro = join(dir, 'ro.signed.json');
  t.equal(signAs(pki.operators.readonly, ro).status, 0, 'anyone can sign …');
  const refused = verifyFile(ro);
  t.equal(refused.status, 1, '… but a read-only operator’s signature is refused');
  t.match(refused.stdout, /REFUSED \(missing_capability\)/);
  const forged = join(dir, 'forged.signed.json');
  const doc = JSON.parse(readFileSync(good, 'utf8'));
  writeFileSync(forged, JSON.stringify({ ...doc, document: doc.document.replace('"epoch": 1', '"epoch": 99') }));
  t.match(verifyFile(forged).stdout, /REFUSED \(bad_signature\)/);
  t.match(signAs(pki.operators.admin, good).stderr, /already exists; pass --force/);
});

t.test('a change needs every capability it uses, not any one of them', async (t) => {
  const { operatorProfile } = await import('../../src/pki/profiles.js');
  const opWith = (name: string, ...capabilities: ('add_shard' | 'remove_shard' | 'rebalance')[]) => pki.issue(operatorProfile({ name, capabilities }), name);
  const adder = await opWith('adder', 'add_shard');
  const remover = await opWith('remover', 'remove_shard');
  const mover = await opWith('mover', 'rebalance');
  const both = await opWith('adder-remover', 'add_shard', 'remove_shard');
  const [a, b, c] = pki.shards.map((s) => s.id) as [string, string, string];
  const half = (2n ** 64n - 1n) / 2n;
  const two = (epoch: number, x: string, y: string, split = half) =>
    new Topology({ cluster: pki.cluster, epoch, vnodes: 0, shards: { [x]: {}, [y]: {} }, ranges: [{ start: 0n, end: split, owner: x, replicas: [] }, { start: split + 1n, end: 2n ** 64n - 1n, owner: y, replicas: [] }] });
  // Certified ranges are not the subject here: every shard may hold every token.
  const opts = (current: Topology | undefined, bootstrap = false) => ({ verifier: options().verifier, current, cluster: pki.cluster, bootstrap });
  const current = two(5, a, b);
  const swapBForC = two(6, a, c);
  const moveAtoB = two(6, a, b, half / 2n);
  const verdict = async (next: Topology, who: LeafMaterial, base: Topology | null = current, bootstrap = false) => verifySignedTopology(await sign(next, who), opts(base ?? undefined, bootstrap));
  t.match(await verdict(swapBForC, adder), { ok: false, reason: 'missing_capability', message: /lacks remove_shard/ }, 'adding one shard and removing another needs remove_shard too');
  t.match(await verdict(swapBForC, remover), { ok: false, reason: 'missing_capability', message: /lacks add_shard/ }, '… and add_shard');
  t.match(await verdict(swapBForC, both), { ok: true }, 'with both it passes');
  t.match(await verdict(moveAtoB, adder), { ok: false, reason: 'missing_capability', message: /lacks rebalance/ }, 'moving tokens between staying shards needs rebalance, not add_shard');
  t.match(await verdict(moveAtoB, mover), { ok: true }, 'rebalance moves them');
  t.match(await verdict(moveAtoB, mover, null), { ok: true }, 'judged without a base (a cache at start): any topology capability will do');
  t.match(await verdict(moveAtoB, pki.operators.readonly, null), { ok: false, reason: 'missing_capability' }, '… but not view_topology alone');
  t.match(await verdict(moveAtoB, mover, null, true), { ok: false, reason: 'missing_capability', message: /lacks add_shard/ }, 'the first topology ever needs add_shard');
  const rejected = await verdict(moveAtoB, adder);
  t.match(rejected, { ok: false, signer: { subject: /adder/, serial: adder.serial, verified: true } }, 'the refusal names the signer');
});

t.test('every owner and replica must lie inside its certified token range', async (t) => {
  const ids = pki.shards.map((s) => s.id);
  const base = contiguous(5);
  // shard-002 becomes a replica of shard-001's range, which its certificate does not cover.
  const next = new Topology({ cluster: pki.cluster, epoch: 6, vnodes: 0, shards: base.shards, ranges: base.ranges.map((r, i) => ({ ...r, replicas: i === 0 ? [ids[1]!] : [] })) });
  const v = await verifySignedTopology(await sign(next, pki.operators.admin), options(base));
  t.match(v, { ok: false, reason: 'range_not_certified', message: new RegExp(`${ids[1]} is given tokens`) });
});
