// Failover time over N trials, for `npm run bench -- replication`: a 3-shard mesh with etcd, every
// key on all three (RF 3, ack majority), 1 s failover leases. Each trial kills the acting
// primary — its storage node or its sidecar (kill -9), alternating — and measures the time from
// the kill to the first write acknowledged by the new primary: a probe sends a write (a fresh key)
// every 25 ms through a surviving sidecar, not waiting for earlier ones. The victim is then
// restarted and rejoins as a follower before the next trial.
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { startLocalMesh, type LocalMesh, type MeshShard } from './local-mesh.js';

const SHARDS: MeshShard[] = [
  { id: 'shard-001', ip: '127.0.0.2' },
  { id: 'shard-002', ip: '127.0.0.3' },
  { id: 'shard-003', ip: '127.0.0.4' },
];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const body = JSON.stringify({ blob: JSON.stringify({ probe: true }) });

async function put(appUrl: string, key: string): Promise<{ status: number; shard: string | null }> {
  try {
    const r = await fetch(`${appUrl}/entities/document.bench.failover:${key}`, { method: 'PUT', body, signal: AbortSignal.timeout(8000) });
    await r.arrayBuffer();
    return { status: r.status, shard: r.headers.get('x-themis-shard') };
  } catch {
    return { status: 0, shard: null };
  }
}

/** The acting primary, as the answer to an acknowledged write through `entry` names it. */
async function actingVia(mesh: LocalMesh, entry: number): Promise<string> {
  for (let i = 0; i < 400; i++) {
    const r = await put(mesh.nodes[entry]!.sidecar.appUrl, randomUUID());
    if (r.status === 201 && r.shard) return r.shard;
    await sleep(50);
  }
  throw new Error('no write is acknowledged');
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

export async function failoverTrials(dir: string, trials: number): Promise<void> {
  const mesh = await startLocalMesh({
    cluster: 'bench-failover', dir: join(dir, 'failover'), shards: SHARDS, passphrase: 'bench-passphrase', kdfIterations: 1000,
    ranges: { owner: 'shard-001' }, replicas: 2, logLevel: 'warn', etcd: { topology: true },
    sidecarConfig: { replication: { leaseTtlSeconds: 1, ackTimeoutMs: 1500, longPollMs: 300 }, timeouts: { connectMs: 1000, requestMs: 5000 }, backoff: { initialMs: 50, maxMs: 500 } },
  });
  const ids = SHARDS.map((s) => s.id);
  const times: Record<string, number[]> = { 'storage node': [], sidecar: [] };
  try {
    console.log(`\nfailover: ${trials} trials, RF 3, ack majority, 1 s leases (etcd heartbeat 50 ms, election 500 ms); kill -9 of the acting primary's storage node or sidecar, alternating`);
    let acting = await actingVia(mesh, 2);
    for (let trial = 0; trial < trials; trial++) {
      const victim = ids.indexOf(acting);
      const entry = (victim + 1) % 3;
      const kind = trial % 2 ? 'sidecar' : 'storage node';
      const node = mesh.nodes[victim]!;
      const t0 = performance.now();
      await (kind === 'sidecar' ? node.sidecar.kill('SIGKILL') : node.storage.kill('SIGKILL'));
      let firstNew = 0;
      let failed = 0;
      for (let i = 0; !firstNew; i++) {
        if (performance.now() - t0 > 20_000) throw new Error(`trial ${trial + 1}: no write acknowledged by a new primary within 20 s`);
        void put(mesh.nodes[i % 2 ? entry : (victim + 2) % 3]!.sidecar.appUrl, randomUUID()).then((r) => {
          if (r.status === 201 && r.shard && r.shard !== acting && !firstNew) firstNew = performance.now();
          else if (r.status !== 201) failed++;
        });
        await sleep(25);
      }
      const ms = firstNew - t0;
      times[kind]!.push(ms);
      await (kind === 'sidecar' ? node.sidecar.start() : node.storage.start());
      acting = await actingVia(mesh, entry);
      // Let the returning copy finish its repair copy: the next election needs its position.
      await sleep(2500);
      console.log(`  trial ${String(trial + 1).padStart(2)}: kill -9 ${kind.padEnd(12)} of ${ids[victim]} → ${acting} in ${ms.toFixed(0).padStart(5)} ms (${failed} probe writes failed meanwhile)`);
    }
    const all = [...times['storage node']!, ...times.sidecar!];
    for (const [kind, xs] of [...Object.entries(times), ['all', all] as const]) {
      if (!xs.length) continue;
      console.log(`  ${kind.padEnd(12)} n=${String(xs.length).padStart(2)}  p50 ${percentile(xs, 50).toFixed(0).padStart(5)} ms  p99 ${percentile(xs, 99).toFixed(0).padStart(5)} ms  max ${Math.max(...xs).toFixed(0).padStart(5)} ms`);
    }
  } finally {
    await mesh.close();
  }
}
