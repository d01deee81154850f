// The backup's reading of a snapshot export refuses every export that is not whole — an error
// answer, a missing header, a cut-off stream, a wrong end count, lines after the end — with
// BACKUP_SOURCE_FAILED; a whole one gives digests that xxhsum and sha256sum agree with.
import t from 'tap';
import { createServer, type Server } from 'node:http';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { downloadSnapshot } from '../../../src/backup/snapshot-download.js';
import { xxhsum64 } from '../../support/xxhsum.js';

const dir = mkdtempSync(join(tmpdir(), 'themis-download-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const HEADER = '{"format":"themis-snapshot/1","seq":7,"trimmed_through":0}\n';
const E1 = '{"key":"t:00000000-0000-4000-8000-000000000001","blob":"1"}\n';
const E2 = '{"key":"t:00000000-0000-4000-8000-000000000002","blob":"{\\"a\\":2}"}\n';

/** A server answering /snapshot with `body` (destroying the socket after it when `cut`). */
async function serve(status: number, body: string, cut = false): Promise<{ url: string; server: Server }> {
  const server = createServer((_req, res) => {
    res.writeHead(status, { 'content-type': 'application/x-ndjson' });
    if (cut) {
      res.write(body);
      setTimeout(() => res.socket?.destroy(), 20);
    } else res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, server };
}

let n = 0;
async function download(status: number, body: string, cut = false) {
  const { url, server } = await serve(status, body, cut);
  try {
    return await downloadSnapshot(url, join(dir, `data-${n++}.ndjson`));
  } finally {
    server.close();
  }
}

t.test('a whole export: entity lines kept as sent, digests as xxhsum and sha256 compute them', async (t) => {
  const r = await download(200, HEADER + E1 + E2 + '{"end":true,"keys":2}\n');
  const file = readFileSync(join(dir, `data-${n - 1}.ndjson`), 'utf8');
  t.equal(file, E1 + E2);
  t.match(r, { seq: 7, trimmedThrough: 0, keys: 2 });
  t.equal(BigInt('0x' + r.digest.xxh64), xxhsum64(file));
  t.equal(r.digest.sha256, createHash('sha256').update(file).digest('hex'));
  t.equal(r.digest.bytes, Buffer.byteLength(file));
});

const bad: [string, number, string, boolean?][] = [
  ['an error answer', 503, '{"error":true,"code":"STORAGE_UNAVAILABLE"}'],
  ['an empty export', 200, ''],
  ['no header', 200, E1 + '{"end":true,"keys":1}\n'],
  ['no end line', 200, HEADER + E1 + E2],
  ['an end count that differs', 200, HEADER + E1 + '{"end":true,"keys":2}\n'],
  ['lines after the end', 200, HEADER + E1 + '{"end":true,"keys":1}\n' + E2],
  ['a line that is not {key, blob}', 200, HEADER + '{"key":1}\n{"end":true,"keys":1}\n'],
  ['a line that is not JSON', 200, HEADER + 'nope\n{"end":true,"keys":0}\n'],
  ['a connection cut midway', 200, HEADER + E1, true],
];
for (const [what, status, body, cut] of bad) {
  t.test(`refused: ${what}`, async (t) => {
    await t.rejects(download(status, body, cut), { code: 'BACKUP_SOURCE_FAILED' });
  });
}

t.test('refused: a node that does not answer', async (t) => {
  await t.rejects(downloadSnapshot('http://127.0.0.1:1', join(dir, 'none.ndjson')), { code: 'BACKUP_SOURCE_FAILED' });
});
