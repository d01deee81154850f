// themis-admin check's CRL rollback: a shard enforcing a higher CRL number than etcd holds for an
// issuer fails, naming both numbers and the publish to run; equal, lower, unknown issuers, and
// sidecars that report no CRLs pass or are skipped.
import t from 'tap';
import { crlRollbackCheck, type EtcdCrlNumbers } from '../../../src/cli/check-crl-rollback.js';

const CLIENT = 'CN=Themis Client CA,O=cluster-test';
const CLUSTER = 'CN=Themis Cluster CA,O=cluster-test';
const etcd: EtcdCrlNumbers = new Map([[CLIENT, { name: 'client', number: 6n }], [CLUSTER, { name: 'cluster', number: 3n }]]);

t.test('a shard ahead of etcd for one issuer fails with both numbers and the fix', async (t) => {
  const c = crlRollbackCheck('shard-001', { [CLIENT]: '7', [CLUSTER]: '3' }, etcd)!;
  t.equal(c.status, 'fail');
  t.equal(c.detail, `shard-001 enforces CRL number 7 of ${CLIENT}, newer than the 6 etcd holds (crl/client): etcd was restored from an older snapshot or rolled back; the sidecars refuse the older CRL (not_newer) and keep every revocation they have seen`);
  t.match(c.fix, /themis-admin crl publish --ca client --pki DIR/);
  t.notMatch(c.fix, /--ca cluster/, 'only the CA that is behind');
});

t.test('numbers compare as integers, not as text', async (t) => {
  t.equal(crlRollbackCheck('shard-001', { [CLIENT]: '10' }, new Map([[CLIENT, { name: 'client', number: 9n }]]))!.status, 'fail', '10 > 9');
  t.equal(crlRollbackCheck('shard-001', { [CLIENT]: '9' }, new Map([[CLIENT, { name: 'client', number: 10n }]]))!.status, 'ok', '9 < 10');
});

t.test('equal or lower numbers, issuers etcd holds nothing of, and malformed entries pass', async (t) => {
  t.equal(crlRollbackCheck('shard-001', { [CLIENT]: '6', [CLUSTER]: '2' }, etcd)!.status, 'ok');
  t.equal(crlRollbackCheck('shard-001', { 'CN=Themis Root CA': '99' }, etcd)!.status, 'ok', 'CRLs from files alone are not compared');
  t.equal(crlRollbackCheck('shard-001', { [CLIENT]: 'x7', [CLUSTER]: 12 }, etcd)!.status, 'ok');
  t.equal(crlRollbackCheck('shard-001', undefined, etcd), undefined, 'a sidecar that reports no CRLs is not judged');
  t.equal(crlRollbackCheck('shard-001', ['7'], etcd), undefined);
});
