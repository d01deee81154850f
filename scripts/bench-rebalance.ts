// `npm run bench -- rebalance`: 3 shards with etcd (RF 1; `--replicas 1`: RF 2, shard-002 the
// replica), every key on shard-001 at first.
// Loads N keys, then moves a quarter of the token space to shard-002 under a fixed write load
// and reports the copy rate (against a plain scan-and-write of the same keys), the catch-up, the
// cutover's hold and the foreground throughput before and during the move; then M more moves
// (an eighth of the token space, back and forth) for the hold's p50/p99/max.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Etcd3 } from 'etcd3';
import { etcdKeys } from '../src/control/etcd-keys.js';
import { readSignedTopology } from '../src/control/topology-store.js';
import { TOKEN_MAX } from '../src/hash.js';
import { loadPrivateKey } from '../src/pki/keys.js';
import { parsePem } from '../src/pki/pem.js';
import { buildOperation, signOperation } from '../src/rebalance/operation.js';
import { parseTopology } from '../src/topology/document.js';
import { startLocalMesh, type MeshShard } from './local-mesh.js';
import { operatorFromFiles, withEtcd } from './mesh-control.js';

const SHARDS: MeshShard[] = [
  { id: 'shard-001', ip: '127.0.0.2' },
  { id: 'shard-002', ip: '127.0.0.3' },
  { id: 'shard-003', ip: '127.0.0.4' },
];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const percentile = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)]!;

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { keys: { type: 'string' }, moves: { type: 'string' }, replicas: { type: 'string' }, help: { type: 'boolean' } }, strict: true });
  if (values.help) return void console.log('usage: npm run bench -- rebalance [--keys 20000] [--moves 20] [--replicas 0|1]');
  const nKeys = Number(values.keys ?? 20000);
  const nMoves = Number(values.moves ?? 20);
  const replicas = Number(values.replicas ?? 0);
  if (replicas !== 0 && replicas !== 1) throw new Error('--replicas: 0 or 1');
  const dir = mkdtempSync(join(tmpdir(), 'themis-bench-rebalance-'));
  const mesh = await startLocalMesh({
    cluster: 'bench-rebalance', dir, shards: SHARDS, passphrase: 'bench-passphrase', kdfIterations: 1000, ranges: { owner: 'shard-001' }, logLevel: 'warn', etcd: { topology: true }, replicas,
    // THEMIS_BENCH_LOG_DIR=DIR keeps every process's log.
    ...(process.env.THEMIS_BENCH_LOG_DIR ? { logDir: process.env.THEMIS_BENCH_LOG_DIR } : {}),
  });
  const blob = JSON.stringify({ name: 'benchmark item', price: 1234, note: 'x'.repeat(150) });
  const body = JSON.stringify({ blob });
  const admin = operatorFromFiles(mesh.pki.operators.admin, mesh.pki.rootCert);
  const key = (await loadPrivateKey(admin.key, undefined, 'admin')).privateKey;
  const chain = parsePem(admin.chain, 'admin').map((b) => new Uint8Array(b.der));
  const app = (i: number) => mesh.nodes[i]!.sidecar.appUrl;
  try {
    await withEtcd(mesh.etcd!.endpoint, admin, async (etcd) => {
      // Load N keys, 32 at a time.
      const t0 = performance.now();
      let next = 0;
      await Promise.all(Array.from({ length: 32 }, async () => {
        while (next < nKeys) {
          next++;
          const r = await fetch(`${app(0)}/entities/document.bench.items:${randomUUID()}`, { method: 'PUT', body });
          await r.arrayBuffer();
        }
      }));
      const loadS = (performance.now() - t0) / 1000;
      console.log(`themis-mesh rebalance benchmark (RF ${replicas + 1}): ${nKeys} keys of ${Buffer.byteLength(blob)}-byte blobs loaded on shard-001 in ${loadS.toFixed(1)} s (${(nKeys / loadS).toFixed(0)} writes/s at c32; that is the plain write rate a copy competes with)`);

      // Foreground load: c4 writes through shard-003, each one's start and latency kept.
      let stop = false;
      const done: number[] = [];
      const writes: { at: number; ms: number }[] = [];
      let failed = 0;
      const failures = new Map<string, number>();
      const lanes = Array.from({ length: 4 }, async () => {
        while (!stop) {
          const at = performance.now();
          const r = await fetch(`${app(2)}/entities/document.bench.items:${randomUUID()}`, { method: 'PUT', body, signal: AbortSignal.timeout(10_000) }).catch(() => undefined);
          const text = r ? await r.text() : '';
          if (r?.status === 201) {
            done.push(performance.now());
            writes.push({ at, ms: performance.now() - at });
          } else {
            failed++;
            const code = r ? `${r.status} ${(/"code":"([A-Z_]+)"/.exec(text)?.[1]) ?? ''}`.trim() : 'no answer';
            failures.set(code, (failures.get(code) ?? 0) + 1);
          }
        }
      });
      const rate = (from: number, to: number) => done.filter((x) => x >= from && x < to).length / ((to - from) / 1000);
      const latency = (from: number, to: number) => {
        const ms = writes.filter((w) => w.at >= from && w.at < to).map((w) => w.ms);
        return ms.length ? `p50 ${percentile(ms, 50).toFixed(1)} ms, p99 ${percentile(ms, 99).toFixed(1)} ms, max ${Math.max(...ms).toFixed(0)} ms` : 'no writes';
      };
      await sleep(3000);
      const beforeFrom = performance.now() - 3000;
      const before = rate(beforeFrom, performance.now());

      const move = async (from: string, to: string, start: bigint, end: bigint) => {
        const stored = await readSignedTopology(etcd, etcdKeys('bench-rebalance').topology);
        const base = parseTopology(stored!.signed!.document);
        const op = buildOperation(base, [{ from, to, start, end }]);
        const signed = await signOperation(op, chain, key);
        const started = performance.now();
        await etcd.put(etcdKeys('bench-rebalance').rebalance(op.id)).value(JSON.stringify(signed));
        let catchingUpAt = 0;
        let maxLag = 0;
        let progress: Record<string, unknown> | undefined; // the target's last report with its sources
        for (;;) {
          await sleep(50);
          const s = await status(etcd, op.id, from, to);
          if (s.target?.sources) progress = s.target;
          const lag = (s.target?.sources as Record<string, { lag_changes?: number | null }> | undefined)?.[from]?.lag_changes;
          if (s.target?.phase === 'catching-up' && typeof lag === 'number') maxLag = Math.max(maxLag, lag);
          if (!catchingUpAt && (s.target?.phase === 'catching-up' || s.target?.phase === 'done')) catchingUpAt = performance.now();
          if (s.source?.phase === 'done' || s.source?.phase === 'cleaned') return { op, started, catchingUpAt: catchingUpAt || performance.now(), doneAt: performance.now(), source: s.source, target: progress, maxLag };
          if (['failed', 'stale', 'unsupported'].includes(String(s.source?.phase))) throw new Error(`move failed: ${JSON.stringify(s.source)}`);
          if (performance.now() - started > 120_000) throw new Error(`move did not finish within 2 minutes; source: ${JSON.stringify(s.source)}; target: ${JSON.stringify(s.target)}`);
        }
      };

      const quarter = (TOKEN_MAX + 1n) / 4n;
      const first = await move('shard-001', 'shard-002', 0n, quarter - 1n);
      const during = rate(first.started, first.doneAt);
      await sleep(3000);
      const afterFrom = performance.now() - 3000;
      const copied = ((first.target?.sources as Record<string, { keys_copied?: number }> | undefined)?.['shard-001']?.keys_copied) ?? 0;
      const copyS = (first.catchingUpAt - first.started) / 1000;
      console.log(`move of a quarter of the tokens (about ${Math.round(nKeys / 4)} keys) under a c4 write load through shard-003:`);
      console.log(`  copy (until the target reported catching up, polled every 50 ms; it reports once a second): ${copied} keys in ${copyS.toFixed(2)} s = ${(copied / copyS).toFixed(0)} keys/s, ${((copied * Buffer.byteLength(body)) / copyS / 1e6).toFixed(2)} MB/s (plain writes at c32: ${(nKeys / loadS).toFixed(0)} keys/s)`);
      console.log(`  catch-up and cutover: ${((first.doneAt - first.catchingUpAt) / 1000).toFixed(2)} s; catch-up lag at most ${first.maxLag} changes (as the target reported it, once a second); writes held ${String(first.source?.pause_ms)} ms; ${String(first.source?.keys_verified)} keys verified`);
      console.log(`  foreground writes: ${before.toFixed(0)}/s before, ${during.toFixed(0)}/s during the move (${((during / before) * 100).toFixed(0)} %), ${rate(afterFrom, performance.now()).toFixed(0)}/s after`);
      console.log(`  foreground latency: before ${latency(beforeFrom, first.started)}; during ${latency(first.started, first.doneAt)}; after ${latency(afterFrom, performance.now())}`);

      const pauses: number[] = [];
      const holds: Record<string, number>[] = [];
      const eighth = (TOKEN_MAX + 1n) / 8n;
      for (let i = 0; i < nMoves; i++) {
        const [from, to] = i % 2 ? ['shard-002', 'shard-001'] : ['shard-001', 'shard-002'];
        const m = await move(from, to, quarter, quarter + eighth - 1n);
        pauses.push(Number(m.source?.pause_ms));
        if (m.source?.hold) holds.push(m.source.hold as Record<string, number>);
      }
      stop = true;
      await Promise.all(lanes);
      console.log(`foreground writes that failed during the whole run: ${failed}${failed ? ` (${[...failures].map(([c, n]) => `${c}: ${n}`).join(', ')})` : ''}`);
      if (holds.length) {
        const parts = Object.keys(holds[0]!).map((k) => `${k.replace(/_ms$/, '')} p50 ${percentile(holds.map((x) => x[k] ?? 0), 50)} / max ${Math.max(...holds.map((x) => x[k] ?? 0))}`);
        console.log(`the hold, part by part (ms): ${parts.join('; ')}`);
      }
      if (pauses.length) console.log(`cutover hold over ${pauses.length} moves of an eighth of the tokens (about ${Math.round(nKeys / 8)} keys each): p50 ${percentile(pauses, 50)} ms, p99 ${percentile(pauses, 99)} ms, max ${Math.max(...pauses)} ms`);
    });
  } finally {
    await mesh.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function status(etcd: Etcd3, opId: string, from: string, to: string): Promise<{ source?: Record<string, unknown>; target?: Record<string, unknown> }> {
  const keys = etcdKeys('bench-rebalance');
  const read = async (shard: string) => {
    const v = await etcd.get(keys.rebalanceStatus(opId, shard)).string();
    return v ? (JSON.parse(v) as Record<string, unknown>) : undefined;
  };
  return { source: await read(from), target: await read(to) };
}
