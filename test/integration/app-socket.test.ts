// The app API on a Unix-domain socket (app.socket): its owner, group and mode decide which
// local users get in, tried with real processes running as other users.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMesh, type Mesh } from '../support/mesh.js';

const NOGROUP = 65534; // Debian's nogroup
const dir = mkdtempSync(join(tmpdir(), 'themis-app-socket-'));
chmodSync(dir, 0o755); // any user may reach the socket file; its own mode decides
const socketPath = join(dir, 'app.sock');
let mesh: Mesh;

t.before(async () => {
  mesh = await startMesh({ shards: 1, sidecarConfig: { app: { socket: { path: socketPath, mode: '0660', group: 'nogroup' } } } });
});
t.teardown(async () => {
  await mesh?.close();
  rmSync(dir, { recursive: true, force: true });
});

function request(method: string, path: string, body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method, path, headers: body ? { 'content-type': 'application/json' } : {} }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A GET over the socket from a separate process running as `uid`/`gid` (no supplementary groups). */
function getAs(uid: number, gid: number, path: string): { status: number | null; out: string } {
  const script = `require('node:http').get({ socketPath: ${JSON.stringify(socketPath)}, path: ${JSON.stringify(path)} }, (r) => { console.log('status', r.statusCode); r.resume(); }).on('error', (e) => { console.log('error', e.code); process.exitCode = 3; });`;
  // Through sh, with a plain environment: tap wraps node children it spawns with hooks that
  // would write its process info where this user may not.
  const r = spawnSync('/bin/sh', ['-c', 'exec "$NODE" -e "$SCRIPT"'], { uid, gid, encoding: 'utf8', timeout: 10_000, cwd: '/', env: { PATH: process.env.PATH ?? '', NODE: process.execPath, SCRIPT: script } });
  return { status: r.status, out: r.stdout }; // stderr: tap's process-info hook, refused a write as this user
}

t.test('the socket file has the configured mode and group, and serves the app API', async (t) => {
  const st = statSync(socketPath);
  t.ok(st.isSocket(), 'a socket');
  t.equal(st.mode & 0o777, 0o660, 'mode 0660');
  t.equal(st.gid, NOGROUP, 'group nogroup');
  const key = `/entities/document.shop.orders:${'5f0c6a3e-8d1b-4c2a-9e7f-1a2b3c4d5e6f'}`;
  const put = await request('PUT', key, JSON.stringify({ blob: '{"via":"socket"}' }));
  t.ok(put.status >= 200 && put.status < 300, `PUT over the socket: ${put.status} ${put.body}`);
  const got = await request('GET', key);
  t.equal(got.status, 200);
  t.match(got.body, /via/);
});

t.test('a member of the group gets in; another local user does not', async (t) => {
  const path = '/health';
  const member = getAs(65534, NOGROUP, path);
  t.match(member.out, /status 200/, `nobody:nogroup: ${member.out}`);
  const other = getAs(65534, 100, path);
  t.match(other.out, /error EACCES/, `nobody:users: ${other.out}`);
});

t.test('a socket file left by a killed sidecar is replaced at restart', async (t) => {
  await mesh.stopSidecar(0, 'SIGKILL');
  t.ok(existsSync(socketPath), 'the killed sidecar left its socket file');
  await mesh.startSidecar(0);
  const health = await request('GET', '/health');
  t.equal(health.status, 200, 'the restarted sidecar serves on it');
  t.equal(statSync(socketPath).mode & 0o777, 0o660);
});
