import t, { type Test } from 'tap';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFiles, type PlannedFile } from '../../../src/pki/write-plan.js';
import { snapshot } from '../../support/pki-fixture.js';

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'themis-write-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

t.test('files are written with mode 0600 and directories 0700, whatever the umask', async (t) => {
  const dir = await tempDir(t);
  const old = process.umask(0o000);
  t.teardown(() => void process.umask(old));
  const files: PlannedFile[] = [
    { path: join(dir, 'a/b/key.pem'), kind: 'private-key', contents: 'secret' },
    { path: join(dir, 'a/b/cert.pem'), kind: 'certificate', contents: 'public' },
  ];
  const written = await writeFiles(files, false);
  t.same(written.map((w) => w.mode), ['0600', '0600']);
  for (const f of files) t.equal((await stat(f.path)).mode & 0o777, 0o600, f.path);
  t.equal((await stat(join(dir, 'a'))).mode & 0o777, 0o700);
  t.equal(await readFile(files[0]!.path, 'utf8'), 'secret');
});

t.test('an existing target refuses the whole plan before anything is written', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'exists.pem'), 'old');
  const before = await snapshot(dir);
  const plan: PlannedFile[] = [
    { path: join(dir, 'new/first.pem'), kind: 'certificate', contents: 'x' },
    { path: join(dir, 'exists.pem'), kind: 'certificate', contents: 'new' },
  ];
  await t.rejects(writeFiles(plan, false), {
    code: 'FILE_EXISTS',
    field: join(dir, 'exists.pem'),
    message: /already exists; pass --force to overwrite it/,
  });
  t.same(await snapshot(dir), before, 'no file and no directory appeared');
  await writeFiles(plan, true);
  t.equal(await readFile(join(dir, 'exists.pem'), 'utf8'), 'new', '--force overwrites');
});

t.test("replace: 'always' files (state, published CRL) update without --force", async (t) => {
  const dir = await tempDir(t);
  const f: PlannedFile = { path: join(dir, 'state.json'), kind: 'state', contents: '1', replace: 'always' };
  await writeFiles([f], false);
  await writeFiles([{ ...f, contents: '2' }], false);
  t.equal(await readFile(f.path, 'utf8'), '2');
});

t.test('a failure half-way removes what this call wrote', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'blocker'), 'a file where a directory should be');
  const before = await snapshot(dir);
  const plan: PlannedFile[] = [
    { path: join(dir, 'ok/one.pem'), kind: 'certificate', contents: 'x' },
    { path: join(dir, 'blocker/two.pem'), kind: 'certificate', contents: 'y' },
  ];
  await t.rejects(writeFiles(plan, false), { message: /blocker.*cannot write \(E(EXIST|NOTDIR)\); nothing was written/ });
  t.same(await snapshot(dir), before, 'the directory made for ok/one.pem is gone again');
});

t.test('a failure while renaming into place removes the files already renamed', async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, 'is-a-dir.pem/inner'), { recursive: true });
  const before = await snapshot(dir);
  const plan: PlannedFile[] = [
    { path: join(dir, 'first.pem'), kind: 'certificate', contents: 'x' },
    { path: join(dir, 'is-a-dir.pem'), kind: 'certificate', contents: 'y' },
  ];
  await t.rejects(writeFiles(plan, true), { message: /nothing was written/ });
  t.same(await snapshot(dir), before, 'first.pem and every temporary file removed');
});

t.test('the same path twice in one plan is refused', async (t) => {
  const dir = await tempDir(t);
  const f: PlannedFile = { path: join(dir, 'x.pem'), kind: 'certificate', contents: 'x' };
  await t.rejects(writeFiles([f, f], false), { code: 'INVALID_ARGUMENT', message: /written twice/ });
});
