// kill -9 during a rebalance operation (3 shards, RF 1): of the target's sidecar, the source's
// sidecar and the operator's tool (`--wait`) while the target copies and catches up, and of the
// source's sidecar at the cutover and between the cutover and its cleanup: each time the
// operation resumes and cuts over, and every acknowledged write reads back afterwards.
// `npm test` runs four of the seven trials (the target's and the source's sidecar at each phase,
// and etcd); `npm run bench -- faults` runs all seven (THEMIS_FAULT_TRIALS=all), as many rounds
// as asked: each trial is a few kill-and-restart rounds of real processes, too long for all of
// them in every test run.
import t, { type Test } from 'tap';
import { mesh, setupFaults, sleep, statusOf, throughFault, until } from '../support/rebalance-faults.js';

t.setTimeout(300_000); // several kill-and-restart rounds; tap's default is 120 s
setupFaults();
const ALL = process.env.THEMIS_FAULT_TRIALS === 'all';
/** A trial that only `npm run bench -- faults` runs: not defined at all otherwise (not a skip). */
const benchOnly = (name: string, fn: (t: Test) => Promise<void>) => {
  if (ALL) t.test(name, fn);
};

t.test('kill -9 of the target\'s sidecar while it catches up: it resumes from its checkpoint', async (t) => {
  await throughFault(t, 2, async () => {
    await mesh.stopSidecar(1, 'SIGKILL');
    await mesh.startSidecar(1);
  });
});

benchOnly('kill -9 of the source\'s sidecar while the target catches up: the operation resumes', async (t) => {
  await throughFault(t, 3, async () => {
    await mesh.stopSidecar(0, 'SIGKILL');
    await mesh.startSidecar(0);
  });
});

benchOnly('kill -9 of the operator\'s tool (--wait) while the target copies: nothing depends on it', async (t) => {
  await throughFault(t, 4, async () => undefined, { tool: true });
});

t.test('kill -9 of the source\'s sidecar at the cutover: it cuts over or resumes, and cleans up', async (t) => {
  await throughFault(t, 5, async () => undefined, {
    atCutover: async () => {
      await sleep(150);
      await mesh.stopSidecar(0, 'SIGKILL');
      await mesh.startSidecar(0);
    },
  });
});

t.test('kill -9 of the source\'s sidecar after the cutover, before its cleanup: the restarted one cleans up', async (t) => {
  await throughFault(t, 6, async () => undefined, {
    atCutover: async (id) => {
      await until('the source cut over', async () => (await statusOf(id, 'shard-001')).phase === 'done');
      await mesh.stopSidecar(0, 'SIGKILL');
      t.equal((await statusOf(id, 'shard-001')).phase, 'done', 'killed between the cutover and the cleanup');
      await mesh.startSidecar(0);
    },
  });
});

benchOnly('kill -9 of the target\'s storage node while it catches up: restarted, the copy goes on', async (t) => {
  await throughFault(t, 7, async () => {
    await mesh.nodes[1]!.storage.kill();
    await sleep(500);
    await mesh.nodes[1]!.storage.start();
  });
});

t.test('etcd stopped and started again while the target catches up: the operation goes on', async (t) => {
  await throughFault(t, 1, async () => {
    await mesh.restartEtcd();
  });
});
