// The file etcd reads with --client-crl-file only grows: a CRL in etcd that no longer verifies
// (garbage put there), or an older one put back, cannot undo a revocation; refreshes run one
// at a time and a failed one is tried again.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdCrlFollower, readEtcdCrlFile, type RevokedSerial } from '../../../src/control/etcd-crl-file.js';

const dir = mkdtempSync(join(tmpdir(), 'themis-etcd-crl-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const at = new Date('2026-12-01T00:00:00Z');
const s = (serial: string): RevokedSerial => ({ serial, revokedAt: at });

t.test('what etcd says now is added to what the file lists; nothing is taken off', async (t) => {
  const path = join(dir, 'grow.crl');
  let now: RevokedSerial[] = [s('8f01'), s('2a')];
  const follower = new EtcdCrlFollower(path, async () => now);
  await follower.refresh();
  t.same(readEtcdCrlFile(path).map((x) => x.serial), ['2a', '8f01']);
  now = []; // the CRLs in etcd stopped verifying (garbage put there, a wrong root)
  await follower.refresh();
  t.same(readEtcdCrlFile(path).map((x) => x.serial), ['2a', '8f01'], 'still listed');
  now = [s('77')];
  await follower.refresh();
  t.same(readEtcdCrlFile(path).map((x) => x.serial), ['2a', '77', '8f01'], 'grown');
  const text = spawnSync('openssl', ['crl', '-inform', 'DER', '-in', path, '-noout', '-text'], { encoding: 'utf8' });
  t.match(text.stdout, /Serial Number: 8F01/i, 'openssl reads the serials');
  t.match(text.stdout, /not a CA CRL/, 'and the issuer says what it is');
});

t.test('refreshes run one at a time; a failed one is tried again by the next', async (t) => {
  const path = join(dir, 'serial.crl');
  let calls = 0;
  let inFlight = 0;
  let most = 0;
  let fail = true;
  const errors: string[] = [];
  const follower = new EtcdCrlFollower(
    path,
    async () => {
      calls++;
      most = Math.max(most, ++inFlight);
      await new Promise((r) => setTimeout(r, 20));
      inFlight--;
      if (fail) throw new Error('etcd away');
      return [s('c0')];
    },
    undefined,
    (e) => errors.push(e.message),
  );
  await Promise.all([follower.refresh(), follower.refresh(), follower.refresh()]);
  t.equal(most, 1, 'never two at once');
  t.equal(calls, 2, 'the ones asked for meanwhile ran once more, after');
  t.same(errors, ['etcd away', 'etcd away']);
  t.same(readEtcdCrlFile(path), [], 'nothing written');
  fail = false;
  await follower.refresh();
  t.same(readEtcdCrlFile(path).map((x) => x.serial), ['c0'], 'the next refresh writes it');
});
