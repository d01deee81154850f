// Where key passphrases come from: a file named by a flag, an environment variable, or a
// hidden prompt on the terminal — never a command-line argument. With none, a clear error.
import { promises as fs } from 'node:fs';
import { PkiError } from './errors.js';

export interface PassphraseSource {
  /** What the passphrase is for, in messages: "the cluster CA key". */
  purpose: string;
  /** The flag that names a file (`--passphrase-file`) and its value, if given. */
  fileFlag: string;
  file?: string;
  envVar: string;
  env?: NodeJS.ProcessEnv;
  /** Ask twice on a terminal (for a key being created). */
  confirm?: boolean;
  /** Whether a prompt is possible; default: stdin and stderr are terminals. */
  interactive?: boolean;
}

export const PASSPHRASE_ENV = {
  ca: 'THEMIS_PKI_PASSPHRASE',
  newCa: 'THEMIS_PKI_NEW_PASSPHRASE',
  leafKey: 'THEMIS_PKI_KEY_PASSPHRASE',
} as const;

/** The first line of the file, without its line ending. */
export async function passphraseFromFile(path: string, flag: string): Promise<string> {
  let text: string;
  try {
    text = await fs.readFile(path, 'utf8');
  } catch (e) {
    throw new PkiError('NOT_FOUND', flag, `cannot read ${path} (${(e as NodeJS.ErrnoException).code})`);
  }
  const line = text.split(/\r?\n/)[0] ?? '';
  if (line.length === 0) throw new PkiError('INVALID_ARGUMENT', flag, `${path} is empty; its first line is the passphrase`);
  return line;
}

/** Flag file, else environment variable, else terminal prompt, else undefined. */
export async function findPassphrase(s: PassphraseSource): Promise<string | undefined> {
  if (s.file !== undefined) return passphraseFromFile(s.file, s.fileFlag);
  const env = (s.env ?? process.env)[s.envVar];
  if (env !== undefined && env !== '') return env;
  if (s.interactive ?? (process.stdin.isTTY === true && process.stderr.isTTY === true)) {
    const first = await promptHidden(`Passphrase for ${s.purpose}: `);
    if (s.confirm && (await promptHidden('Again, to confirm: ')) !== first) {
      throw new PkiError('INVALID_ARGUMENT', 'passphrase', 'the two entries differ');
    }
    return first;
  }
  return undefined;
}

export async function requirePassphrase(s: PassphraseSource): Promise<string> {
  const p = await findPassphrase(s);
  if (p === undefined) {
    throw new PkiError(
      'PASSPHRASE_REQUIRED',
      'passphrase',
      `${s.purpose} needs a passphrase and there is no terminal to ask on; set ${s.envVar} or pass ${s.fileFlag} FILE`,
    );
  }
  return p;
}

/** Reads one line from the terminal without echoing it. */
export function promptHidden(question: string): Promise<string> {
  const stdin = process.stdin;
  return new Promise((resolve, reject) => {
    let buf = '';
    stdin.setRawMode(true); // before the question, so an answer typed at once is not echoed
    process.stderr.write(question);
    stdin.resume();
    stdin.setEncoding('utf8');
    const done = (err?: Error) => {
      stdin.removeListener('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(buf);
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') return done();
        if (ch === '\u0003') return done(new PkiError('PASSPHRASE_REQUIRED', 'passphrase', 'interrupted'));
        if (ch === '\u007f' || ch === '\b') buf = buf.slice(0, -1);
        else buf += ch;
      }
    };
    stdin.on('data', onData);
  });
}
