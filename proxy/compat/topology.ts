// GET /_admin/cluster/topology, where ThemisDB's clients discover the shards they hash keys
// over: the sidecar lists itself only, the endpoint the app reached it on. The clients then
// send every call here and the mesh routes it; peers and storage nodes are never listed, so
// an app cannot bypass the mesh.
import type { TLSSocket } from 'node:tls';
import { AppServer } from '../app-listener.js';
import { servedBy } from '../mesh-headers.js';
import type { AnyRequest, Reply } from '../respond.js';

/** The URL of the listener that took `req`: its own address and port, never the client's Host. */
export function endpointOf(req: AnyRequest): string {
  const socket = req.socket as (TLSSocket & { encrypted?: boolean }) | null;
  if (!socket || AppServer.viaUnixSocket(socket) || socket.localAddress === undefined) {
    // The app socket has no address: the client reached it under the name it used.
    const host = (req as { authority?: string }).authority ?? req.headers.host ?? 'localhost';
    return `http://${host}`;
  }
  const address = socket.localAddress.includes(':') ? `[${socket.localAddress}]` : socket.localAddress;
  return `${socket.encrypted ? 'https' : 'http'}://${address}:${socket.localPort}`;
}

export function answerTopology(reply: Reply, req: AnyRequest, self: string, epoch: number): void {
  reply.json(
    200,
    { shards: [endpointOf(req)], mesh: { shard: self, topology_epoch: epoch, note: 'one endpoint: this sidecar routes every key to its owner' } },
    servedBy(self, epoch),
  );
}
