// verifySignedTopology's verdicts word for word, and who it names as the signer: verified, or
// only as the certificate claims. Real PKI, real CMS signatures. (signed-topology.test.ts covers
// which forgeries are refused and the interop with openssl; this pins what each refusal says.)
// Found by mutation testing (docs/testing.md).
import t from 'tap';
import { createPkiFixture, splitTokenRange, type LeafMaterial, type PkiFixture } from '../../support/pki-fixture.js';
import { loadPrivateKey } from '../../../src/pki/keys.js';
import { parsePem } from '../../../src/pki/pem.js';
import { PeerVerifier } from '../../../src/pki/verify.js';
import { signTopology, verifySignedTopology, type VerifyOptions } from '../../../src/topology/signed.js';
import { Topology } from '../../../src/topology/topology.js';
import { x509 } from '../../../src/pki/x509.js';
import { systemClock } from '../../../src/runtime.js';

let pki: PkiFixture;
let foreign: PkiFixture;
t.before(async () => {
  [pki, foreign] = await Promise.all([createPkiFixture({ shards: 2 }), createPkiFixture({ shards: 1 })]);
});
t.teardown(async () => {
  await pki?.cleanup();
  await foreign?.cleanup();
});

const chainOf = (l: LeafMaterial) => parsePem(l.chain, 'chain').map((b) => new Uint8Array(b.der));
const sign = async (topo: Topology, l: LeafMaterial) => signTopology(topo, chainOf(l), (await loadPrivateKey(l.key, undefined, 'key')).privateKey);
const subjectOf = (l: LeafMaterial) => new x509.X509Certificate(l.cert).subject;
const topo = (epoch: number, cluster = pki.cluster) =>
  new Topology({
    cluster, epoch, vnodes: 0,
    shards: { 'shard-001': {}, 'shard-002': {} },
    ranges: splitTokenRange(2).map((r, i) => ({ ...r, owner: `shard-00${i + 1}`, replicas: [] })),
  });
const opts = (o: Partial<VerifyOptions> = {}): VerifyOptions => ({ verifier: new PeerVerifier({ root: pki.root.cert, crls: pki.crls(), clock: systemClock }), cluster: pki.cluster, ...o });

t.test('accepted: the signer is named and verified', async (t) => {
  const v = await verifySignedTopology(await sign(topo(2), pki.operators.admin), opts({ current: topo(1) }));
  t.match(v, { ok: true, signer: { subject: subjectOf(pki.operators.admin), serial: pki.operators.admin.serial, verified: true } });
});

t.test('malformed input, word for word', async (t) => {
  t.match(await verifySignedTopology(null, opts()), { ok: false, reason: 'malformed', message: 'expected {document, cms} strings' });
  t.match(await verifySignedTopology({ document: '{}', cms: '' }, opts()), { ok: false, reason: 'malformed' });
  const good = await sign(topo(2), pki.operators.admin);
  const v = await verifySignedTopology({ ...good, cms: Buffer.from('nope').toString('base64') }, opts());
  t.match(v, { ok: false, reason: 'malformed', message: /^cms: / });
});

t.test('a bad signature names the signer only as claimed', async (t) => {
  const good = await sign(topo(2), pki.operators.admin);
  const v = await verifySignedTopology({ ...good, document: good.document.replace('"epoch": 2', '"epoch": 3') }, opts());
  t.match(v, { ok: false, reason: 'bad_signature', message: 'the CMS signature does not verify over the document', signer: { subject: subjectOf(pki.operators.admin), serial: pki.operators.admin.serial, verified: false } });
});

t.test('an untrusted signer: the verifier\'s reason, and the leaf as claimed', async (t) => {
  const v = await verifySignedTopology(await sign(topo(2), foreign.operators.admin), opts());
  t.match(v, { ok: false, reason: 'untrusted_signer', message: /^unknown_issuer: no trusted issuer/, signer: { subject: subjectOf(foreign.operators.admin), verified: false } });
});

t.test('who signed and what they may change, word for word', async (t) => {
  const shard = pki.shards[0]!;
  t.match(await verifySignedTopology(await sign(topo(2), shard), opts({ current: topo(1) })), {
    ok: false, reason: 'not_operator', message: `${subjectOf(shard)} is a primary certificate, not an operator's`, signer: { verified: true },
  });
  const ro = pki.operators.readonly;
  t.match(await verifySignedTopology(await sign(topo(2), ro), opts({ bootstrap: true })), { ok: false, reason: 'missing_capability', message: `${subjectOf(ro)} lacks add_shard for this change` });
  t.match(await verifySignedTopology(await sign(topo(2), ro), opts()), { ok: false, reason: 'missing_capability', message: `${subjectOf(ro)} holds none of add_shard, remove_shard, rebalance` });
});

t.test('another cluster, an epoch not newer, a range outside its certificate', async (t) => {
  const admin = pki.operators.admin;
  t.match(await verifySignedTopology(await sign(topo(2, 'cluster-other'), admin), opts({ current: topo(1) })), {
    ok: false, reason: 'wrong_cluster', message: `topology is for cluster "cluster-other", not "${pki.cluster}"`,
  });
  t.match(await verifySignedTopology(await sign(topo(2), admin), opts({ current: topo(2) })), { ok: false, reason: 'not_newer', message: 'epoch 2 is not newer than 2' });
  const narrow = { start: 0n, end: 10n };
  t.match(await verifySignedTopology(await sign(topo(2), admin), opts({ current: topo(1), certifiedRange: (id) => (id === 'shard-002' ? narrow : undefined) })), {
    ok: false, reason: 'range_not_certified', message: /^shard-002 is given tokens 0x[0-9a-f]{16}–0xffffffffffffffff, outside 0x0000000000000000–0x000000000000000a that its certificate allows$/,
  });
  t.match(await verifySignedTopology(await sign(topo(2), admin), opts({ current: topo(1), certifiedRange: () => undefined })), { ok: true }, 'control: no certified range known, nothing to compare');
});
