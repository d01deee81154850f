// `npm run bench -- replication`: the mesh PUT workload (wrk, ~200-byte entity, c1 and c32) at RF 1,
// 2 and 3 in one run (a mesh each, measured back to back): 3 shards, shard-001 owns every key, ack majority.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureSystemDeps } from './ensure-system-deps.js';
import { startLocalMesh, type LocalMesh, type MeshShard } from './local-mesh.js';
import { median, wrk, type WrkResult } from './bench-measure.js';
import { failoverTrials } from './bench-failover.js';

const USAGE = `usage: npm run bench -- replication [--duration S] [--runs N] [--conns 1,32] [--rf 1,2,3] [--failover-trials N]
  every key belongs to shard-001; requests enter through shard-003's sidecar, so each crosses the
  mesh; RF R puts replicas on the next R-1 shards (shard-002, then shard-003); ack: majority`;

const SHARDS: MeshShard[] = [
  { id: 'shard-001', ip: '127.0.0.2' },
  { id: 'shard-002', ip: '127.0.0.3' },
  { id: 'shard-003', ip: '127.0.0.4' },
];

/** PUTs until one is acknowledged: the replicas' followers start with the topology. */
async function warmUp(url: string, body: string): Promise<void> {
  let status = 0;
  for (let i = 0; i < 200 && status !== 201 && status !== 200; i++) {
    status = (await fetch(url, { method: 'PUT', body })).status;
    if (status !== 201 && status !== 200) await new Promise((r) => setTimeout(r, 50));
  }
  if (status !== 201 && status !== 200) throw new Error(`writes through ${url} are not acknowledged (${status})`);
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { duration: { type: 'string' }, runs: { type: 'string' }, conns: { type: 'string' }, rf: { type: 'string' }, 'failover-trials': { type: 'string' }, help: { type: 'boolean' } }, strict: true });
  if (values.help) return void console.log(USAGE);
  const secs = Number(values.duration ?? 5);
  const runs = Number(values.runs ?? 3);
  const connsList = (values.conns ?? '1,32').split(',').map(Number);
  const rfs = (values.rf ?? '1,2,3').split(',').map(Number);
  const trials = Number(values['failover-trials'] ?? 20);
  if (!Number.isInteger(trials) || trials < 0) throw new Error(`--failover-trials takes a whole number, got ${values['failover-trials']}`);
  for (const rf of rfs) if (![1, 2, 3].includes(rf)) throw new Error(`--rf takes 1, 2 or 3 (3 shards), got ${rf}`);
  ensureSystemDeps({ wrk: 'wrk' });
  const dir = mkdtempSync(join(tmpdir(), 'themis-bench-rf-'));
  const key = '/entities/document.bench.items:2f1c3f0e-7d2b-4c1a-9a8e-5b6d7c8e9f00';
  const blob = JSON.stringify({ name: 'benchmark item', price: 1234, tags: ['a', 'b', 'c'], note: 'x'.repeat(110) });
  const body = JSON.stringify({ blob });
  const putLua = join(dir, 'put.lua');
  writeFileSync(putLua, `wrk.method = "PUT"\nwrk.body = ${JSON.stringify(body)}\nwrk.headers["Content-Type"] = "application/json"\n`);
  const rows: Record<string, WrkResult> = {};
  const meshes: LocalMesh[] = [];
  try {
    // One mesh per RF, all up at once, so every run measures each RF back to back.
    for (const rf of rfs) {
      const mesh = await startLocalMesh({
        cluster: 'bench', dir: join(dir, `rf${rf}`), shards: SHARDS, pki: meshes[0]?.pki, passphrase: 'bench-passphrase', kdfIterations: 1000,
        ranges: { owner: 'shard-001' }, replicas: rf - 1, logLevel: 'warn',
      });
      meshes.push(mesh);
      await warmUp(mesh.nodes[2]!.sidecar.appUrl + key, body);
    }
    const url = (i: number) => meshes[i]!.nodes[2]!.sidecar.appUrl + key;
    console.log(`themis-mesh replication benchmark: PUT of a ${Buffer.byteLength(blob)}-byte blob through shard-003's sidecar to shard-001 (owner),`);
    console.log(`wrk -t1, ${secs} s per run, median of ${runs} runs (every RF once per run, back to back, order reversed every other run),`);
    console.log(`ack majority, storage nodes with fsync; ${availableParallelism()} CPUs`);
    console.log('RF  replicas              conns    req/s    p50 ms   p99 ms');
    for (const conns of connsList) {
      for (const [i] of rfs.entries()) wrk(url(i), conns, 2, putLua); // warm-up
      const results: WrkResult[][] = rfs.map(() => []);
      for (let run = 0; run < runs; run++) {
        const order = [...rfs.keys()];
        for (const i of run % 2 ? order.reverse() : order) results[i]!.push(wrk(url(i), conns, secs, putLua));
      }
      for (const [i, rf] of rfs.entries()) {
        const med = (k: keyof WrkResult) => median(results[i]!.map((r) => r[k]));
        const m = { rps: med('rps'), p50: med('p50'), p99: med('p99'), requests: 0 };
        rows[`${rf} ${conns}`] = m;
        const replicas = meshes[i]!.topology.ranges[0]!.replicas.join(',') || '-';
        console.log(`${String(rf).padEnd(3)} ${replicas.padEnd(21)} ${String(conns).padStart(5)} ${m.rps.toFixed(0).padStart(8)} ${m.p50.toFixed(3).padStart(9)} ${m.p99.toFixed(3).padStart(8)}`);
      }
    }
    if (rfs.includes(1)) {
      console.log('\nagainst RF 1:');
      for (const rf of rfs.filter((r) => r !== 1)) {
        for (const conns of connsList) {
          const [b, m] = [rows[`1 ${conns}`]!, rows[`${rf} ${conns}`]!];
          console.log(`  RF ${rf} c${conns}: throughput ${(m.rps / b.rps).toFixed(2)}×, p50 +${(m.p50 - b.p50).toFixed(3)} ms (${(m.p50 / b.p50).toFixed(1)}×), p99 ${(m.p99 / b.p99).toFixed(2)}×`);
        }
      }
    }
    for (const m of meshes.splice(0)) await m.close();
    if (trials > 0) await failoverTrials(dir, trials);
  } finally {
    for (const m of meshes) await m.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
