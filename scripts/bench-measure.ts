// What `bench mesh` measures with: wrk runs and their parsed figures, CPU ticks and RSS of a
// process (or its main thread) from /proc, this machine's ECDSA cost, medians.
import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';

export interface WrkResult {
  rps: number;
  p50: number;
  p99: number;
  requests: number;
}

export const TICK_US = 1e6 / Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());

/** A process and its child processes (a sidecar with workers: the control process and its workers). */
export function processTree(pid: number): number[] {
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
  } catch {
    // gone, or a kernel without the children file: the process alone
  }
  return [pid, ...children.flatMap(processTree)];
}

/** CPU ticks (utime + stime) of a whole process, or of its main thread only, summed over its child processes. */
export function cpuTicks(pid: number, mainThread = false): number {
  return processTree(pid).reduce((sum, p) => {
    try {
      const stat = readFileSync(mainThread ? `/proc/${p}/task/${p}/stat` : `/proc/${p}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(') ') + 2).split(' '); // the command name may contain ') '
      return sum + Number(f[11]) + Number(f[12]);
    } catch {
      return sum; // a child that exited between the listing and the read
    }
  }, 0);
}

function statusKb(pid: number, field: string): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

export const rssMb = (pid: number) => statusKb(pid, 'VmRSS') / 1024;
/** RSS without file-backed pages (the node binary's, shared by every Node process on a host). */
export const anonMb = (pid: number) => statusKb(pid, 'RssAnon') / 1024;

/** This machine's per-request crypto, in µs: ECDSA P-256 sign and verify of a canonical string. */
export function cryptoCost(): { sign: number; verify: number } {
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

export function wrk(url: string, conns: number, secs: number, script?: string): WrkResult {
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

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
