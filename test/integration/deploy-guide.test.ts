// deploy/README.md tested as written: its marked shell blocks (```sh on=…, test/support/guide-blocks.ts)
// run in order, the operator's on an operator machine and the hosts' as root on each host, on
// loopback "hosts" 127.0.0.21–24 of their own (mount and PID namespaces: own /etc, /var, /run;
// test/support/guide-hosts.ts), where ssh and scp enter the host and systemctl runs each unit's
// ExecStart as systemd would (as its User=, test/support/guide-host/systemctl.mjs). A block
// that fails fails the test. What is changed in the blocks, and only that:
//   - the example addresses 10.0.1.11–14 become 127.0.0.21–24 (not .11–.14: cluster-bootstrap.test.ts,
//     which may run at the same time, listens on 127.0.0.11–13 with the same ports);
//   - on a host, its own loopback 127.0.0.1 becomes its address (the loopback hosts share one
//     network, so each listens on its own address where a real host listens on 127.0.0.1).
// Stand-ins for what the guide takes from outside: the programs on the PATH (the install
// step's symlinks, in /usr/local/bin), the Debian etcd-server package (its etcd user; etcd from
// the same package, unpacked), and the CA passphrase in $THEMIS_PKI_PASSPHRASE (the guide
// offers it). It ends with a write through one host read back through another and
// themis-admin check green, after a host was added, rotated, and removed again.
import t from 'tap';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { debianTool } from '../../scripts/debian-tool.js';
import { guideBlocks, type GuideBlock } from '../support/guide-blocks.js';
import { journal, startHost, startOperator, SYSTEMD_PATH, type Machine } from '../support/guide-hosts.js';
import { PROGRAMS, ROOT } from '../support/cli.js';

t.setTimeout(240_000); // about a minute alone; more beside other test files (tap's default is 120 s)
const GUIDE = join(ROOT, 'deploy/README.md');
const SECTIONS = ['Install (every host, and the operator machine)', 'A first cluster', 'Adding a host', 'Rotating, revoking and removing a host'];
const JOURNEYS = SECTIONS.slice(1);
const ADDRESS = (a: string) => a.replace(/\b10\.0\.1\.1([1-4])\b/g, '127.0.0.2$1');
const PASSPHRASE = 'correct horse battery staple';

const blocks = guideBlocks(GUIDE).filter((b) => SECTIONS.includes(b.section));
const skip = process.getuid?.() === 0 ? false : 'needs root: each loopback host is a mount and PID namespace (unshare, mount, nsenter)';

t.test('every shell block of the journeys says where it runs, and each journey has blocks to run', async (t) => {
  for (const b of blocks) t.not(b.on, undefined, `deploy/README.md:${b.line} (${b.section}) says where it runs: on=operator, on=ADDRESSES or on=none`);
  for (const j of JOURNEYS) t.ok(blocks.some((b) => b.section === j && b.on !== 'none' && b.on !== undefined), `"${j}" has blocks to run`);
});

const dir = mkdtempSync(join(tmpdir(), 'themis-guide-'));
chmodSync(dir, 0o755); // the services' users reach /usr/local/bin (bound from here)
const machines: Machine[] = [];
t.teardown(async () => {
  await Promise.all(machines.map((m) => m.stop()));
  rmSync(dir, { recursive: true, force: true });
});

const bin = join(dir, 'bin');

const hostsDir = join(dir, 'ssh-hosts');
mkdirSync(hostsDir);
const home = join(dir, 'operator-home');
mkdirSync(home, { mode: 0o700 });
const envFile = join(dir, 'operator.env');
const addresses = ['127.0.0.21', '127.0.0.22', '127.0.0.23', '127.0.0.24'];
const etcdHosts = addresses.slice(0, 3);
let operator: Machine;
const hosts = new Map<string, Machine>();
const rootBefore = statSync('/');
const varBefore = statSync('/var');

interface Ran {
  block: GuideBlock;
  where: string;
  status: number | null;
  stdout: string;
  stderr: string;
}
const ran: Ran[] = [];

function sh(argv: string[], script: string, env: Record<string, string>): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(argv[0]!, [...argv.slice(1), 'env', '-i', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), 'bash', '-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => c.kill('SIGKILL'), 120_000);
    c.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

/**
 * One block on the operator machine, in what acts as one terminal session: the variables it sets
 * (OLD_SERIAL=…) and exports (THEMIS_CONFIG) are there for the next block.
 */
function onOperator(code: string) {
  // A strict umask, as a careful operator has: the bundles must still unpack with the modes the hosts need.
  const script = [
    'set -euo pipefail', 'umask 077', 'cd', '__shell_vars=$(compgen -v)',
    `if [ -f ${envFile} ]; then source ${envFile}; fi`,
    code,
    `{ export -p; for v in $(compgen -v); do [ "$v" = __shell_vars ] || grep -qx "$v" <<<"$__shell_vars" || declare -p "$v"; done; } > ${envFile}`,
  ].join('\n');
  return sh(['nsenter', '--target', String(operator.pid), '--mount', '--'], script, {
    PATH: SYSTEMD_PATH, HOME: home, LANG: 'C.UTF-8', THEMIS_GUIDE_HOSTS: hostsDir, THEMIS_PKI_PASSPHRASE: PASSPHRASE,
  });
}

/** One block as root on one host; its own 127.0.0.1 is its address. */
function onHost(address: string, code: string) {
  const script = `set -euo pipefail\ncd\n${code.replace(/\b127\.0\.0\.1\b(?!\d)/g, address)}\n`;
  return sh(['nsenter', '--target', String(hosts.get(address)!.pid), '--mount', '--pid', '--wd=/', '--'], script, {
    PATH: SYSTEMD_PATH, HOME: '/root', LANG: 'C.UTF-8',
  });
}

/**
 * The install step, as its by-hand variant does it: the programs linked into /usr/local/bin;
 * etcd from Debian's etcd-server package; the test's ssh, scp and systemctl beside them.
 */
function install(): void {
  mkdirSync(bin, { mode: 0o755 });
  for (const [name, main] of Object.entries({ ...PROGRAMS, 'themis-sidecar': 'dist/proxy/main.js' })) {
    chmodSync(join(ROOT, main), 0o755);
    symlinkSync(join(ROOT, main), join(bin, name));
  }
  symlinkSync(debianTool('etcd', 'etcd-server'), join(bin, 'etcd'));
  for (const [name, file] of [['ssh', 'ssh'], ['scp', 'scp'], ['systemctl', 'systemctl.mjs']] as const) symlinkSync(join(ROOT, 'test/support/guide-host', file), join(bin, name));
}

t.test('the guide runs as written', { skip }, async (t) => {
  install();
  operator = await startOperator(bin);
  machines.push(operator);
  for (const a of addresses) {
    const m = await startHost(a, join(dir, 'hosts', a), bin, hostsDir);
    machines.push(m);
    hosts.set(a, m);
  }
  // Stand-in for `apt-get install etcd-server` on the etcd hosts: the user its package creates.
  for (const a of etcdHosts) {
    const r = await onHost(a, 'adduser --system --group --quiet --home /var/lib/etcd etcd');
    t.equal(r.status, 0, `etcd user on ${a}: ${r.stderr}`);
  }
  const started = Date.now();
  // THEMIS_GUIDE_UNTIL=LINE stops after the blocks before that line of the guide (to debug a step).
  const until = Number(process.env.THEMIS_GUIDE_UNTIL ?? Infinity);
  for (const b of blocks) {
    if (b.on === 'none' || b.on === undefined || b.line >= until) continue;
    const code = ADDRESS(b.code);
    const where = b.on === 'operator' ? ['operator'] : b.on.map(ADDRESS);
    const results = await Promise.all(where.map(async (w) => ({ where: w, ...(await (w === 'operator' ? onOperator(code) : onHost(w, code))) })));
    for (const r of results) {
      ran.push({ block: b, ...r });
      const ok = t.equal(r.status, 0, `deploy/README.md:${b.line} (${b.section}) on ${r.where}`, {
        code, stdout: r.stdout.slice(-3000), stderr: r.stderr.slice(-3000),
        ...(r.status === 0 ? {} : { journal: [...hosts.values()].map((m) => journal(m)).join('\n') }),
      });
      if (!ok) return; // the blocks after it build on it
    }
  }
  t.comment(`the guide's blocks took ${((Date.now() - started) / 1000).toFixed(1)} s`);
});

t.test('what the guide promised', { skip }, async (t) => {
  const read = ran.find((r) => r.where === '127.0.0.23' && /^curl -fsS 127\.0\.0\.1:7080\/entities\//m.test(r.block.code));
  t.ok(read, 'the read-back block ran on 127.0.0.23');
  const write = ran.find((r) => r.where === '127.0.0.21' && /curl -fsS -X PUT 127\.0\.0\.1:7080\/entities\//.test(r.block.code));
  t.ok(write, 'after the write block on 127.0.0.21');
  t.match(read?.stdout ?? '', /\\"hello\\":\\"world\\"|"hello":"world"/, 'a write through one host is read back through another');
  const checks = ran.filter((r) => r.where === 'operator' && /^themis-admin check$/m.test(r.block.code));
  t.ok(checks.length >= 3, 'themis-admin check ran after each journey');
  for (const c of checks) t.match(c.stdout, /all checks passed/, `check after deploy/README.md:${c.block.line} is green`);
  const last = ran.at(-1);
  t.equal(last?.block.section, JOURNEYS.at(-1), 'every journey ran to its end');
  // The operator's tar into / must leave the host's own / and /var alone (--no-overwrite-dir).
  t.equal(statSync('/').mode, rootBefore.mode, "the machine's / keeps its mode");
  t.equal(statSync('/var').mode, varBefore.mode, "the machine's /var keeps its mode");
});

t.test('the rotation revoked the old serial and registered the new one', { skip }, async (t) => {
  const env = readFileSync(envFile, 'utf8');
  const old = /^declare -- OLD_SERIAL="([0-9a-fA-F:]+)"$/m.exec(env)?.[1];
  t.ok(old, 'the guide kept the serial in force before the rotation');
  const r = await onOperator('themis-admin shards --shard shard-002 --json');
  t.equal(r.status, 0, r.stderr);
  const [row] = JSON.parse(r.stdout || '[{}]') as { serial: string; status: string }[];
  t.not(row?.serial, old, 'a new serial is registered');
  t.equal(row?.status, 'valid');
  const missing = await onOperator('themis-admin shards --shard shard-009 --serial-only');
  t.equal(missing.status, 1, 'a shard that is not registered: exit 1');
  t.match(missing.stderr, /shard-009 is not registered in cluster cluster-prod/);
  const both = await onOperator('themis-admin shards --json --serial-only');
  t.equal(both.status, 2);
  t.match(both.stderr, /--json and --serial-only exclude each other/);
});
