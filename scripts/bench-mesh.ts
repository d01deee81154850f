// `npm run bench -- mesh`: the same bounded wrk workload (GET and PUT of a ~200-byte JSON
// entity, concurrency 1 and 32) straight at a storage node, and through app port → sidecar A
// → mTLS HTTP/2 mesh (signed, all checks on) → sidecar B → that storage node. Prints req/s,
// p50, p99 and CPU µs per request of each sidecar, medians of repeated runs, and the ratios.
// `--compare haproxy` adds the same workload through two HAProxy sidecars (mTLS HTTP/2
// between them) in front of the same storage node, `--compare floor` through two minimal
// Node proxies (bench-floor-proxy.ts), `--compare haproxy,floor` both; `--soak S` then holds
// GET c32 on our path for S seconds and samples the sidecars' RSS.
import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Topology } from '../src/topology/topology.js';
import { serializeTopology } from '../src/topology/document.js';
import { TOKEN_MAX } from '../src/hash.js';
import { mintDevPki } from '../src/pki/dev-pki.js';
import { ensureSystemDeps } from './ensure-system-deps.js';
import { MAIN, startListening, type Running } from './processes.js';
import { reservePorts } from './ports.js';
import { startHaproxyChain, type HaproxyChain } from './bench-haproxy.js';
import { startFloorChain } from './bench-floor.js';

interface Row extends WrkResult {
  cpuA: number;
  cpuB: number;
  mainA: number;
  mainB: number;
}

interface WrkResult {
  rps: number;
  p50: number;
  p99: number;
  requests: number;
}

const TICK_US = 1e6 / Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());

/** CPU ticks (utime + stime) of a whole process, or of its main thread only. */
function cpuTicks(pid: number, mainThread = false): number {
  const stat = readFileSync(mainThread ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(') ') + 2).split(' '); // the command name may contain ') '
  return Number(f[11]) + Number(f[12]);
}

function statusKb(pid: number, field: string): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

const rssMb = (pid: number) => statusKb(pid, 'VmRSS') / 1024;
/** RSS without file-backed pages (the node binary's, shared by every Node process on a host). */
const anonMb = (pid: number) => statusKb(pid, 'RssAnon') / 1024;

/** This machine's per-request crypto, in µs: ECDSA P-256 sign and verify of a canonical string. */
function cryptoCost(): { sign: number; verify: number } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const data = Buffer.from(`THEMIS-SIG-V1\nGET\n/entities/document.bench.items:${'0'.repeat(36)}\nshard-001\n1f\n1795696200882\n0011223344556677\n${'e'.repeat(64)}`);
  const sig = sign('sha256', data, privateKey);
  const time = (f: () => unknown, n = 2000) => {
    for (let i = 0; i < 200; i++) f();
    const t = process.cpuUsage();
    for (let i = 0; i < n; i++) f();
    const c = process.cpuUsage(t);
    return (c.user + c.system) / n;
  };
  return { sign: time(() => sign('sha256', data, privateKey)), verify: time(() => verify('sha256', data, publicKey, sig)) };
}

function ms(text: string): number {
  const m = /([\d.]+)(us|ms|s)/.exec(text);
  if (!m) return NaN;
  return Number(m[1]) * (m[2] === 'us' ? 0.001 : m[2] === 's' ? 1000 : 1);
}

function wrk(url: string, conns: number, secs: number, script?: string): WrkResult {
  const args = ['-t1', `-c${conns}`, `-d${secs}s`, '--latency', ...(script ? ['-s', script] : []), url];
  const r = spawnSync('wrk', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`wrk failed: ${r.stderr}`);
  const out = r.stdout;
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  if (non2xx) throw new Error(`wrk saw ${non2xx[1]} error answers from ${url}:\n${out}`);
  if (/Socket errors:/.test(out)) throw new Error(`wrk saw socket errors (connections refused, reset or timed out) at ${url}:\n${out}`);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]),
    // Anchored: "50%" also ends the Thread Stats line ("… 85.50%"), which once read as NaN.
    p50: ms(/^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? ''),
    p99: ms(/^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? ''),
    requests: Number(/(\d+) requests in/.exec(out)?.[1]),
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: {
      duration: { type: 'string' },
      runs: { type: 'string' },
      compare: { type: 'string' },
      profile: { type: 'string' },
      method: { type: 'string' },
      conns: { type: 'string' },
      path: { type: 'string' },
      soak: { type: 'string' },
    }, strict: true });
  const secs = Number(values.duration ?? 5);
  const runs = Number(values.runs ?? 3);
  const compare = new Set(values.compare ? values.compare.split(',') : []);
  for (const c of compare) if (c !== 'haproxy' && c !== 'floor') throw new Error(`--compare takes "haproxy", "floor" or both ("haproxy,floor"), got "${c}"`);
  const soak = Number(values.soak ?? 0);
  ensureSystemDeps({ wrk: 'wrk' });
  const dir = mkdtempSync(join(tmpdir(), 'themis-bench-'));
  const procs: Running<{ port?: number; app?: string }>[] = [];
  let haproxy: HaproxyChain | undefined;
  try {
    const pki = await mintDevPki({
      dir: join(dir, 'pki'),
      cluster: 'bench',
      shards: [{ id: 'shard-001', ip: '127.0.0.2' }, { id: 'shard-002', ip: '127.0.0.3' }],
      passphrase: 'bench-passphrase',
      kdfIterations: 1000,
    });
    const storage = async (name: string) => {
      const p = await startListening<{ port: number }>(MAIN.storage, ['--data-dir', join(dir, name), '--port', '0'], name, { env: { THEMIS_LOG_LEVEL: 'warn' } });
      procs.push(p);
      return `http://127.0.0.1:${p.ready.port}`;
    };
    const storageA = await storage('storage-a');
    const storageB = await storage('storage-b');
    const [meshPortB] = (await reservePorts([{ host: '127.0.0.3' }])) as [number];
    const topology = new Topology({
      cluster: 'bench',
      epoch: 1,
      vnodes: 0,
      shards: { 'shard-001': { endpoint: '127.0.0.2:7443' }, 'shard-002': { endpoint: `127.0.0.3:${meshPortB}` } },
      // Every key belongs to B, so every request through A crosses the mesh.
      ranges: [{ start: 0n, end: TOKEN_MAX, owner: 'shard-002', replicas: [] }],
    });
    writeFileSync(join(dir, 'topology.json'), serializeTopology(topology));
    const sidecar = async (id: string, ip: string, meshPort: number, storageUrl: string) => {
      const cfg = join(dir, `${id}.json`);
      const l = pki.shards[id]!;
      writeFileSync(cfg, JSON.stringify({
        shardId: id, cluster: 'bench', app: { port: 0 }, mesh: { host: ip, port: meshPort }, admin: { port: 0 },
        audit: { file: join(dir, `audit-${id}.log`) }, storage: { url: storageUrl },
        tls: { cert: l.chainPath, key: l.keyPath, ca: pki.rootCert, crls: pki.crls }, topology: { file: join(dir, 'topology.json') },
      }));
      const nodeArgs = values.profile ? ['--cpu-prof', '--cpu-prof-interval=100', `--cpu-prof-dir=${values.profile}`] : [];
      const p = await startListening<{ app: string; admin: string }>(MAIN.sidecar, ['--config', cfg], id, { env: { THEMIS_LOG_LEVEL: 'warn' }, nodeArgs });
      procs.push(p);
      return p;
    };
    const a = await sidecar('shard-001', '127.0.0.2', 0, storageA);
    const b = await sidecar('shard-002', '127.0.0.3', meshPortB, storageB);
    const key = '/entities/document.bench.items:2f1c3f0e-7d2b-4c1a-9a8e-5b6d7c8e9f00';
    const blob = JSON.stringify({ name: 'benchmark item', price: 1234, tags: ['a', 'b', 'c'], note: 'x'.repeat(110) });
    const body = JSON.stringify({ blob });
    await fetch(storageB + key, { method: 'PUT', body });
    const putLua = join(dir, 'put.lua');
    writeFileSync(putLua, `wrk.method = "PUT"\nwrk.body = ${JSON.stringify(body)}\nwrk.headers["Content-Type"] = "application/json"\n`);
    const direct = storageB;
    const mesh = `http://${a.ready.app}`;
    const pids: Record<string, [number, number] | undefined> = { direct: undefined, mesh: [a.child.pid!, b.child.pid!] };
    const urls: [string, string][] = [['direct', direct]];
    if (compare.has('floor')) {
      const [meshPort] = (await reservePorts([{ host: '127.0.0.5' }])) as [number];
      const floor = await startFloorChain({
        mesh: { host: '127.0.0.5', port: meshPort }, storageUrl: storageB,
        a: pki.shards['shard-001']!, b: pki.shards['shard-002']!, rootCert: pki.rootCert, crls: pki.crls,
      });
      procs.push(floor.a, floor.b);
      urls.push(['floor', floor.url]);
      pids.floor = [floor.a.child.pid!, floor.b.child.pid!];
    }
    urls.push(['mesh', mesh]);
    if (compare.has('haproxy')) {
      const [appPort, meshPort] = (await reservePorts([{ host: '127.0.0.1' }, { host: '127.0.0.4' }])) as [number, number];
      const sb = new URL(storageB);
      haproxy = await startHaproxyChain({
        dir, appPort, mesh: { host: '127.0.0.4', port: meshPort }, storage: { host: sb.hostname, port: Number(sb.port) },
        a: pki.shards['shard-001']!, b: pki.shards['shard-002']!, rootCert: pki.rootCert, crls: pki.crls,
      });
      urls.push(['haproxy', haproxy.url]);
      pids.haproxy = [haproxy.a.pid!, haproxy.b.pid!];
    }
    const c = cryptoCost();
    console.log(`themis-mesh benchmark: ${Buffer.byteLength(blob)}-byte blob, wrk -t1, ${secs} s per run, median of ${runs} runs`);
    console.log(`this machine: ECDSA P-256 sign ${c.sign.toFixed(0)} µs, verify ${c.verify.toFixed(0)} µs of CPU; ${availableParallelism()} CPUs`);
    console.log('CPU µs/req: whole process (its main thread alone in brackets; HAProxy runs several threads)');
    console.log('path    method conns    req/s    p50 ms   p99 ms   CPU µs/req A    CPU µs/req B');
    const rows: Record<string, Row> = {};
    const methods = (values.method ? [values.method] : ['GET', 'PUT']) as ('GET' | 'PUT')[];
    const connsList = values.conns ? [Number(values.conns)] : [1, 32];
    const paths = urls.filter(([name]) => !values.path || values.path === name);
    let rssMax = 0;
    for (const method of methods) {
      for (const conns of connsList) {
        for (const [name, url] of paths) {
          const script = method === 'PUT' ? putLua : undefined;
          wrk(url + key, conns, 2, script); // warm-up
          const results: Row[] = [];
          const pp = pids[name];
          // [A, B, A's main thread, B's main thread]
          const ticks = () => (pp ? [cpuTicks(pp[0]), cpuTicks(pp[1]), cpuTicks(pp[0], true), cpuTicks(pp[1], true)] : [0, 0, 0, 0]);
          for (let i = 0; i < runs; i++) {
            const before = ticks();
            const r = wrk(url + key, conns, secs, script);
            const after = ticks();
            if (name === 'mesh') rssMax = Math.max(rssMax, rssMb(a.child.pid!), rssMb(b.child.pid!));
            const [cpuA, cpuB, mainA, mainB] = after.map((x, j) => ((x - before[j]!) * TICK_US) / r.requests) as [number, number, number, number];
            results.push({ ...r, cpuA, cpuB, mainA, mainB });
          }
          const med = (k: keyof Row) => median(results.map((r) => r[k]));
          const m: Row = { rps: med('rps'), p50: med('p50'), p99: med('p99'), requests: 0, cpuA: med('cpuA'), cpuB: med('cpuB'), mainA: med('mainA'), mainB: med('mainB') };
          rows[`${name} ${method} ${conns}`] = m;
          const cell = (all: number, main: number) => (pp ? `${all.toFixed(0)}${name === 'haproxy' ? '' : ` (${main.toFixed(0)})`}` : '-').padStart(12);
          console.log(`${name.padEnd(7)} ${method.padEnd(6)} ${String(conns).padStart(5)} ${m.rps.toFixed(0).padStart(8)} ${m.p50.toFixed(3).padStart(9)} ${m.p99.toFixed(3).padStart(8)}   ${cell(m.cpuA, m.mainA)}    ${cell(m.cpuB, m.mainB)}`);
        }
      }
    }
    for (const [other, label] of [['direct', 'mesh/direct'], ['floor', 'mesh/floor'], ['haproxy', 'mesh/haproxy']] as const) {
      if (!paths.some(([n]) => n === other) || !paths.some(([n]) => n === 'mesh')) continue;
      console.log(`\nratios ${label}:`);
      for (const method of methods) {
        for (const conns of connsList) {
          const d = rows[`${other} ${method} ${conns}`]!;
          const m = rows[`mesh ${method} ${conns}`]!;
          const cpu = other !== 'direct' ? `, CPU per request ${((m.cpuA + m.cpuB) / (d.cpuA + d.cpuB)).toFixed(1)}×` : '';
          console.log(`  ${method} c${conns}: throughput ${(m.rps / d.rps).toFixed(2)}×, p50 +${(m.p50 - d.p50).toFixed(3)} ms (${(m.p50 / d.p50).toFixed(1)}×), p99 ${(m.p99 / d.p99).toFixed(2)}×${cpu}`);
        }
      }
    }
    const mem = (pid: number) => `${rssMb(pid).toFixed(0)} MB (${anonMb(pid).toFixed(0)} MB of it private)`;
    console.log(`\nsidecar RSS: highest after any run ${rssMax.toFixed(0)} MB; now A ${mem(a.child.pid!)}, B ${mem(b.child.pid!)}`);
    for (const [name, pp] of Object.entries(pids)) if (pp && name !== 'mesh') console.log(`${name} RSS now: A ${mem(pp[0])}, B ${mem(pp[1])}`);
    if (soak > 0) {
      console.log(`\nsoak: GET c32 through the mesh for ${soak} s in 5-s slices; req/s and RSS of A/B (MB) after each:`);
      const samples: string[] = [];
      for (let t = 0; t < soak; t += 5) {
        const r = wrk(mesh + key, 32, 5);
        samples.push(`${r.rps.toFixed(0)} ${rssMb(a.child.pid!).toFixed(0)}/${rssMb(b.child.pid!).toFixed(0)}`);
      }
      console.log('  ' + samples.join(' | '));
      // RSS that keeps rising could be a leak or V8 putting off collection: the live heap tells.
      const heap = async (admin: string) => {
        const text = await fetch(`http://${admin}/metrics`).then((r) => r.text());
        const mb = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]) / 2 ** 20;
        return `${mb('nodejs_heap_size_used_bytes').toFixed(0)} of ${mb('nodejs_heap_size_total_bytes').toFixed(0)} MB`;
      };
      console.log(`  V8 heap used after the soak: A ${await heap(a.ready.admin)}, B ${await heap(b.ready.admin)}`);
    }
  } finally {
    await haproxy?.stop();
    await Promise.all(procs.map((p) => p.kill('SIGTERM')));
    rmSync(dir, { recursive: true, force: true });
  }
}
