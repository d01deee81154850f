// Failover with `workers: 2` on every sidecar (docs/sidecar.md "Workers"): the workers route and
// fence by their control process's failover (proxy/failover/failover-mirror.ts). The acting
// primary's control process is stopped (SIGSTOP) past its lease while its workers keep running
// and keep taking requests: they must stop acknowledging writes for the group once the lease is
// no longer certainly alive — a replica takes over — and answer their clients retryably. After
// SIGCONT every acknowledged write is on every copy: none lost, reverted or invented.
import t from 'tap';
import { FAILOVER_MESH } from '../support/mesh.js';
import { failoverHarness } from '../support/failover-trial.js';

const h = failoverHarness({ ...FAILOVER_MESH, sidecarConfig: { ...FAILOVER_MESH.sidecarConfig, workers: 2 } });

t.test('SIGSTOP of the primary\'s control process past its lease: its workers acknowledge nothing it lost', async (t) => {
  await h.trial(t, {
    name: 'SIGSTOP control process 2.5 s (workers running)',
    viaVictim: true,
    inject: async (v) => {
      h.mesh.nodes[v]!.sidecar!.child.kill('SIGSTOP');
    },
    recover: async (v) => {
      await h.sleep(Math.max(0, 2500 - 700));
      h.mesh.nodes[v]!.sidecar!.child.kill('SIGCONT');
    },
  });
});
