// A worker's copies of what its control process takes from etcd: the topology applied only when
// newer (listeners told once, with the signer), a refresh asked of the control process; CRLs
// parsed from DER and replaced as a set.
import t from 'tap';
import { MirroredTopology } from '../../../../proxy/cluster/mirrored-topology.js';
import { MirroredCrls } from '../../../../proxy/cluster/mirrored-crls.js';
import { serializeTopology } from '../../../../src/topology/document.js';
import { Topology } from '../../../../src/topology/topology.js';
import { TOKEN_MAX } from '../../../../src/hash.js';
import { createPkiFixture } from '../../../support/pki-fixture.js';
import { parseCrls } from '../../../../src/pki/crl.js';

const topo = (epoch: number, owner = 'shard-001') =>
  new Topology({ cluster: 'c', epoch, vnodes: 0, shards: { 'shard-001': {}, 'shard-002': {} }, ranges: [{ start: 0n, end: TOKEN_MAX, owner, replicas: [] }] });
const doc = (epoch: number, owner?: string) => ({ document: serializeTopology(topo(epoch, owner)), epoch, signer: { subject: 'CN=op', serial: `0${epoch}` } as never });

t.test('topology: newer epochs applied atomically, older and equal ones ignored; refresh asks the control process', async (t) => {
  let asked = 0;
  const m = new MirroredTopology(doc(2), async () => void asked++);
  t.equal(m.current().epoch, 2);
  t.equal(m.current().ownerOfKey('document.a.b:0b6c2f0e-3d6e-4c57-9a51-9d7f1c1f7a11'), 'shard-001');
  const changes: [number, number, unknown][] = [];
  m.onChange((next, prev, signer) => changes.push([next.epoch, prev.epoch, signer]));
  m.apply(doc(1, 'shard-002'));
  m.apply(doc(2, 'shard-002'));
  t.equal(m.current().ownerOfKey('document.a.b:0b6c2f0e-3d6e-4c57-9a51-9d7f1c1f7a11'), 'shard-001', 'an older or equal epoch changes nothing');
  t.same(changes, []);
  m.apply(doc(3, 'shard-002'));
  t.equal(m.current().epoch, 3);
  t.equal(m.current().ownerOfKey('document.a.b:0b6c2f0e-3d6e-4c57-9a51-9d7f1c1f7a11'), 'shard-002', 'routes by the new one');
  t.same(changes, [[3, 2, { subject: 'CN=op', serial: '03' }]], 'listeners told once, with the signer');
  t.same(m.signer(), { subject: 'CN=op', serial: '03' });
  await m.refresh();
  t.equal(asked, 1);
  await t.resolves(new MirroredTopology(doc(1), () => Promise.reject(new Error('gone'))).refresh(), 'a failed ask does not reject (the request path goes on)');
});

t.test('CRLs: parsed from DER, replaced as a set; the same set again is no change', async (t) => {
  const pki = await createPkiFixture({ shards: 1 });
  t.teardown(() => pki.cleanup());
  const ders = pki.crls().flatMap((pem) => parseCrls(pem, 'fixture')).map((c) => c.der.toString('base64'));
  const m = new MirroredCrls(ders.slice(0, 1));
  t.equal(m.crls().length, 1);
  t.equal(m.set(ders.slice(0, 1)), false, 'the set held: nothing to apply');
  t.equal(m.set(ders), true);
  t.same(m.crls().map((c) => c.der.toString('base64')), ders, 'the whole new set');
  t.throws(() => m.set(['bm90IGEgQ1JM']), 'a value that is no CRL is refused');
  t.same(m.crls().map((c) => c.der.toString('base64')), ders, 'and the set in force stays');
});
