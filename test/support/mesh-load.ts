// A write and read loop through every app port of a mesh, for tests that change something
// under traffic (renewal, root rotation): writes are recorded in a History (history.ts), reads
// must answer 200 or 404. stop() ends both loops and returns what happened. Each lane waits
// `paceMs` between requests (default 40): these tests need traffic across a change that takes a
// minute or more, not throughput, and a loop flat out took a core for as long.
import type { Test } from 'tap';
import type { MeshNode } from './mesh.js';
import { History, writeLoop, type LoopStats } from './history.js';
import { call } from './storage-process.js';

export interface MeshLoad {
  history: History;
  stop(): Promise<{ stats: LoopStats; reads: number; readFailures: string[] }>;
}

export function startMeshLoad(nodes: readonly MeshNode[], keys: readonly string[], concurrency = 4, paceMs = 40): MeshLoad {
  const history = new History();
  let stopLoops!: () => void;
  const until = new Promise<void>((r) => (stopLoops = r));
  let stopped = false;
  void until.then(() => (stopped = true));
  let w = 0;
  const loop = writeLoop(history, [...keys], async (key, blob) => {
    const r = await call(nodes[w++ % nodes.length]!.appUrl, 'PUT', key, { blob });
    return { status: r.status, code: (r.body as { code?: string } | undefined)?.code };
  }, { until, concurrency, paceMs });
  const readFailures: string[] = [];
  let reads = 0;
  const reader = (async () => {
    for (let i = 0; !stopped; i++) {
      const r = await call(nodes[i % nodes.length]!.appUrl, 'GET', keys[i % keys.length]!);
      reads++;
      if (r.status !== 200 && r.status !== 404) readFailures.push(`${r.status} ${r.text.slice(0, 200)}`);
      await new Promise((r) => setTimeout(r, paceMs));
    }
  })();
  return {
    history,
    stop: async () => {
      stopLoops();
      const stats = await loop;
      await reader;
      return { stats, reads, readFailures };
    },
  };
}

/**
 * What a test under load asserts once the loops stopped: no write and no read failed, more than
 * `minAcked` writes acknowledged `during` the change, and every acknowledged write read back
 * through `via`'s app port (the history checker).
 */
export async function checkLoad(t: Test, load: MeshLoad, result: Awaited<ReturnType<MeshLoad['stop']>>, via: MeshNode, minAcked: number, during: string): Promise<void> {
  const { stats, reads, readFailures } = result;
  t.equal(stats.failed, 0, `no write failed (${stats.acknowledged} acknowledged): ${JSON.stringify(stats.failures)}`);
  t.same(readFailures, [], `no read failed (${reads} reads)`);
  t.ok(stats.acknowledged > minAcked, `${stats.acknowledged} writes acknowledged ${during}`);
  const verdict = await load.history.check(async (key) => {
    const r = await call(via.appUrl, 'GET', key);
    return r.status === 200 ? (r.body as { blob: string }).blob : undefined;
  });
  t.same({ lost: verdict.lost, reverted: verdict.reverted, invented: verdict.invented }, { lost: [], reverted: [], invented: [] }, `${verdict.checked} keys read back`);
}
