// readAnswer (proxy/upstream.ts, src/read-whole.ts) on real HTTP/2 answers: one that arrived
// whole before anyone read it (the stream already closed, its bytes buffered) is read in full —
// on Node 24, async iteration loses it (ERR_STREAM_PREMATURE_CLOSE; Node 20 read it), which
// under load turned ~1 % of writes through the mesh into 502s. This file also runs in the Node 24
// pass of `npm test` (scripts/test-node-release.ts).
import t from 'tap';
import http2, { type ClientHttp2Stream } from 'node:http2';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AddressInfo } from 'node:net';
import { readAnswer } from '../../../proxy/upstream.js';

const server = http2.createServer();
server.on('stream', (s, h) => {
  s.on('error', () => undefined);
  s.respond({ ':status': 200 });
  if (h[':path'] === '/cut') {
    s.write('{"partial":');
    setTimeout(() => s.session!.destroy(), 20); // the client's stream sees 'end', with rstCode CANCEL
  } else {
    s.end('x'.repeat(Number(h['x-bytes'])));
  }
});
server.listen(0, '127.0.0.1');
await once(server, 'listening');
const session = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
t.teardown(() => {
  session.close();
  server.close();
});

/** A request whose answer has arrived whole, END_STREAM included, and not been read: `closed`, not destroyed. */
async function answered(bytes: number): Promise<ClientHttp2Stream> {
  const stream = session.request({ ':path': '/', 'x-bytes': String(bytes) }, { endStream: true });
  stream.on('error', () => undefined);
  await once(stream, 'response');
  for (let i = 0; i < 100 && !stream.closed; i++) await sleep(5);
  return stream;
}
const up = (body: ClientHttp2Stream) => ({ status: 200, headers: {}, body, complete: () => true });

t.test('an answer that arrived whole before it was read is read in full, small or in several DATA frames (within the flow-control window)', async (t) => {
  for (const bytes of [11, 60_000]) {
    const stream = await answered(bytes);
    t.ok(stream.closed && !stream.destroyed && stream.readableLength > 0, `${bytes} bytes: closed, not destroyed, bytes buffered`);
    const body = await readAnswer(up(stream), 1024 * 1024);
    t.equal(body.length, bytes, `${bytes} bytes read`);
  }
});

t.test('past the limit: refused, and the stream destroyed', async (t) => {
  const stream = await answered(5000);
  await t.rejects(readAnswer(up(stream), 4096), { code: 'ANSWER_TOO_LARGE', message: 'answer larger than 4096 bytes' });
  t.ok(stream.destroyed);
});

t.test('a stream destroyed before or while it is read is refused, not taken as an empty or short answer', async (t) => {
  const before = await answered(11);
  before.destroy();
  await t.rejects(readAnswer(up(before), 1024), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
  const during = await answered(60_000);
  const reading = readAnswer(up(during), 1024 * 1024);
  during.destroy();
  await t.rejects(reading, { code: 'ERR_STREAM_PREMATURE_CLOSE' });
});

t.test('an answer whose session went away part-way is refused, not taken as a short answer', async (t) => {
  const own = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  own.on('error', () => undefined);
  t.teardown(() => own.destroy());
  const stream = own.request({ ':path': '/cut' }, { endStream: true });
  stream.on('error', () => undefined);
  await once(stream, 'response');
  // As PeerSession's answers say whether they arrived whole.
  const complete = () => stream.rstCode === http2.constants.NGHTTP2_NO_ERROR && stream.readableEnded;
  await t.rejects(readAnswer({ status: 200, headers: {}, body: stream, complete }, 1024), { message: 'the answer broke off before its end' });
});
