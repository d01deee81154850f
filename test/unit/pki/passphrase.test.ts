import t from 'tap';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findPassphrase, requirePassphrase } from '../../../src/pki/passphrase.js';

// The prompt itself is tested through a real pty in pki-cli.test.ts.
const source = { purpose: 'the cluster CA key', fileFlag: '--passphrase-file', envVar: 'TEST_PKI_PASS', interactive: false };

t.test('a file wins over the environment; only its first line counts', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'themis-pass-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'p');
  await writeFile(file, 'from the file\r\nsecond line\n');
  t.equal(await findPassphrase({ ...source, file, env: { TEST_PKI_PASS: 'from env' } }), 'from the file');
  t.equal(await findPassphrase({ ...source, env: { TEST_PKI_PASS: 'from env' } }), 'from env');
  await writeFile(file, '\nx\n');
  await t.rejects(findPassphrase({ ...source, file }), { field: '--passphrase-file', message: /is empty; its first line is the passphrase/ });
  await t.rejects(findPassphrase({ ...source, file: join(dir, 'missing') }), { code: 'NOT_FOUND', message: /cannot read .*missing \(ENOENT\)/ });
});

t.test('no source and no terminal: an error that says what to set', async (t) => {
  t.equal(await findPassphrase({ ...source, env: {} }), undefined);
  t.equal(await findPassphrase({ ...source, env: { TEST_PKI_PASS: '' } }), undefined, 'an empty variable is no passphrase');
  await t.rejects(requirePassphrase({ ...source, env: {} }), {
    code: 'PASSPHRASE_REQUIRED',
    message: 'passphrase: the cluster CA key needs a passphrase and there is no terminal to ask on; set TEST_PKI_PASS or pass --passphrase-file FILE',
  });
});
