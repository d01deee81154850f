// `npm run bench -- query [--entities 100000] [--runs 30]`: an ordered, limited query over a 3-shard
// local mesh (scatter-gather) against one storage node holding all; p50/p90/max latency of each.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { randomUUID } from 'node:crypto';
import { xxh64 } from '../src/hash.js';
import { MAIN, startListening, type Running } from './processes.js';
import { startLocalMesh, type LocalMesh } from './local-mesh.js';

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;

async function post(url: string, body: unknown): Promise<unknown> {
  const r = await fetch(url, { method: 'POST', body: JSON.stringify(body) });
  if (r.status !== 200) throw new Error(`${url}: ${r.status} ${await r.text()}`);
  return r.json();
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { entities: { type: 'string' }, runs: { type: 'string' } }, strict: true });
  const total = Number(values.entities ?? 100_000);
  const runs = Number(values.runs ?? 30);
  const dir = mkdtempSync(join(tmpdir(), 'themis-bench-q-'));
  let mesh: LocalMesh | undefined;
  let single: Running<{ port: number }> | undefined;
  try {
    const env = { THEMIS_LOG_LEVEL: 'warn' };
    mesh = await startLocalMesh({ dir: join(dir, 'mesh'), cluster: 'bench', shards: 3, ranges: 'ring', passphrase: 'bench-passphrase', kdfIterations: 1000, logLevel: 'warn' });
    single = await startListening<{ port: number }>(MAIN.storage, ['--data-dir', join(dir, 'data-single'), '--port', '0'], 'single', { env });
    const storage: Record<string, string> = { single: `http://127.0.0.1:${single.ready.port}` };
    for (const n of mesh.nodes) storage[n.id] = n.storage.url;
    const app = mesh.nodes[0]!.sidecar.appUrl;
    const topology = mesh.topology;
    const table = 'document.bench.items';
    process.stdout.write(`loading ${total} entities into 3 shards and into one node … `);
    const started = Date.now();
    let next = 0;
    const load = async () => {
      while (next < total) {
        const i = next++;
        const uuid = randomUUID();
        const body = JSON.stringify({ blob: JSON.stringify({ name: `item-${i}`, price: (i * 7919) % 100_003, city: `c${i % 50}` }) });
        const owner = topology.ownerOf(xxh64(uuid));
        await Promise.all([storage[owner]!, storage.single!].map((u) => fetch(`${u}/entities/${table}:${uuid}`, { method: 'PUT', body }).then((r) => r.arrayBuffer())));
      }
    };
    await Promise.all(Array.from({ length: 64 }, load));
    console.log(`${((Date.now() - started) / 1000).toFixed(0)} s`);
    const query = { table, order_by: { column: 'price', desc: true, limit: 100 }, return: 'keys' };
    const measure = async (url: string) => {
      for (let i = 0; i < 3; i++) await post(url, query); // warm-up
      const ms: number[] = [];
      for (let i = 0; i < runs; i++) {
        const t0 = performance.now();
        await post(url, query);
        ms.push(performance.now() - t0);
      }
      return ms;
    };
    const a = (await post(`${app}/query`, query)) as { keys: string[] };
    const b = (await post(`${storage.single}/query`, query)) as { keys: string[] };
    if (JSON.stringify(a.keys) !== JSON.stringify(b.keys)) throw new Error('the merged answer differs from the single node’s');
    const one = await measure(`${storage.single}/query`);
    const three = await measure(`${app}/query`);
    console.log(`query: ${JSON.stringify(query)}  (${total} entities, ${runs} runs after warm-up; answers identical)`);
    console.log('path                                   p50 ms    p90 ms    max ms');
    for (const [name, xs] of [['one storage node, all entities', one], ['sidecar → 3 shards (scatter-gather)', three]] as const) {
      console.log(`${name.padEnd(38)} ${pct(xs, 0.5).toFixed(1).padStart(7)}   ${pct(xs, 0.9).toFixed(1).padStart(7)}   ${Math.max(...xs).toFixed(1).padStart(7)}`);
    }
  } finally {
    await Promise.all([mesh?.close(), single?.kill('SIGTERM')]);
    rmSync(dir, { recursive: true, force: true });
  }
}
