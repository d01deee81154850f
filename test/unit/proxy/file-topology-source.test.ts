// A file-topology sidecar of one cluster never takes another cluster's topology: at start it is a
// config error naming topology.file (the sidecar exits 78); on a reload it is refused and the
// topology in force stays.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileTopologySource } from '../../../proxy/control/topology-source.js';
import { ConfigError } from '../../../src/config/validate.js';
import { serializeTopology } from '../../../src/topology/document.js';
import { Topology } from '../../../src/topology/topology.js';
import { TOKEN_MAX } from '../../../src/hash.js';
import { silentLogger } from '../../../src/log.js';

const dir = mkdtempSync(join(tmpdir(), 'themis-file-topo-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const doc = (cluster: string, epoch: number) =>
  serializeTopology(new Topology({ cluster, epoch, vnodes: 0, shards: { 'shard-001': {} }, ranges: [{ start: 0n, end: TOKEN_MAX, owner: 'shard-001', replicas: [] }] }));

t.test('at start: another cluster\'s file is a ConfigError naming topology.file', async (t) => {
  const file = join(dir, 'dev.json');
  writeFileSync(file, doc('cluster-dev', 1));
  let err: unknown;
  try {
    new FileTopologySource(file, silentLogger, 60_000, 'cluster-prod').close();
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof ConfigError, 'a ConfigError (exit 78)');
  t.equal((err as ConfigError).field, 'topology.file');
  t.match((err as Error).message, /topology of cluster "cluster-dev", but this sidecar is in cluster "cluster-prod"/);
  const same = new FileTopologySource(file, silentLogger, 60_000, 'cluster-dev');
  t.equal(same.current().cluster, 'cluster-dev', 'its own cluster\'s file loads');
  same.close();
});

t.test('on reload: a newer epoch of another cluster is refused, the current one stays', async (t) => {
  const file = join(dir, 'prod.json');
  writeFileSync(file, doc('cluster-prod', 1));
  const source = new FileTopologySource(file, silentLogger, 60_000, 'cluster-prod');
  t.teardown(() => source.close());
  const refused: string[] = [];
  source.onReject((reason) => refused.push(reason));
  writeFileSync(file, doc('cluster-dev', 9));
  await source.refresh();
  t.equal(source.current().epoch, 1);
  t.same(refused, ['a topology of cluster "cluster-dev", not "cluster-prod"']);
  writeFileSync(file, doc('cluster-prod', 2));
  await source.refresh();
  t.equal(source.current().epoch, 2, 'its own cluster\'s next epoch is applied');
});
