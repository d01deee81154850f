import t from 'tap';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { ThemisError } from '../../../src/errors.js';
import { sendError } from '../../../storage-node/respond.js';

// A real HTTP server whose handler fails with whatever the test puts in `next`.
const lines: { level: number; msg: string }[] = [];
const log = pino(
  { level: 'debug' },
  new Writable({
    write(chunk, _enc, cb) {
      lines.push(JSON.parse(String(chunk)));
      cb();
    },
  }),
);
let next: { err: unknown; closing: boolean } = { err: null, closing: false };
const server = createServer((req, res) => sendError(req, res, next.err, log, next.closing));
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
t.teardown(() => server.close());
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;

async function fail(err: unknown, closing = false) {
  next = { err, closing };
  lines.length = 0;
  const res = await fetch(url);
  return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, unknown>, logged: lines.map((l) => [l.level, l.msg]) };
}

t.test('an unknown error becomes 500 INTERNAL, hides its message, and is logged at warn', async (t) => {
  const r = await fail(new Error('secret: /var/lib/themis/LOCK'));
  t.equal(r.status, 500);
  t.same(r.body, { error: true, message: 'internal error', status_code: 500, code: 'INTERNAL' });
  t.same(r.logged, [[40, 'unexpected error while serving a request']]);
  t.equal(r.headers.get('content-type'), 'application/json; charset=utf-8');
});

t.test('a typed error keeps its status and code and is logged at debug only', async (t) => {
  const r = await fail(new ThemisError('INVALID_BLOB', 'blob is not JSON'));
  t.same([r.status, r.body], [400, { error: true, message: 'blob is not JSON', status_code: 400, code: 'INVALID_BLOB' }]);
  t.same(r.logged, [[20, 'request rejected']]);
});

t.test('LevelDB not open becomes 503 STORAGE_UNAVAILABLE', async (t) => {
  const r = await fail(Object.assign(new Error('Database is not open'), { code: 'LEVEL_DATABASE_NOT_OPEN' }));
  t.same([r.status, r.body.code], [503, 'STORAGE_UNAVAILABLE']);
});

t.test('405 carries the allow header; answers while closing carry connection: close', async (t) => {
  const r = await fail(new ThemisError('METHOD_NOT_ALLOWED', 'use GET', { allow: 'GET' }), true);
  t.equal(r.status, 405);
  t.equal(r.headers.get('allow'), 'GET');
  t.equal(r.headers.get('connection'), 'close');
});
