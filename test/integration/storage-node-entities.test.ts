// The entity calls of a real storage node child process: both key forms, ThemisDB's answer
// shapes, and every way a write can be refused — each leaving the data and the feed unchanged.
import t, { type Test } from 'tap';
import { connect } from 'node:net';
import { call, removeDir, startStorage, type StorageProcess } from '../support/storage-process.js';

const UUID = '550e8400-e29b-41d4-a716-446655440000';
const THEMIS = `relational.shop.users:${UUID}`;
const URN = `urn:themis:relational:shop:users:${UUID}`;
const MAX_BLOB = 1024; // small limit so the size tests stay fast
const MAX_BODY = 2 * MAX_BLOB + 64 * 1024;

let node: StorageProcess;
t.before(async () => {
  node = await startStorage({ args: ['--max-blob-bytes', String(MAX_BLOB)] });
});
t.teardown(async () => {
  await node.stop();
  removeDir(node.dataDir);
});

const latestSeq = async (): Promise<number> => (await call(node.url, 'GET', '/changefeed?from_seq=0&limit=1')).body.latest_seq;

function isErrorShape(t: Test, r: { status: number; body: any }, code: string): void {
  t.equal(r.status, r.body?.status_code, 'status_code equals the HTTP status');
  t.same({ error: r.body?.error, code: r.body?.code, hasMessage: typeof r.body?.message === 'string' }, { error: true, code, hasMessage: true });
}

t.test('PUT in one key form, GET in the other: same entity, key echoed as written', async (t) => {
  const blob = '{"name":"Jürgen","city":"€"}'; // 28 characters; ü is 2 UTF-8 bytes, € is 3
  const put = await call(node.url, 'PUT', `/entities/${THEMIS}`, { blob });
  t.equal(put.status, 201);
  t.same(put.body, { success: true, key: THEMIS, blob_size: 31 }, 'blob_size counts UTF-8 bytes');
  const get = await call(node.url, 'GET', `/entities/${URN}`);
  t.same([get.status, get.body], [200, { key: URN, blob }]);
  const encoded = await call(node.url, 'GET', `/entities/${encodeURIComponent(URN)}`);
  t.same(encoded.body, { key: URN, blob }, 'percent-encoded key is decoded');
  const upper = await call(node.url, 'GET', `/entities/${THEMIS.toUpperCase().replace('RELATIONAL.SHOP.USERS', 'relational.shop.users')}`);
  t.equal(upper.status, 404, 'the uuid is kept as written: upper case is another entity');
});

t.test('POST /entities upserts with a key, or makes up a uuid v4 for a table', async (t) => {
  const key = 'document.shop.orders:00000000-0000-4000-8000-000000000001';
  const first = await call(node.url, 'POST', '/entities', { key, blob: '{"n":1}' });
  t.same([first.status, first.body], [201, { success: true, key, blob_size: 7 }]);
  const second = await call(node.url, 'POST', '/entities', { key, blob: '{"n":22}' });
  t.same([second.status, second.body], [201, { success: true, key, blob_size: 8 }]);
  t.equal((await call(node.url, 'GET', `/entities/${key}`)).body.blob, '{"n":22}');
  const made = await call(node.url, 'POST', '/entities', { table: 'document.shop.orders', blob: '[]' });
  t.equal(made.status, 201);
  t.match(made.body.key, /^document\.shop\.orders:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  t.equal((await call(node.url, 'GET', `/entities/${made.body.key}`)).body.blob, '[]');
});

t.test('DELETE answers {success, key}; a second DELETE is 404 and adds no change record', async (t) => {
  const key = `graph.social.edges:${UUID}`;
  await call(node.url, 'PUT', `/entities/${key}`, { blob: '{"w":1}' });
  const del = await call(node.url, 'DELETE', `/entities/urn:themis:graph:social:edges:${UUID}`);
  t.same([del.status, del.body], [200, { success: true, key: `urn:themis:graph:social:edges:${UUID}` }]);
  const before = await latestSeq();
  const again = await call(node.url, 'DELETE', `/entities/${key}`);
  t.equal(again.status, 404);
  isErrorShape(t, again, 'ENTITY_NOT_FOUND');
  t.equal(await latestSeq(), before, 'no change record for a missing key');
  isErrorShape(t, await call(node.url, 'GET', `/entities/${key}`), 'ENTITY_NOT_FOUND');
});

t.test('every refused write: 4xx with a stable code, nothing written', async (t) => {
  const key = 'document.shop.items:00000000-0000-4000-8000-0000000000aa';
  await call(node.url, 'PUT', `/entities/${key}`, { blob: '{"keep":true}' });
  const seq = await latestSeq();
  const atLimit = JSON.stringify('é'.repeat((MAX_BLOB - 2) / 2)); // exactly MAX_BLOB bytes
  const overLimit = JSON.stringify('é'.repeat((MAX_BLOB - 2) / 2) + 'x'); // one byte more
  const cases: [string, string, string, unknown, number, string][] = [
    ['model unknown', 'PUT', '/entities/blob.shop.items:' + UUID, { blob: '1' }, 400, 'INVALID_KEY'],
    ['URN with 5 parts', 'PUT', '/entities/urn:themis:document:shop:' + UUID, { blob: '1' }, 400, 'INVALID_KEY'],
    ['uuid malformed', 'PUT', '/entities/document.shop.items:1234', { blob: '1' }, 400, 'INVALID_KEY'],
    ['empty key', 'PUT', '/entities/', { blob: '1' }, 400, 'INVALID_KEY'],
    ['bad percent-encoding', 'PUT', '/entities/document.shop.items%E0%A4:' + UUID, { blob: '1' }, 400, 'INVALID_KEY'],
    ['body not JSON', 'PUT', `/entities/${key}`, 'blob=1', 400, 'INVALID_JSON'],
    ['empty body', 'PUT', `/entities/${key}`, '', 400, 'INVALID_JSON'],
    ['body not UTF-8', 'PUT', `/entities/${key}`, Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]), 400, 'INVALID_JSON'],
    ['body an array', 'PUT', `/entities/${key}`, [{ blob: '1' }], 400, 'INVALID_BODY'],
    ['blob missing', 'PUT', `/entities/${key}`, { value: '1' }, 400, 'INVALID_BODY'],
    ['blob a number', 'PUT', `/entities/${key}`, { blob: 1 }, 400, 'INVALID_BODY'],
    ['blob an object', 'PUT', `/entities/${key}`, { blob: { a: 1 } }, 400, 'INVALID_BODY'],
    ['unknown field', 'PUT', `/entities/${key}`, { blob: '1', ttl: 5 }, 400, 'INVALID_BODY'],
    ['blob not JSON', 'PUT', `/entities/${key}`, { blob: '{a:1}' }, 400, 'INVALID_BLOB'],
    ['blob with a lone surrogate', 'PUT', `/entities/${key}`, '{"blob":"\\"\\ud800\\""}', 400, 'INVALID_BLOB'],
    ['blob one byte over the limit', 'PUT', `/entities/${key}`, { blob: overLimit }, 413, 'PAYLOAD_TOO_LARGE'],
    ['body over the hard cap', 'PUT', `/entities/${key}`, { blob: '1', pad: 'x'.repeat(MAX_BODY) }, 413, 'PAYLOAD_TOO_LARGE'],
    ['POST without key or table', 'POST', '/entities', { blob: '1' }, 400, 'INVALID_BODY'],
    ['POST key not a string', 'POST', '/entities', { key: 5, blob: '1' }, 400, 'INVALID_BODY'],
    ['POST key malformed', 'POST', '/entities', { key: 'document.shop.items', blob: '1' }, 400, 'INVALID_KEY'],
    ['POST table malformed', 'POST', '/entities', { table: 'document.shop', blob: '1' }, 400, 'INVALID_KEY'],
    ['POST table not a string', 'POST', '/entities', { table: ['document.shop.items'], blob: '1' }, 400, 'INVALID_BODY'],
    ['POST table differs from key', 'POST', '/entities', { key, table: 'document.shop.other', blob: '1' }, 400, 'INVALID_BODY'],
    ['POST blob not JSON', 'POST', '/entities', { key, blob: 'nope' }, 400, 'INVALID_BLOB'],
    ['POST body not JSON', 'POST', '/entities', '{', 400, 'INVALID_JSON'],
    ['POST blob over the limit', 'POST', '/entities', { key, blob: overLimit }, 413, 'PAYLOAD_TOO_LARGE'],
    ['GET malformed key', 'GET', '/entities/document.shop.items:xyz', undefined, 400, 'INVALID_KEY'],
    ['DELETE malformed key', 'DELETE', '/entities/urn:themis:document:shop:items', undefined, 400, 'INVALID_KEY'],
    ['unknown route', 'GET', '/entity/' + key, undefined, 404, 'ROUTE_NOT_FOUND'],
    ['unknown route, deeper', 'POST', '/query/extra', {}, 404, 'ROUTE_NOT_FOUND'],
  ];
  for (const [name, method, path, body, status, code] of cases) {
    const r = await call(node.url, method, path, body);
    t.equal(r.status, status, `${name}: status`);
    isErrorShape(t, r, code);
  }
  t.equal((await call(node.url, 'GET', `/entities/${key}`)).body.blob, '{"keep":true}', 'the entity is unchanged');
  t.equal(await latestSeq(), seq, 'no change record was written');
  const fits = await call(node.url, 'PUT', `/entities/${key}`, { blob: atLimit });
  t.same([fits.status, fits.body.blob_size], [201, MAX_BLOB], 'a blob of exactly the limit is accepted');
  t.equal((await call(node.url, 'GET', '/health')).status, 200, 'still serving');
});

t.test('wrong method: 405 with an allow header', async (t) => {
  const cases: [string, string, string][] = [
    ['PATCH', `/entities/${THEMIS}`, 'GET, PUT, DELETE'],
    ['DELETE', '/entities', 'GET, POST'],
    ['GET', '/query', 'POST'],
    ['GET', '/vector/search', 'POST'],
    ['POST', '/changefeed', 'GET'],
    ['PUT', '/health', 'GET'],
  ];
  for (const [method, path, allow] of cases) {
    const r = await call(node.url, method, path);
    t.equal(r.status, 405, `${method} ${path}`);
    t.equal(r.headers.get('allow'), allow);
    isErrorShape(t, r, 'METHOD_NOT_ALLOWED');
  }
});

/** Sends raw bytes, resolves with the first response's text once its headers and body are in. */
interface Raw {
  head: string;
  body: string;
  /** Sends more bytes and resolves with the next full response. */
  more: (s: string) => Promise<string>;
  close: () => void;
}
function rawExchange(port: number, send: (write: (s: string) => void) => void): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    let buf = '';
    let waiter: ((s: string) => void) | null = null;
    sock.setEncoding('utf8');
    sock.on('error', reject);
    sock.on('data', (d: string) => {
      buf += d;
      const end = buf.indexOf('\r\n\r\n');
      const len = /content-length: (\d+)/i.exec(buf);
      if (end < 0 || !len || buf.length < end + 4 + Number(len[1])) return;
      const text = buf;
      buf = '';
      if (waiter) {
        const w = waiter;
        waiter = null;
        w(text);
        return;
      }
      resolve({
        head: text.slice(0, end),
        body: text.slice(end + 4),
        more: (s) => new Promise((res) => ((waiter = res), sock.write(s))),
        close: () => sock.destroy(),
      });
    });
    send((s) => sock.write(s));
  });
}

t.test('a body over the hard cap is refused as soon as its size is known', async (t) => {
  const path = `/entities/${THEMIS}`;
  // Declared too large: the answer comes without a single body byte sent.
  const declared = await rawExchange(node.port, (w) => w(`PUT ${path} HTTP/1.1\r\nhost: x\r\ncontent-length: ${MAX_BODY + 1}\r\n\r\n`));
  declared.close();
  t.match(declared.head, /^HTTP\/1\.1 413 /);
  t.equal(JSON.parse(declared.body).code, 'PAYLOAD_TOO_LARGE');

  // Chunked and unfinished: the answer comes while the client is still sending…
  const chunk = 'x'.repeat(8192);
  const streamed = await rawExchange(node.port, (w) => {
    w(`PUT ${path} HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n`);
    for (let sent = 0; sent <= MAX_BODY; sent += chunk.length) w(`2000\r\n${chunk}\r\n`);
  });
  t.match(streamed.head, /^HTTP\/1\.1 413 /);
  t.equal(JSON.parse(streamed.body).code, 'PAYLOAD_TOO_LARGE');
  // …and once the client ends that body, the same connection serves the next request.
  const next = await streamed.more('0\r\n\r\nGET /health HTTP/1.1\r\nhost: x\r\n\r\n');
  streamed.close();
  t.match(next, /^HTTP\/1\.1 200 /);
});
