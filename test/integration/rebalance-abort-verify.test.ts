// verifyAbort with real certificates and real CMS signatures: only an operator with rebalance,
// add_shard or remove_shard, for this cluster and this operation, may abort; everything else is
// refused with its reason.
import t from 'tap';
import { signAbort, verifyAbort } from '../../src/rebalance/abort.js';
import { loadPrivateKey } from '../../src/pki/keys.js';
import { parsePem } from '../../src/pki/pem.js';
import { PeerVerifier } from '../../src/pki/verify.js';
import { systemClock } from '../../src/runtime.js';
import { createPkiFixture, type LeafMaterial, type PkiFixture } from '../support/pki-fixture.js';

let pki: PkiFixture;
t.before(async () => {
  pki = await createPkiFixture({ shards: 1 });
});
t.teardown(() => pki?.cleanup());

const OP = '2c5e0a51-8f0e-4d7b-9a51-0d4c1f3e9b11';
const as = async (who: LeafMaterial) => ({ chain: parsePem(who.chain, who.name).map((b) => new Uint8Array(b.der)), key: (await loadPrivateKey(who.key, undefined, who.name)).privateKey });
const verify = (input: unknown, opId = OP) => verifyAbort(input, { verifier: new PeerVerifier({ root: pki.root.cert, crls: pki.crls(), clock: systemClock }), cluster: pki.cluster, opId });

t.test('an admin operator\'s abort verifies; every other one is refused with its reason', async (t) => {
  const admin = await as(pki.operators.admin);
  const good = await signAbort(OP, pki.cluster, admin.chain, admin.key);
  t.match(await verify(good), { ok: true, opId: OP, signer: { subject: /admin/, verified: true } }, 'admin');
  t.match(await verify(good, '00000000-0000-4000-8000-000000000000'), { ok: false, reason: 'malformed' }, 'stored under another operation');
  t.match(await verify({ ...good, document: good.document.replace('"abort": true', '"abort": false') }), { ok: false, reason: 'malformed' }, 'not an abort');
  t.match(await verify({ ...good, document: good.document.replace(pki.cluster, 'cluster-other') }), { ok: false, reason: 'bad_signature' }, 'tampered after signing');
  t.match(await verify({ document: good.document, cms: 'AAAA' }), { ok: false, reason: 'malformed' }, 'unsigned');
  t.match(await verify('garbage'), { ok: false, reason: 'malformed' }, 'not {document, cms}');
  const ro = await as(pki.operators.readonly);
  t.match(await verify(await signAbort(OP, pki.cluster, ro.chain, ro.key)), { ok: false, reason: 'missing_capability' }, 'a read-only operator');
  const shard = await as(pki.shards[0]!);
  t.match(await verify(await signAbort(OP, pki.cluster, shard.chain, shard.key)), { ok: false, reason: 'not_operator' }, 'a shard');
  t.match(await verify(await signAbort(OP, 'cluster-other', admin.chain, admin.key)), { ok: false, reason: 'wrong_cluster' }, 'another cluster');
  const foreign = await createPkiFixture({ shards: 1 });
  try {
    const f = await as(foreign.operators.admin);
    t.match(await verify(await signAbort(OP, pki.cluster, f.chain, f.key)), { ok: false, reason: 'untrusted_signer' }, 'an operator of another PKI');
  } finally {
    await foreign.cleanup();
  }
});
