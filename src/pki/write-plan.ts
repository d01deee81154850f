// All-or-nothing file output for the PKI: every target is checked before anything is written,
// every file gets mode 0600 (directories 0700), nothing is overwritten without force, and a
// failure half-way removes what this call already wrote.
import { constants, promises as fs } from 'node:fs';
import { dirname, relative } from 'node:path';
import { randomBytes } from 'node:crypto';
import { PkiError } from './errors.js';

export type FileKind = 'certificate' | 'chain' | 'private-key' | 'crl' | 'state' | 'audit' | 'pkcs11-key-reference';

export interface PlannedFile {
  path: string;
  kind: FileKind;
  contents: string;
  /** 'always' for bookkeeping the PKI itself updates (state.json, the published crl.pem). */
  replace?: 'force' | 'always';
}

export interface WrittenFile {
  path: string;
  kind: FileKind;
  mode: string; // "0600"
}

/** Keys and public files alike: an operator who publishes a CRL or certificate copies it. */
export function modeFor(_kind: FileKind): number {
  return 0o600;
}

async function exists(path: string): Promise<boolean> {
  try {
    await fs.lstat(path);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return false; // ENOTDIR: writing will fail, and say so
    throw e;
  }
}

/** Refuses (FILE_EXISTS, naming the first such file) before any byte is written. */
export async function checkTargets(files: readonly PlannedFile[], force: boolean): Promise<void> {
  const seen = new Set<string>();
  for (const f of files) {
    if (seen.has(f.path)) throw new PkiError('INVALID_ARGUMENT', f.path, 'would be written twice by one command');
    seen.add(f.path);
    const overwritable = f.replace === 'always' || force;
    if (!overwritable && (await exists(f.path))) {
      throw new PkiError('FILE_EXISTS', f.path, 'already exists; pass --force to overwrite it (or choose another --dir/--out)');
    }
  }
}

export async function writeFiles(files: readonly PlannedFile[], force: boolean): Promise<WrittenFile[]> {
  await checkTargets(files, force);
  const createdDirs: string[] = [];
  const temps: string[] = [];
  const created: string[] = [];
  try {
    for (const f of files) {
      const first = await fs.mkdir(dirname(f.path), { recursive: true, mode: 0o700 });
      if (first !== undefined) createdDirs.push(first);
    }
    const staged: Array<[PlannedFile, string]> = [];
    for (const f of files) {
      const tmp = `${f.path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
      const fh = await fs.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, modeFor(f.kind));
      temps.push(tmp);
      try {
        await fh.chmod(modeFor(f.kind)); // exact mode regardless of umask
        await fh.writeFile(f.contents);
        await fh.sync();
      } finally {
        await fh.close();
      }
      staged.push([f, tmp]);
    }
    for (const [f, tmp] of staged) {
      if (f.replace === 'always' || force) {
        const had = await exists(f.path);
        await fs.rename(tmp, f.path);
        if (!had) created.push(f.path);
      } else {
        await fs.link(tmp, f.path).catch((e: NodeJS.ErrnoException) => {
          if (e.code !== 'EEXIST') throw e;
          throw new PkiError('FILE_EXISTS', f.path, 'appeared while writing; nothing was written');
        });
        created.push(f.path);
        await fs.unlink(tmp);
      }
      temps.splice(temps.indexOf(tmp), 1);
    }
  } catch (e) {
    for (const p of [...temps, ...created]) await fs.rm(p, { force: true });
    for (const d of createdDirs.reverse()) await fs.rm(d, { recursive: true, force: true });
    if (e instanceof PkiError) throw e;
    const err = e as NodeJS.ErrnoException;
    throw new PkiError('INVALID_ARGUMENT', err.path ?? 'output', `cannot write (${err.code ?? err.message}); nothing was written`);
  }
  return files.map((f) => ({ path: f.path, kind: f.kind, mode: '0' + modeFor(f.kind).toString(8) }));
}

/** Paths relative to the working directory, for messages. */
export function shown(path: string): string {
  const r = relative(process.cwd(), path);
  return r.startsWith('..') || r === '' ? path : r;
}
