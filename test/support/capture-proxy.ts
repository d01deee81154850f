// A man in the middle between two sidecars, as a compromised proxy would be: it presents the
// receiver's own certificate to the sender, opens its own mTLS session to the receiver with the
// sender's certificate, forwards every request and answer, and keeps a copy of each signed
// request — headers and body exactly as the sender's code made them — for a test to replay.
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { meshConnect, type Identity } from './mesh-client.js';

export interface Captured {
  method: string;
  path: string;
  /** Every non-pseudo header as sent (the x-themis-* signature headers among them). */
  headers: Record<string, string>;
  body: Buffer;
}

export interface CaptureProxy {
  /** host:port to put in the topology in place of the receiver's endpoint. */
  endpoint: string;
  captured: Captured[];
  close(): Promise<void>;
}

export async function startCaptureProxy(o: { host: string; serveAs: { cert: string; key: string }; upstream: string; connectAs: Identity }): Promise<CaptureProxy> {
  const captured: Captured[] = [];
  let upstream: http2.ClientHttp2Session | undefined;
  const session = () => (upstream && !upstream.closed && !upstream.destroyed ? upstream : (upstream = meshConnect(o.upstream, o.connectAs)));
  const server = http2.createSecureServer({ cert: o.serveAs.cert, key: o.serveAs.key, minVersion: 'TLSv1.3', ALPNProtocols: ['h2'] });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.once('close', () => sessions.delete(s));
  });
  server.on('stream', (stream, h) => {
    stream.on('error', () => undefined);
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const body = Buffer.concat(chunks);
      const headers = Object.fromEntries(Object.entries(h).filter(([k]) => !k.startsWith(':')).map(([k, v]) => [k, String(v)]));
      const method = String(h[':method']);
      const path = String(h[':path']);
      captured.push({ method, path, headers, body });
      const req = session().request({ ':method': method, ':path': path, ...headers }, { endStream: body.length === 0 });
      req.on('response', (rh) => {
        const { ':status': status, ...rest } = rh;
        stream.respond({ ...rest, ':status': status });
        req.pipe(stream);
      });
      req.on('error', () => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
      if (body.length > 0) req.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, o.host, resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `${o.host}:${port}`,
    captured,
    close: () =>
      new Promise<void>((resolve) => {
        upstream?.close();
        server.close(() => resolve());
        // Sessions the sender keeps open would hold close() forever.
        for (const s of sessions) s.destroy();
      }),
  };
}
