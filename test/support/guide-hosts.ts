// Loopback "hosts" for running the deploy guide as written (test/integration/deploy-guide.test.ts).
// Each host is a mount and PID namespace of its own (unshare, as root) in which /etc and /var are
// overlays (its writes land in its own folder; the machine's stay untouched), /run is a tmpfs,
// and /usr/local/bin holds the programs as the install step leaves them, with the test's ssh,
// scp and systemctl (test/support/guide-host/). Commands reach it with nsenter, as ssh would.
// The namespace's first process reads its stdin: when the test ends, or dies, the pipe closes,
// that process exits, and the kernel kills every process left in the host's PID namespace.
// The operator machine is a mount namespace with a tmpfs on /media (the offline folder).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const SYSTEMD_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface Machine {
  name: string;
  /** The PID (in this test's namespace) to nsenter. */
  pid: number;
  /** Its /etc and /var, as the overlays' upper folders hold them (what it wrote). */
  upper: { etc: string; var: string } | undefined;
  /** Ends the namespace (and with a PID namespace, everything running in it). */
  stop(): Promise<void>;
}

function holder(name: string, argv: string[]): Promise<{ child: ChildProcess; exited: Promise<void> }> {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    const poll = setInterval(() => {
      if (out.includes('ready')) {
        clearInterval(poll);
        resolve({ child, exited });
      } else if (child.exitCode !== null) {
        clearInterval(poll);
        reject(new Error(`${name}: namespace set-up failed: ${err}`));
      }
    }, 20);
  });
}

const stopper = (child: ChildProcess, exited: Promise<void>) => async () => {
  child.stdin!.end();
  const t = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(t);
};

export async function startOperator(bin: string): Promise<Machine> {
  const { child, exited } = await holder('operator', [
    'unshare', '--mount', '--propagation', 'private', '--',
    'sh', '-ec', `mount -t tmpfs -o mode=0755 tmpfs /media; mount --bind ${bin} /usr/local/bin; echo ready; read _ || true`,
  ]);
  return { name: 'operator', pid: child.pid!, upper: undefined, stop: stopper(child, exited) };
}

/** A host at `address`; its overlays' folders under `dir`; its PID recorded in hostsDir/ADDRESS for ssh and scp. */
export async function startHost(address: string, dir: string, bin: string, hostsDir: string): Promise<Machine> {
  const upper = { etc: join(dir, 'upper/etc'), var: join(dir, 'upper/var') };
  for (const d of ['upper/etc', 'upper/var', 'work/etc', 'work/var']) mkdirSync(join(dir, d), { recursive: true });
  const mounts = [
    `mount -t overlay overlay -o lowerdir=/etc,upperdir=${upper.etc},workdir=${join(dir, 'work/etc')} /etc`,
    `mount -t overlay overlay -o lowerdir=/var,upperdir=${upper.var},workdir=${join(dir, 'work/var')} /var`,
    'mount -t tmpfs -o mode=0755 tmpfs /run',
    `mount --bind ${bin} /usr/local/bin`,
  ];
  const { child, exited } = await holder(address, [
    'unshare', '--mount', '--pid', '--fork', '--mount-proc', '--propagation', 'private', '--',
    'sh', '-ec', `${mounts.join('; ')}; echo ready; read _ || true`,
  ]);
  // unshare forked the namespace's first process: that one is in the PID namespace.
  const pid = Number(readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(/\s+/)[0]);
  writeFileSync(join(hostsDir, address), String(pid));
  return { name: address, pid, upper, stop: stopper(child, exited) };
}

/** The last lines of every unit's output on a host (for a failure's diagnostics). */
export function journal(m: Machine, lines = 30): string {
  if (!m.upper) return '';
  const dir = join(m.upper.var, 'log/guide-journal');
  let files: string[] = [];
  try {
    files = readdirSync(dir);
  } catch {
    return '';
  }
  return files.map((f) => `--- ${m.name} ${f}\n${readFileSync(join(dir, f), 'utf8').split('\n').slice(-lines).join('\n')}`).join('\n');
}
