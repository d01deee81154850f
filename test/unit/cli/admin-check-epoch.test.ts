// themis-admin check's epoch line: a shard serving an older epoch than the published one fails
// (it refused the topology), unless its last report was written before the topology was
// published (etcd revisions): then it only has not reported yet, a warning to run again.
import t from 'tap';
import { shardChecks } from '../../../src/cli/admin-check.js';
import { etcdKeys } from '../../../src/control/etcd.js';
import type { PeerVerifier } from '../../../src/pki/verify.js';

const k = etcdKeys('cluster-prod');
const now = Date.parse('2026-12-06T12:00:00Z');
const all = {
  [k.shardCertificate('shard-002')]: JSON.stringify({ cert_pem: 'not checked here' }),
  [k.shardAlive('shard-002')]: JSON.stringify({ since: now }),
  [k.shardReplication('shard-002')]: JSON.stringify({ topology_epoch: 1, updated_at: new Date(now).toISOString() }),
};
const verifier = { verify: () => ({ ok: false, reason: 'revoked' }) } as unknown as PeerVerifier;
const epochLine = (revision: bigint, reportRevision: bigint) => shardChecks('shard-002', all, k, verifier, { epoch: 2, revision, reportRevision }, now, 60_000).find((c) => c.name === 'topology');

t.test('an older epoch reported after the publish is a refusal', async (t) => {
  const c = epochLine(10n, 11n);
  t.equal(c?.status, 'fail');
  t.match(c?.detail, /shard-002 serves epoch 1, the published one is 2/);
});

t.test('an older epoch reported before the publish is only not reported yet', async (t) => {
  const c = epochLine(10n, 9n);
  t.equal(c?.status, 'warn');
  t.match(c?.detail, /shard-002 last reported epoch 1, before epoch 2 was published/);
  t.match(c?.fix, /run the check again in a few seconds/);
});
