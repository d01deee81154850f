import t from 'tap';
import http from 'node:http';
import http2 from 'node:http2';
import { AppServer } from '../../../proxy/app-listener.js';

t.test('one port serves HTTP/1.1 and h2c with prior knowledge', async (t) => {
  const app = new AppServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => res.end(JSON.stringify({ v: req.httpVersion, method: req.method, url: req.url, body })));
  });
  const { port } = await app.listen(0, '127.0.0.1');
  t.teardown(() => app.close());

  const h1 = await fetch(`http://127.0.0.1:${port}/x?y=1`, { method: 'PUT', body: 'hello' }).then((r) => r.json());
  t.same(h1, { v: '1.1', method: 'PUT', url: '/x?y=1', body: 'hello' });

  const session = http2.connect(`http://127.0.0.1:${port}`);
  t.teardown(() => session.close());
  const got = await new Promise<string>((resolve, reject) => {
    const s = session.request({ ':method': 'POST', ':path': '/h2' });
    let data = '';
    s.setEncoding('utf8');
    s.on('data', (c: string) => (data += c));
    s.on('end', () => resolve(data));
    s.on('error', reject);
    s.end('over h2c');
  });
  t.same(JSON.parse(got), { v: '2.0', method: 'POST', url: '/h2', body: 'over h2c' });

  // Keep-alive on HTTP/1.1: two requests on one agent socket.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  for (const path of ['/a', '/b']) {
    const r = await new Promise<string>((resolve) =>
      http.get({ port, host: '127.0.0.1', path, agent }, (res) => {
        let d = '';
        res.on('data', (c) => (d += c));
        res.on('end', () => resolve(d));
      }),
    );
    t.equal(JSON.parse(r).url, path);
  }
});

t.test('close() closes idle keep-alive connections at once instead of waiting out the drain time', async (t) => {
  const app = new AppServer((_req, res) => res.end('ok'));
  const { port } = await app.listen(0, '127.0.0.1');
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  let onClosed: () => void = () => undefined;
  const socketClosed = new Promise<boolean>((r) => (onClosed = () => r(true)));
  await new Promise<void>((resolve) =>
    http.get({ port, host: '127.0.0.1', path: '/', agent }, (res) => {
      res.socket.once('close', onClosed);
      res.resume();
      res.on('end', () => resolve());
    }),
  );
  const started = Date.now();
  await app.close(30_000);
  const closed = await Promise.race([socketClosed, new Promise<boolean>((r) => setTimeout(() => r(false), 5_000))]);
  t.ok(Date.now() - started < 5_000, 'close() did not wait out the 30 s drain time');
  t.ok(closed, 'the idle connection was closed by the server');
});
