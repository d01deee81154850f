// Free TCP ports for the dev cluster and tests. All probes stay open until every port is
// chosen, so one call never hands out the same port twice.
import { createServer, type Server } from 'node:net';

export interface PortRequest {
  host: string;
  /** 0 = any free port; otherwise this exact port, which must be free. */
  port?: number;
}

export async function reservePorts(requests: readonly PortRequest[]): Promise<number[]> {
  const servers: Server[] = [];
  try {
    const ports: number[] = [];
    for (const r of requests) {
      const s = createServer();
      servers.push(s);
      ports.push(
        await new Promise<number>((resolve, reject) => {
          s.once('error', (e: NodeJS.ErrnoException) =>
            reject(new Error(e.code === 'EADDRINUSE' ? `${r.host}:${r.port} is in use; stop what holds it, or pick free ports` : e.message)),
          );
          s.listen(r.port ?? 0, r.host, () => resolve((s.address() as { port: number }).port));
        }),
      );
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => (s.listening ? s.close(r) : r(undefined)))));
  }
}
