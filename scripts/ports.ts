// Free TCP ports for the dev cluster and tests. All probes stay open until every port is
// chosen, so one call never hands out the same port twice.
//
// "Any free port" is picked at random *below* the kernel's ephemeral range rather than by
// binding port 0: a port the kernel hands out for a listener is also one it may hand out
// as the source port of an outgoing connection (to etcd, say) between our probe closing and
// the real server binding it, which made servers fail with EADDRINUSE now and then.
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';

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
        if (!r.port && ports.includes(want)) continue;
        got = await listen(s, want, r.host);
        if (got !== 'in-use') servers.push(s);
      }
      if (got === 'in-use') throw new Error(r.port ? `${r.host}:${r.port} is in use; stop what holds it, or pick free ports` : `no free port found on ${r.host}`);
      ports.push(got);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => (s.listening ? s.close(r) : r(undefined)))));
  }
}
