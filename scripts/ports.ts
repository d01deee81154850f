// Free TCP ports for the dev cluster and tests. All probes stay open until every port is
// chosen, so one call never hands out the same port twice.
//
// "Any free port" is picked at random *below* the kernel's ephemeral range rather than by
// binding port 0: a port the kernel hands out for a listener is also one it may hand out
// as the source port of an outgoing connection (to etcd, say) between our probe closing and
// the real server binding it, which made servers fail with EADDRINUSE now and then.
//
// Two processes reserving at once (tap runs test files in parallel) could still both pick
// a port in the gap between one's probe closing and its server binding. So every port
// handed out is also leased: a file named for it under $TMPDIR/themis-mesh-ports, created
// exclusively and holding the reserving process's pid. A lease counts while that process
// lives; a dead one's lease is taken over.
import { mkdirSync, openSync, closeSync, writeSync, readFileSync, unlinkSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface PortRequest {
  host: string;
  /** 0 = any free port; otherwise this exact port, which must be free. */
  port?: number;
}

/** [low, high] of the ports we pick from: 20000 up to the start of the ephemeral range. */
function pickRange(): [number, number] {
  let ephemeralLow = 32768;
  try {
    ephemeralLow = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || ephemeralLow;
  } catch {
    // not Linux: keep the IANA default
  }
  return ephemeralLow > 21000 ? [20000, ephemeralLow - 1] : [1024 + 10000, 60999];
}

/** Ports this process handed out, and when: two of its own calls must not share one either. */
const handedOut = new Map<number, number>();
const reuseAfterMs = 120_000;

function recentlyHandedOut(port: number): boolean {
  const at = handedOut.get(port);
  return at !== undefined && Date.now() - at < reuseAfterMs;
}

const leaseDir = join(tmpdir(), 'themis-mesh-ports');

function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Leases `port` to this process; false when a living process holds it. */
export function lease(port: number): boolean {
  mkdirSync(leaseDir, { recursive: true, mode: 0o1777 });
  const file = join(leaseDir, String(port));
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o644);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return !recentlyHandedOut(port);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let holder = NaN;
      try {
        holder = Number(readFileSync(file, 'utf8'));
      } catch {
        continue; // removed meanwhile: try again
      }
      if (holder === process.pid) return !recentlyHandedOut(port);
      if (alive(holder)) return false;
      try {
        unlinkSync(file);
      } catch {
        // another process took it over first; the next open decides
      }
    }
  }
  return false;
}

function listen(s: Server, port: number, host: string): Promise<number | 'in-use'> {
  return new Promise((resolve, reject) => {
    s.once('error', (e: NodeJS.ErrnoException) => (e.code === 'EADDRINUSE' || e.code === 'EACCES' ? resolve('in-use') : reject(e)));
    s.listen(port, host, () => resolve((s.address() as { port: number }).port));
  });
}

export async function reservePorts(requests: readonly PortRequest[]): Promise<number[]> {
  const servers: Server[] = [];
  const [low, high] = pickRange();
  try {
    const ports: number[] = [];
    for (const r of requests) {
      let got: number | 'in-use' = 'in-use';
      for (let attempt = 0; attempt < (r.port ? 1 : 100) && got === 'in-use'; attempt++) {
        const s = createServer();
        const want = r.port || low + Math.floor(Math.random() * (high - low + 1));
        if (!r.port && (ports.includes(want) || !lease(want))) continue;
        got = await listen(s, want, r.host);
        if (got !== 'in-use') servers.push(s);
      }
      if (got === 'in-use') throw new Error(r.port ? `${r.host}:${r.port} is in use; stop what holds it, or pick free ports` : `no free port found on ${r.host}`);
      ports.push(got);
    }
    for (const p of ports) handedOut.set(p, Date.now());
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => (s.listening ? s.close(r) : r(undefined)))));
  }
}
