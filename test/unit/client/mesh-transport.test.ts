// The SDK's HTTP/2 transport (src/client/transport.ts) on real TLS 1.3 with our PKI's
// certificates: an answer is read whole whenever the caller gets to it, and a reset one is an
// error, not a short answer. On Node 24, iterating the HTTP/2 stream itself lost answers that
// arrived whole before they were read (src/read-whole.ts); this file also runs in the Node 24
// pass of `npm test` (scripts/test-node-release.ts).
import t from 'tap';
import http2 from 'node:http2';
import { createPrivateKey } from 'node:crypto';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AddressInfo } from 'node:net';
import { createPkiFixture } from '../../support/pki-fixture.js';
import { MeshTransport, readText } from '../../../src/client/transport.js';

const fx = await createPkiFixture({ shards: 1 });
t.teardown(() => fx.cleanup());
const plainKey = (pem: string) => createPrivateKey({ key: pem, passphrase: fx.passphrase }).export({ type: 'pkcs8', format: 'pem' }) as string;
const shard = fx.shards[0]!;
const client = fx.clients.readWrite;

let endlessClosed: () => void = () => undefined;
const server = http2.createSecureServer({ cert: shard.chain, key: plainKey(shard.key), minVersion: 'TLSv1.3' });
server.on('stream', (s, h) => {
  s.on('error', () => undefined);
  s.respond({ ':status': 200 });
  if (h[':path'] === '/endless') {
    const tick = setInterval(() => s.write('data: x\n\n'), 10);
    s.once('close', () => {
      clearInterval(tick);
      endlessClosed();
    });
  } else if (h[':path']!.startsWith('/cut-')) {
    s.write('{"partial":');
    // The stream reset (the client sees an error), or the whole session gone (the client sees
    // 'end' after the part it got, with rstCode CANCEL).
    setTimeout(() => (h[':path'] === '/cut-stream' ? s.destroy(new Error('cut')) : s.session!.destroy()), 20);
  } else {
    s.end('x'.repeat(Number(h[':path']!.slice(1))));
  }
});
server.listen(0, '127.0.0.1');
await once(server, 'listening');
t.teardown(() => server.close());

const transport = new MeshTransport({ url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, cert: client.chain, key: plainKey(client.key), ca: fx.root.cert });
t.teardown(() => transport.close());
const request = (path: string) => transport.request({ method: 'GET', path, signal: new AbortController().signal });

t.test('an answer is read whole though the caller reads it only after it has arrived', async (t) => {
  for (const bytes of [11, 60_000]) {
    const res = await request(`/${bytes}`);
    await sleep(50); // the answer arrives whole meanwhile, END_STREAM included
    t.equal((await readText(res)).length, bytes, `${bytes} bytes`);
  }
  const many = await Promise.all(Array.from({ length: 32 }, () => request('/179')));
  await sleep(50);
  const texts = await Promise.all(many.map((r) => readText(r)));
  t.ok(texts.every((x) => x.length === 179), '32 answers at once, each read after all had arrived');
});

t.test('an answer cut part-way is an error, not a short answer', async (t) => {
  for (const how of ['stream', 'session']) {
    const res = await request(`/cut-${how}`);
    await t.rejects(readText(res), { code: 'ERR_HTTP2_STREAM_ERROR' }, `its ${how} reset`);
  }
});

t.test('a caller that stops reading an endless answer (a change stream) cancels it', async (t) => {
  const closed = new Promise<void>((resolve) => (endlessClosed = resolve));
  const res = await request('/endless');
  for await (const chunk of res.body) {
    t.match(String(chunk), /data: x/);
    break;
  }
  const outcome = await Promise.race([closed.then(() => 'closed'), sleep(2000).then(() => 'still open')]);
  t.equal(outcome, 'closed', 'the server saw its stream end');
});
