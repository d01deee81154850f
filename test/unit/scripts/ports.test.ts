import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lease, reservePorts } from '../../../scripts/ports.js';

// Ports 1-3 are privileged: reservePorts never picks them, so these leases cannot
// disturb a test running beside this one.
const file = (port: number) => join(tmpdir(), 'themis-mesh-ports', String(port));
const clear = (port: number) => existsSync(file(port)) && unlinkSync(file(port));

t.test('a port leased by another living process is refused; a dead holder\'s lease is taken over', async (t) => {
  const holder = spawn('sleep', ['30']);
  t.teardown(() => holder.kill('SIGKILL'));
  clear(1);
  lease(1); // creates the directory
  writeFileSync(file(1), String(holder.pid));
  t.equal(lease(1), false, 'held by a living process');
  holder.kill('SIGKILL');
  await new Promise((r) => holder.once('exit', r));
  t.equal(lease(1), true, 'its holder is gone');
  t.equal(readFileSync(file(1), 'utf8'), String(process.pid));
  clear(1);
});

t.test('a lease with garbage in it is taken over', async (t) => {
  clear(2);
  lease(2);
  writeFileSync(file(2), 'not a pid');
  t.equal(lease(2), true);
  clear(2);
});

t.test('two reservations in one process never share a port, and every port handed out is leased to it', async (t) => {
  const a = await reservePorts(Array.from({ length: 20 }, () => ({ host: '127.0.0.1' })));
  const b = await reservePorts(Array.from({ length: 20 }, () => ({ host: '127.0.0.1' })));
  t.equal(new Set([...a, ...b]).size, 40);
  t.ok([...a, ...b].every((p) => readFileSync(file(p), 'utf8') === String(process.pid)));
});
