// `node dist/scripts/profile-report.js FILE.cpuprofile [--skip S] [--top N] [--svg OUT.svg]`:
// what a V8 CPU profile (`npm run bench -- mesh --profile DIR`, or `node --cpu-prof`) says,
// without a browser: busy time by area (our code, Node's HTTP/2, crypto, undici, GC, …), the
// functions with the most self time, and with --svg a flame graph (root at the bottom, one box
// per call path, width = time) for docs/performance.md. --skip drops the first S seconds
// (start-up: module loading would otherwise crowd the request path out).
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface Frame { functionName: string; url: string; lineNumber: number }
interface ProfileNode { id: number; callFrame: Frame; children?: number[] }
interface Profile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number }

/** The area a frame belongs to, for the summary and the flame graph's colours. */
export function areaOf(f: Frame): string {
  const u = f.url;
  if (f.functionName === '(idle)') return 'idle';
  if (f.functionName === '(garbage collector)') return 'gc';
  if (f.functionName === '(program)') return 'program';
  if (/Sign|Verify|sign|verify/.test(f.functionName) && u.includes('crypto')) return 'crypto';
  if (u.includes('/dist/')) return 'ours';
  if (u.includes('node_modules/')) return u.split('node_modules/').pop()!.split('/')[0]!;
  if (u.includes('http2')) return 'node http2';
  if (u.includes('_http_')) return 'node http';
  if (u.startsWith('node:internal/modules') || u.includes('bootstrap')) return 'module loading';
  if (u.startsWith('node:')) return 'node';
  return u ? 'other' : 'native';
}

const COLOURS: Record<string, string> = { ours: '#e45756', crypto: '#f58518', 'node http2': '#4c78a8', 'node http': '#72b7b2', node: '#9ecae9', undici: '#54a24b', gc: '#b279a2', program: '#bab0ac', native: '#d6d6d6' };

interface Tree { name: string; area: string; total: number; children: Map<string, Tree> }

export function analyse(p: Profile, skipSeconds: number): { tree: Tree; self: Map<string, number>; areas: Map<string, number>; busy: number } {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const tree: Tree = { name: 'all', area: 'all', total: 0, children: new Map() };
  const self = new Map<string, number>();
  const areas = new Map<string, number>();
  let t = 0;
  let busy = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0;
    t += dt;
    if (t < skipSeconds * 1e6) continue;
    const leaf = byId.get(p.samples[i]!)!;
    if (leaf.callFrame.functionName === '(idle)') continue;
    busy += dt;
    const name = (f: Frame) => `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/(dist|node_modules)\//, '$1/').replace(/^file:\/\//, '')}:${f.lineNumber + 1}`;
    self.set(name(leaf.callFrame), (self.get(name(leaf.callFrame)) ?? 0) + dt);
    areas.set(areaOf(leaf.callFrame), (areas.get(areaOf(leaf.callFrame)) ?? 0) + dt);
    const path: ProfileNode[] = [];
    for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) path.unshift(byId.get(id)!);
    let at = tree;
    at.total += dt;
    for (const n of path.slice(1)) {
      const k = name(n.callFrame);
      let c = at.children.get(k);
      if (!c) at.children.set(k, (c = { name: k, area: areaOf(n.callFrame), total: 0, children: new Map() }));
      c.total += dt;
      at = c;
    }
  }
  return { tree, self, areas, busy };
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function flameSvg(tree: Tree, title: string, width = 1200): string {
  const row = 16;
  let depth = 0;
  const boxes: string[] = [];
  const draw = (n: Tree, x: number, d: number) => {
    depth = Math.max(depth, d);
    const w = (n.total / tree.total) * width;
    if (w < 0.5) return;
    boxes.push(`<g><title>${esc(n.name)} — ${((100 * n.total) / tree.total).toFixed(1)} %</title><rect x="${x.toFixed(1)}" y="D${d}" width="${w.toFixed(1)}" height="${row - 1}" fill="${COLOURS[n.area] ?? '#cccccc'}"/>${w > 60 ? `<text x="${(x + 3).toFixed(1)}" y="T${d}">${esc(n.name.slice(0, Math.floor(w / 6.5)))}</text>` : ''}</g>`);
    let cx = x;
    for (const c of [...n.children.values()].sort((a, b) => a.name.localeCompare(b.name))) {
      draw(c, cx, d + 1);
      cx += (c.total / tree.total) * width;
    }
  };
  draw(tree, 0, 0);
  const height = (depth + 1) * row + 40;
  // Root at the bottom: row d sits at height - (d + 1) * row.
  const body = boxes.join('\n').replace(/y="D(\d+)"/g, (_, d) => `y="${height - 20 - (Number(d) + 1) * row}"`).replace(/y="T(\d+)"/g, (_, d) => `y="${height - 20 - Number(d) * row - 4}"`);
  const legend = Object.entries(COLOURS).map(([k, c], i) => `<rect x="${i * 110}" y="${height - 14}" width="10" height="10" fill="${c}"/><text x="${i * 110 + 14}" y="${height - 5}">${k}</text>`).join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="monospace" font-size="11"><text x="0" y="12">${esc(title)}</text>\n${body}\n${legend}</svg>\n`;
}

function main(): void {
  const { values, positionals } = parseArgs({ options: { skip: { type: 'string' }, top: { type: 'string' }, svg: { type: 'string' }, title: { type: 'string' } }, allowPositionals: true });
  if (positionals.length !== 1) {
    process.stderr.write('usage: profile-report FILE.cpuprofile [--skip S] [--top N] [--svg OUT.svg] [--title TEXT]\n');
    process.exit(2);
  }
  const p = JSON.parse(readFileSync(positionals[0]!, 'utf8')) as Profile;
  const { tree, self, areas, busy } = analyse(p, Number(values.skip ?? 0));
  const pct = (v: number) => `${((100 * v) / busy).toFixed(1).padStart(5)} %`;
  console.log(`busy: ${(busy / 1000).toFixed(0)} ms of CPU on the main thread`);
  for (const [k, v] of [...areas].sort((a, b) => b[1] - a[1]).slice(0, 12)) console.log(`${pct(v)}  ${k}`);
  console.log('\nself time by function:');
  for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top ?? 25))) console.log(`${pct(v)}  ${k}`);
  if (values.svg) {
    writeFileSync(values.svg, flameSvg(tree, values.title ?? positionals[0]!));
    console.log(`\nflame graph: ${values.svg}`);
  }
}

if (process.argv[1]?.endsWith('profile-report.js')) main();
