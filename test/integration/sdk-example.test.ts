// docs/examples/order-service.mjs, the SDK example the README shows, run as a user would (its
// --demo mode) against a real 3-shard mesh.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../support/cli.js';
import { startMesh } from '../support/mesh.js';

t.test('the order service example places, reads and lists orders', async (t) => {
  const mesh = await startMesh({ shards: 3 });
  t.teardown(() => mesh.close());
  const r = spawnSync(process.execPath, [join(ROOT, 'docs/examples/order-service.mjs'), '--demo'], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 30_000,
    env: { ...process.env, THEMIS_URL: mesh.nodes[1]!.appUrl },
  });
  t.equal(r.status, 0, r.stderr);
  t.same(JSON.parse(r.stdout), { placed: 3, first: 12, totals: [99, 40, 12], missing: 'ENTITY_NOT_FOUND' });
});
