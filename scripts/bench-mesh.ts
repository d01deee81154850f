// `npm run bench -- mesh`: a bounded wrk workload (GET/PUT of a ~200-byte entity, c1 and c32) at a
// storage node and through two sidecars of a local mesh; --compare and --baseline add other pairs.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureSystemDeps } from './ensure-system-deps.js';
import { reservePorts } from './ports.js';
import { startLocalMesh, type LocalMesh, type MeshShard } from './local-mesh.js';
import { startHaproxyChain, type HaproxyChain } from './bench-haproxy.js';
import { startFloorChain, type FloorChain } from './bench-floor.js';
import { TICK_US, anonMb, cpuTicks, cryptoCost, median, processTree, rssMb, wrk, type WrkResult } from './bench-measure.js';

interface Row extends WrkResult {
  cpuA: number;
  cpuB: number;
  mainA: number;
  mainB: number;
}

const USAGE = `usage: npm run bench -- mesh [--duration S] [--runs N] [--method GET|PUT] [--conns N]
  [--path direct|floor|mesh|mesh-wN|baseline|variant|haproxy] [--compare haproxy,floor] [--workers 1,2] [--baseline PATH] [--soak S] [--profile DIR]
  --workers 1,2     also through two sidecars with each count above 1 as \`workers\` (path mesh-wN); CPU is
                    summed over each sidecar's processes; prints the scaling ratios against mesh (1 worker)
  --baseline PATH   also through two sidecars started from PATH (another build's dist/proxy/main.js),
                    back to back with ours in every run; prints the ratio of main-thread CPU per request
  --variant JSON    also through two sidecars of this build with JSON merged into their config (e.g.
                    '{"accessLog":{"mode":"on"}}'), back to back with ours; prints variant ÷ mesh
  --variant-node-args FLAGS
                    the variant's sidecars (with --variant's config, or ours) also get these node
                    flags, after the sidecars' own (e.g. --variant-node-args='--max-old-space-size=512'); RSS printed`;

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: {
      duration: { type: 'string' },
      runs: { type: 'string' },
      compare: { type: 'string' },
      baseline: { type: 'string' },
      variant: { type: 'string' },
      'variant-node-args': { type: 'string' },
      workers: { type: 'string' },
      profile: { type: 'string' },
      method: { type: 'string' },
      conns: { type: 'string' },
      path: { type: 'string' },
      soak: { type: 'string' },
      help: { type: 'boolean' },
    }, strict: true });
  if (values.help) return void console.log(USAGE);
  const secs = Number(values.duration ?? 5);
  const runs = Number(values.runs ?? 3);
  const compare = new Set(values.compare ? values.compare.split(',') : []);
  for (const c of compare) if (c !== 'haproxy' && c !== 'floor') throw new Error(`--compare takes "haproxy", "floor" or both ("haproxy,floor"), got "${c}"`);
  const soak = Number(values.soak ?? 0);
  const workerCounts = (values.workers ?? '1').split(',').map(Number);
  if (workerCounts.some((w) => !Number.isInteger(w) || w < 1 || w > 64)) throw new Error(`--workers takes counts from 1 to 64, e.g. "1,2"; got "${values.workers}"`);
  ensureSystemDeps({ wrk: 'wrk' });
  const dir = mkdtempSync(join(tmpdir(), 'themis-bench-'));
  const meshes: LocalMesh[] = [];
  let haproxy: HaproxyChain | undefined;
  let floor: FloorChain | undefined;
  try {
    const shards: MeshShard[] = [{ id: 'shard-001', ip: '127.0.0.2' }, { id: 'shard-002', ip: '127.0.0.3' }];
    // Every key belongs to B, so every request through A crosses the mesh.
    const common = {
      cluster: 'bench', ranges: { owner: 'shard-002' }, logLevel: 'warn',
      nodeArgs: values.profile ? ['--cpu-prof', '--cpu-prof-interval=100', `--cpu-prof-dir=${values.profile}`] : [],
    } as const;
    const mesh = await startLocalMesh({ ...common, dir: join(dir, 'mesh'), shards, passphrase: 'bench-passphrase', kdfIterations: 1000 });
    meshes.push(mesh);
    const pki = mesh.pki;
    const [a, b] = [mesh.nodes[0]!.sidecar, mesh.nodes[1]!.sidecar];
    const storageB = mesh.nodes[1]!.storage.url;
    const key = '/entities/document.bench.items:2f1c3f0e-7d2b-4c1a-9a8e-5b6d7c8e9f00';
    const blob = JSON.stringify({ name: 'benchmark item', price: 1234, tags: ['a', 'b', 'c'], note: 'x'.repeat(110) });
    const body = JSON.stringify({ blob });
    await fetch(storageB + key, { method: 'PUT', body });
    const putLua = join(dir, 'put.lua');
    writeFileSync(putLua, `wrk.method = "PUT"\nwrk.body = ${JSON.stringify(body)}\nwrk.headers["Content-Type"] = "application/json"\n`);
    const pids: Record<string, [number, number] | undefined> = { direct: undefined, mesh: [a.child.pid!, b.child.pid!] };
    const urls: [string, string][] = [['direct', storageB]];
    if (compare.has('floor')) {
      const [meshPort] = (await reservePorts([{ host: '127.0.0.5' }])) as [number];
      floor = await startFloorChain({
        mesh: { host: '127.0.0.5', port: meshPort }, storageUrl: storageB,
        a: pki.shards['shard-001']!, b: pki.shards['shard-002']!, rootCert: pki.rootCert, crls: pki.crls,
      });
      urls.push(['floor', floor.url]);
      pids.floor = [floor.a.child.pid!, floor.b.child.pid!];
    }
    urls.push(['mesh', a.appUrl]);
    if (values.baseline) {
      // The same pair from another build, on the same PKI and the same storage nodes.
      const base = await startLocalMesh({
        ...common, dir: join(dir, 'baseline'), pki, sidecarMain: resolve(values.baseline),
        shards: mesh.nodes.map((n) => ({ id: n.id, ip: n.ip, storageUrl: n.storage.url })),
      });
      meshes.push(base);
      urls.push(['baseline', base.nodes[0]!.sidecar.appUrl]);
      pids.baseline = [base.nodes[0]!.sidecar.child.pid!, base.nodes[1]!.sidecar.child.pid!];
    }
    const variantNodeArgs = values['variant-node-args']?.split(/\s+/).filter(Boolean) ?? [];
    if (values.variant || variantNodeArgs.length) {
      // The same build and PKI with other settings (access log, tracing) or V8 flags, on the same storage nodes.
      const sidecarConfig = JSON.parse(values.variant ?? '{}') as Record<string, unknown>;
      const variant = await startLocalMesh({
        ...common, dir: join(dir, 'variant'), pki, sidecarConfig, nodeArgs: [...common.nodeArgs, ...variantNodeArgs],
        shards: mesh.nodes.map((n) => ({ id: n.id, ip: n.ip, storageUrl: n.storage.url })),
      });
      meshes.push(variant);
      urls.push(['variant', variant.nodes[0]!.sidecar.appUrl]);
      pids.variant = [variant.nodes[0]!.sidecar.child.pid!, variant.nodes[1]!.sidecar.child.pid!];
    }
    for (const w of workerCounts.filter((n) => n > 1)) {
      // The same build and PKI with `workers` processes per sidecar, on the same storage nodes.
      const multi = await startLocalMesh({
        ...common, dir: join(dir, `w${w}`), pki, sidecarConfig: { workers: w },
        shards: mesh.nodes.map((n) => ({ id: n.id, ip: n.ip, storageUrl: n.storage.url })),
      });
      meshes.push(multi);
      urls.push([`mesh-w${w}`, multi.nodes[0]!.sidecar.appUrl]);
      pids[`mesh-w${w}`] = [multi.nodes[0]!.sidecar.child.pid!, multi.nodes[1]!.sidecar.child.pid!];
    }
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
    console.log(`themis-mesh benchmark: ${Buffer.byteLength(blob)}-byte blob, wrk -t1, ${secs} s per run, median of ${runs} runs (every path once per run, back to back)`);
    if (values.baseline) console.log(`baseline: sidecars from ${resolve(values.baseline)}`);
    console.log(`this machine: ECDSA P-256 sign ${c.sign.toFixed(0)} µs, verify ${c.verify.toFixed(0)} µs of CPU; ${availableParallelism()} CPUs`);
    console.log('CPU µs/req: whole process (its main thread alone in brackets; HAProxy runs several threads)');
    console.log('path     method conns    req/s    p50 ms   p99 ms   CPU µs/req A    CPU µs/req B');
    const rows: Record<string, Row> = {};
    const perRun: Record<string, Row[]> = {};
    const methods = (values.method ? [values.method] : ['GET', 'PUT']) as ('GET' | 'PUT')[];
    const connsList = values.conns ? [Number(values.conns)] : [1, 32];
    const paths = urls.filter(([name]) => !values.path || values.path === name);
    // The highest RSS of any one process of each path's sidecars, after any run.
    const rssMax: Record<string, number> = {};
    for (const method of methods) {
      for (const conns of connsList) {
        const script = method === 'PUT' ? putLua : undefined;
        for (const [, url] of paths) wrk(url + key, conns, 2, script); // warm-up
        const results: Record<string, Row[]> = Object.fromEntries(paths.map(([name]) => [name, []]));
        for (let i = 0; i < runs; i++) {
          // Every path once per run, the order reversed every other run, so that a drift of the
          // machine (heat, other load) falls on all paths alike, not on whichever ran last.
          for (const [name, url] of i % 2 ? [...paths].reverse() : paths) {
            const pp = pids[name];
            // [A, B, A's main thread, B's main thread]
            const ticks = () => (pp ? [cpuTicks(pp[0]), cpuTicks(pp[1]), cpuTicks(pp[0], true), cpuTicks(pp[1], true)] : [0, 0, 0, 0]);
            const before = ticks();
            const r = wrk(url + key, conns, secs, script);
            const after = ticks();
            if (pp && name !== 'haproxy') rssMax[name] = Math.max(rssMax[name] ?? 0, ...[...processTree(pp[0]), ...processTree(pp[1])].map(rssMb));
            const [cpuA, cpuB, mainA, mainB] = after.map((x, j) => ((x - before[j]!) * TICK_US) / r.requests) as [number, number, number, number];
            results[name]!.push({ ...r, cpuA, cpuB, mainA, mainB });
          }
        }
        for (const [name] of paths) {
          const pp = pids[name];
          const med = (k: keyof Row) => median(results[name]!.map((r) => r[k]));
          const m: Row = { rps: med('rps'), p50: med('p50'), p99: med('p99'), requests: 0, cpuA: med('cpuA'), cpuB: med('cpuB'), mainA: med('mainA'), mainB: med('mainB') };
          rows[`${name} ${method} ${conns}`] = m;
          perRun[`${name} ${method} ${conns}`] = results[name]!;
          const cell = (all: number, main: number) => (pp ? `${all.toFixed(0)}${name === 'haproxy' ? '' : ` (${main.toFixed(0)})`}` : '-').padStart(12);
          console.log(`${name.padEnd(8)} ${method.padEnd(6)} ${String(conns).padStart(5)} ${m.rps.toFixed(0).padStart(8)} ${m.p50.toFixed(3).padStart(9)} ${m.p99.toFixed(3).padStart(8)}   ${cell(m.cpuA, m.mainA)}    ${cell(m.cpuB, m.mainB)}`);
        }
      }
    }
    for (const [other, label] of [['direct', 'mesh/direct'], ['floor', 'mesh/floor'], ['haproxy', 'mesh/haproxy'], ['baseline', 'mesh/baseline']] as const) {
      if (!paths.some(([n]) => n === other) || !paths.some(([n]) => n === 'mesh')) continue;
      console.log(`\nratios ${label}:`);
      for (const method of methods) {
        for (const conns of connsList) {
          const d = rows[`${other} ${method} ${conns}`]!;
          const m = rows[`mesh ${method} ${conns}`]!;
          let cpu = other !== 'direct' ? `, CPU per request ${((m.cpuA + m.cpuB) / (d.cpuA + d.cpuB)).toFixed(1)}×` : '';
          // Each sidecar's main thread against its counterpart's: what bounds one process's throughput.
          if (other === 'floor') cpu += ` (main thread A ${(m.mainA / d.mainA).toFixed(2)}×, B ${(m.mainB / d.mainB).toFixed(2)}×)`;
          if (other === 'baseline') {
            // Run i of ours against run i of the baseline: the spread of these is the noise.
            const ours = perRun[`mesh ${method} ${conns}`]!;
            const each = perRun[`baseline ${method} ${conns}`]!.map((r, i) => (ours[i]!.mainA + ours[i]!.mainB) / (r.mainA + r.mainB));
            cpu = `, main-thread CPU per request ${((m.mainA + m.mainB) / (d.mainA + d.mainB)).toFixed(3)}× (runs ${Math.min(...each).toFixed(3)}–${Math.max(...each).toFixed(3)}), whole process ${((m.cpuA + m.cpuB) / (d.cpuA + d.cpuB)).toFixed(3)}×`;
          }
          console.log(`  ${method} c${conns}: throughput ${(m.rps / d.rps).toFixed(2)}×, p50 ${m.p50 >= d.p50 ? '+' : ''}${(m.p50 - d.p50).toFixed(3)} ms (${(m.p50 / d.p50).toFixed(1)}×), p99 ${(m.p99 / d.p99).toFixed(2)}×${cpu}`);
        }
      }
    }
    if (paths.some(([n]) => n === 'variant') && paths.some(([n]) => n === 'mesh')) {
      console.log(`\nratios variant/mesh (${[values.variant, variantNodeArgs.join(' ')].filter(Boolean).join(', ')}):`);
      for (const method of methods) {
        for (const conns of connsList) {
          const v = rows[`variant ${method} ${conns}`]!;
          const m = rows[`mesh ${method} ${conns}`]!;
          const ours = perRun[`mesh ${method} ${conns}`]!;
          const each = perRun[`variant ${method} ${conns}`]!.map((r, i) => (r.mainA + r.mainB) / (ours[i]!.mainA + ours[i]!.mainB));
          console.log(`  ${method} c${conns}: throughput ${(v.rps / m.rps).toFixed(3)}×, p50 ${(v.p50 / m.p50).toFixed(2)}×, p99 ${(v.p99 / m.p99).toFixed(2)}×, main-thread CPU per request ${((v.mainA + v.mainB) / (m.mainA + m.mainB)).toFixed(3)}× (runs ${Math.min(...each).toFixed(3)}–${Math.max(...each).toFixed(3)})`);
        }
      }
    }
    for (const w of workerCounts.filter((n) => n > 1)) {
      const name = `mesh-w${w}`;
      if (!paths.some(([n]) => n === name) || !paths.some(([n]) => n === 'mesh')) continue;
      console.log(`\nscaling ${name}/mesh (${w} workers per sidecar against 1; CPU summed over every process of A and B):`);
      for (const method of methods) {
        for (const conns of connsList) {
          const v = rows[`${name} ${method} ${conns}`]!;
          const m = rows[`mesh ${method} ${conns}`]!;
          console.log(`  ${method} c${conns}: throughput ${(v.rps / m.rps).toFixed(2)}×, p50 ${(v.p50 / m.p50).toFixed(2)}×, CPU per request ${((v.cpuA + v.cpuB) / (m.cpuA + m.cpuB)).toFixed(3)}× (main threads ${((v.mainA + v.mainB) / (m.mainA + m.mainB)).toFixed(3)}×)`);
        }
      }
    }
    const mem = (pid: number) => `${rssMb(pid).toFixed(0)} MB (${anonMb(pid).toFixed(0)} MB of it private)`;
    console.log(`\nsidecar RSS: highest of one process after any run ${rssMax.mesh?.toFixed(0)} MB; now A ${mem(a.child.pid!)}, B ${mem(b.child.pid!)}`);
    for (const [name, pp] of Object.entries(pids)) {
      if (!pp || name === 'mesh') continue;
      const each = (pid: number) => processTree(pid).map((p) => rssMb(p).toFixed(0)).join('+');
      const most = rssMax[name] !== undefined ? `highest of one process after any run ${rssMax[name]!.toFixed(0)} MB; ` : '';
      console.log(`${name} RSS: ${most}now A ${mem(pp[0])}, B ${mem(pp[1])}${processTree(pp[0]).length > 1 ? `; per process (control+workers) A ${each(pp[0])} MB, B ${each(pp[1])} MB` : ''}`);
    }
    if (soak > 0) {
      console.log(`\nsoak: GET c32 through the mesh for ${soak} s in 5-s slices; req/s and RSS of A/B (MB) after each:`);
      const samples: string[] = [];
      for (let t = 0; t < soak; t += 5) {
        const r = wrk(a.appUrl + key, 32, 5);
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
  } catch (e) {
    // A run that failed (wrk saw errors): what the floor proxies said about it, if anything.
    for (const [name, p] of floor ? ([['floor A', floor.a], ['floor B', floor.b]] as const) : []) {
      if (p.stderr().trim()) console.error(`${name} stderr (last lines):\n${p.stderr().trim().split('\n').slice(-20).join('\n')}`);
    }
    throw e;
  } finally {
    await haproxy?.stop();
    await floor?.stop();
    for (const m of meshes.reverse()) await m.close(); // the baseline first: it uses the mesh's storage nodes
    rmSync(dir, { recursive: true, force: true });
  }
}
