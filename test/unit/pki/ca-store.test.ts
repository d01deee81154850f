import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { PkiLayout, loadIssuer, readState } from '../../../src/pki/ca-store.js';
import { FIXTURE_PASSPHRASE, createPkiFixture, type PkiFixture } from '../../support/pki-fixture.js';

let fx: PkiFixture;
t.before(async () => {
  fx = await createPkiFixture({ shards: 1 });
});
t.teardown(() => fx.cleanup());

t.test('the layout: one folder per CA, one per leaf', async (t) => {
  const L = new PkiLayout('/x/pki');
  t.equal(L.caCert('root'), '/x/pki/root/cert.pem');
  t.equal(L.caChain('cluster'), '/x/pki/cluster/chain.pem');
  t.equal(L.caCrl('operator'), '/x/pki/operator/crl.pem');
  t.equal(L.caState('client'), '/x/pki/client/state.json');
  t.equal(L.leafDir('shard', 'shard-001'), '/x/pki/shards/shard-001');
  t.equal(L.leafDir('server', 'etcd'), '/x/pki/servers/etcd');
  t.equal(fx.shards[0]!.chainPath, fx.layout.leafDir('shard', 'shard-001') + '/chain.pem');
});

t.test('a CA key that is not the key of the CA certificate is refused', async (t) => {
  await t.rejects(loadIssuer(fx.layout, 'cluster', FIXTURE_PASSPHRASE, fx.layout.caKey('client')), {
    code: 'INVALID_ARGUMENT',
    message: `${fx.layout.caKey('client')}: is not the key of ${fx.layout.caCert('cluster')}`,
  });
  const ok = await loadIssuer(fx.layout, 'cluster', FIXTURE_PASSPHRASE);
  t.match(ok.cert.subject, /Cluster CA/, 'control: its own key opens');
});

t.test('a missing CA names the command that makes it; a damaged state file is refused', async (t) => {
  const empty = new PkiLayout(fx.dir + '/nothing-here');
  await t.rejects(loadIssuer(empty, 'root', 'x'), { code: 'NOT_FOUND', message: /no root CA in .*; run themis-pki init-root first/ });
  await writeFile(fx.layout.caState('operator'), '{"version":2}');
  await t.rejects(readState(fx.layout, 'operator'), { message: /is not a themis-pki state file/ });
  await writeFile(fx.layout.caState('operator'), '{oops');
  await t.rejects(readState(fx.layout, 'operator'), { message: /state.json: is not valid JSON/ });
});
