// A SoftHSM2 token made for one test run: its own config and token folder (SOFTHSM2_CONF),
// initialised with softhsm2-util from Debian's softhsm2 (ensure-system-deps installs it).
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';

export interface SoftHsmToken {
  label: string;
  dir: string;
  /** Environment for every process that opens the token. */
  env: { SOFTHSM2_CONF: string };
  pin: string;
  pinFile: string;
  cleanup(): Promise<void>;
}

export async function createSoftHsmToken(label = 'themis-ca'): Promise<SoftHsmToken> {
  const dir = await mkdtemp(join(tmpdir(), 'themis-softhsm-'));
  mkdirSync(join(dir, 'tokens'), { mode: 0o700 });
  const conf = join(dir, 'softhsm2.conf');
  await writeFile(conf, `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  const pin = '246810';
  const r = spawnSync('softhsm2-util', ['--init-token', '--free', '--label', label, '--pin', pin, '--so-pin', '13579111'], { env: { ...process.env, SOFTHSM2_CONF: conf }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`softhsm2-util --init-token: ${r.stderr}${r.stdout}`);
  const pinFile = join(dir, 'pin');
  await writeFile(pinFile, `${pin}\n`, { mode: 0o600 });
  return { label, dir, env: { SOFTHSM2_CONF: conf }, pin, pinFile, cleanup: () => rm(dir, { recursive: true, force: true }) };
}
