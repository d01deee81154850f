// Starts the two processes of the benchmark's floor (bench-floor-proxy.ts): B on the mesh
// side of `mesh`, forwarding to `storageUrl`; A on an ephemeral loopback port, forwarding to B.
import { MAIN, SIDECAR_NODE_FLAGS, startListening, type Running } from './processes.js';

export interface FloorChain {
  /** http://127.0.0.1:PORT — A's app side. */
  url: string;
  a: Running<{ port: number }>;
  b: Running<{ port: number }>;
  stop(): Promise<void>;
}

export interface FloorChainOptions {
  mesh: { host: string; port: number };
  storageUrl: string;
  /** Leaf + intermediate, and the (unencrypted) key, of each side. */
  a: { chainPath: string; keyPath: string };
  b: { chainPath: string; keyPath: string };
  rootCert: string;
  crls: readonly string[];
}

export async function startFloorChain(o: FloorChainOptions): Promise<FloorChain> {
  const tlsArgs = (leaf: { chainPath: string; keyPath: string }) => [leaf.chainPath, leaf.keyPath, o.rootCert, ...o.crls];
  // The same V8 flags as our sidecars, so that the comparison is of code, not of settings.
  const start = (args: string[], name: string) => startListening<{ port: number }>(MAIN.floorProxy, args, name, { nodeArgs: [...SIDECAR_NODE_FLAGS] });
  const b = await start(['back', `${o.mesh.host}:${o.mesh.port}`, o.storageUrl, ...tlsArgs(o.b)], 'floor B');
  const a = await start(['front', '0', `${o.mesh.host}:${o.mesh.port}`, ...tlsArgs(o.a)], 'floor A').catch(async (e: unknown) => {
    await b.kill('SIGTERM');
    throw e;
  });
  return {
    url: `http://127.0.0.1:${a.ready.port}`,
    a,
    b,
    stop: async () => {
      await Promise.all([a.kill('SIGTERM'), b.kill('SIGTERM')]);
    },
  };
}
