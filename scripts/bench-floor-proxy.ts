// The floor of `bench mesh --compare floor`: the least a pair of Node sidecars can do for
// the same hop — no signatures, no capability or replay checks, no routing, no metrics,
// audit or logs. `front` takes HTTP/1.1 and forwards each request on one HTTP/2 session over
// mutually authenticated TLS 1.3 (chain and CRLs checked by OpenSSL) to `back`, which serves
// it from the core HTTP/2 stream API through an undici pool to the storage node. Whatever our
// sidecars cost beyond this is the price of what they check; this is the price of Node.
//
//   node dist/scripts/bench-floor-proxy.js front PORT BACK_HOST:PORT CERT KEY CA CRL...
//   node dist/scripts/bench-floor-proxy.js back HOST:PORT STORAGE_URL CERT KEY CA CRL...
import http from 'node:http';
import http2 from 'node:http2';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { Pool } from 'undici';
// Not `for await`: since Node 24 it loses an HTTP/2 answer that arrived whole before it was read (read-whole.ts).
import { readWhole } from '../src/read-whole.js';

const [role, where, target, certFile, keyFile, caFile, ...crlFiles] = process.argv.slice(2);
if ((role !== 'front' && role !== 'back') || !where || !target || !certFile || !keyFile || !caFile) {
  console.error('usage: bench-floor-proxy.js front|back PORT|HOST:PORT TARGET CERT KEY CA CRL...');
  process.exit(64);
}
const creds = {
  cert: readFileSync(certFile),
  key: readFileSync(keyFile),
  ca: readFileSync(caFile),
  crl: crlFiles.map((f) => readFileSync(f)),
  minVersion: 'TLSv1.3' as const,
};

function listening(host: string, server: { address(): unknown }): void {
  console.log(JSON.stringify({ event: 'listening', host, port: (server.address() as AddressInfo).port }));
}

if (role === 'back') {
  const [host, port] = where.split(':') as [string, string];
  const pool = new Pool(target, { connections: 256 });
  const server = http2.createSecureServer({ ...creds, requestCert: true, rejectUnauthorized: true, noDelay: true, settings: { maxConcurrentStreams: 1000 } });
  server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    void (async () => {
      const method = headers[':method'] as 'GET' | 'PUT';
      const body = method === 'GET' ? undefined : await readWhole(stream);
      const up = await pool.request({ method, path: headers[':path']!, body, headers: body ? { 'content-type': 'application/json' } : {} });
      const answer = await readWhole(up.body);
      stream.respond({ ':status': up.statusCode, 'content-type': String(up.headers['content-type']), 'content-length': answer.length });
      stream.end(answer);
    })().catch((e: unknown) => { console.error('floor B request failed:', e); stream.destroy(); });
  });
  server.listen(Number(port), host, () => listening(host, server));
} else {
  const [host, port] = target.split(':') as [string, string];
  const session = http2.connect(`https://${target}`, {
    createConnection: () => {
      // The chain and CRLs are checked; the name is not (bench certificates name shards, not IPs).
      const s = tls.connect({ ...creds, host, port: Number(port), ALPNProtocols: ['h2'], checkServerIdentity: () => undefined });
      s.setNoDelay(true);
      return s;
    },
  });
  // A broken session must show up in the benchmark as failed requests, not as a crash.
  session.on('error', (err) => console.error(`floor A: ${err.message}`));
  const server = http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
    void (async () => {
      const body = await readWhole(req);
      const headers: http2.OutgoingHttpHeaders = { ':method': req.method, ':path': req.url };
      if (body.length > 0) Object.assign(headers, { 'content-type': 'application/json', 'content-length': body.length });
      const stream = session.request(headers, { endStream: body.length === 0 });
      stream.on('error', () => undefined); // surfaces below as a rejected answer
      if (body.length > 0) stream.end(body);
      const h = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
        stream.once('response', resolve);
        stream.once('error', reject);
      });
      const answer = await readWhole(stream);
      res.writeHead(Number(h[':status']), { 'content-type': String(h['content-type']), 'content-length': answer.length });
      res.end(answer);
    })().catch((e: unknown) => { console.error('floor A request failed:', e); res.destroy(); });
  });
  server.listen(Number(where), '127.0.0.1', () => listening('127.0.0.1', server));
}
