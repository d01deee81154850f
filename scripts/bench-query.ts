// `npm run bench -- query [--entities 100000] [--runs 30]`: an ordered, limited query over
// three shards through a sidecar (scatter-gather) against the same query on one storage node
// holding all the entities. Prints p50/p90/max latency of each.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { randomUUID } from 'node:crypto';
import { HashRing } from '../src/ring/ring.js';
import { topologyFromRing } from '../src/topology/from-ring.js';
import { serializeTopology } from '../src/topology/document.js';
import { xxh64 } from '../src/hash.js';
import { mintDevPki } from '../src/pki/dev-pki.js';
import { MAIN, startListening, type Running } from './processes.js';
import { reservePorts } from './ports.js';

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
  const procs: Running<{ port?: number; app?: string }>[] = [];
  try {
    const ids = ['shard-001', 'shard-002', 'shard-003'];
    const ips = ['127.0.0.2', '127.0.0.3', '127.0.0.4'];
    const pki = await mintDevPki({ dir: join(dir, 'pki'), cluster: 'bench', shards: ids.map((id, i) => ({ id, ip: ips[i]! })), passphrase: 'bench-passphrase', kdfIterations: 1000 });
    const meshPorts = await reservePorts(ips.map((host) => ({ host })));
    const topology = topologyFromRing(new HashRing(ids), { cluster: 'bench', epoch: 1, shards: Object.fromEntries(ids.map((id, i) => [id, { endpoint: `${ips[i]}:${meshPorts[i]}` }])) });
    writeFileSync(join(dir, 'topology.json'), serializeTopology(topology));
    const env = { THEMIS_LOG_LEVEL: 'warn' };
    const storage: Record<string, string> = {};
    for (const name of [...ids, 'single']) {
      const p = await startListening<{ port: number }>(MAIN.storage, ['--data-dir', join(dir, `data-${name}`), '--port', '0'], name, { env });
      procs.push(p);
      storage[name] = `http://127.0.0.1:${p.ready.port}`;
    }
    let app = '';
    for (const [i, id] of ids.entries()) {
      const l = pki.shards[id]!;
      const cfg = join(dir, `${id}.json`);
      writeFileSync(cfg, JSON.stringify({
        shardId: id, cluster: 'bench', app: { port: 0 }, mesh: { host: ips[i], port: meshPorts[i] }, admin: { port: 0 },
        audit: { file: join(dir, `audit-${id}.log`) }, storage: { url: storage[id] },
        tls: { cert: l.chainPath, key: l.keyPath, ca: pki.rootCert, crls: pki.crls }, topology: { file: join(dir, 'topology.json') },
      }));
      const p = await startListening<{ app: string }>(MAIN.sidecar, ['--config', cfg], id, { env });
      procs.push(p);
      if (i === 0) app = `http://${p.ready.app}`;
    }
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
    await Promise.all(procs.map((p) => p.kill('SIGTERM')));
    rmSync(dir, { recursive: true, force: true });
  }
}
