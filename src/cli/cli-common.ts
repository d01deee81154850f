// What every operator CLI shares: argument parsing that turns unknown or malformed flags
// into a one-line usage error, and a single exit path for errors (status 2 for usage, 1 otherwise).
import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';

export class UsageError extends Error {
  override name = 'UsageError';
}

export type Options = NonNullable<ParseArgsConfig['options']>;

/** Where flags not given on the command line come from (themis-admin's context: cli-context.ts). */
type FlagDefaults = (flag: string) => string | undefined;
let flagDefaults: FlagDefaults = () => undefined;
const filled = new WeakMap<object, Set<string>>();

/** Sets the source of defaults for string flags a command declares and the command line leaves out. */
export function setFlagDefaults(defaults: FlagDefaults): void {
  flagDefaults = defaults;
}

/** Whether `flag` in `values` (from parseFlags) came from the context rather than the command line. */
export function fromContext(values: object, flag: string): boolean {
  return filled.get(values)?.has(flag) ?? false;
}

export function parseFlags<O extends Options>(argv: string[], options: O) {
  let parsed: ReturnType<typeof parseArgs<{ args: string[]; options: O; strict: true; allowPositionals: true }>>;
  try {
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: true });
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/\. To specify.*$/s, ''));
  }
  const values = parsed.values as Record<string, unknown>;
  const set = new Set<string>();
  for (const [name, o] of Object.entries(options)) {
    if (o.type !== 'string' || o.multiple || values[name] !== undefined) continue;
    const d = flagDefaults(name);
    if (d === undefined) continue;
    values[name] = d;
    set.add(name);
  }
  filled.set(parsed.values, set);
  return parsed;
}

export function requireFlag(value: string | undefined, flag: string, example: string): string {
  if (value === undefined || value === '') throw new UsageError(`--${flag} is required, e.g. --${flag} ${example}`);
  return value;
}

export function intFlag(value: string | undefined, flag: string, dflt: number, min: number, max: number): number {
  if (value === undefined) return dflt;
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new UsageError(`--${flag} must be an integer from ${min} to ${max}, got "${value}"`);
  }
  return Number(value);
}

/** Reads the file a flag names; an unreadable one is a usage error naming the flag. */
export function readFlagFile(path: string, flag: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`--${flag}: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** --crls A.pem,B.pem,…: the CRL of every CA, as PEM texts. */
export function crlsFlag(value: string | undefined): string[] {
  return requireFlag(value, 'crls', 'root.crl.pem,cluster.crl.pem,operator.crl.pem,client.crl.pem')
    .split(',')
    .map((p) => readFlagFile(p, 'crls'));
}

/** --etcd https://HOST:PORT[,…]: etcd is always reached over TLS. */
export function etcdFlag(value: string | undefined): string[] {
  const list = requireFlag(value, 'etcd', 'https://127.0.0.1:2379').split(',').filter(Boolean);
  for (const e of list) if (!/^https:\/\/[^/]+:\d+$/.test(e)) throw new UsageError(`--etcd: "${e}" must be https://HOST:PORT (etcd is always reached over TLS)`);
  return list;
}

/**
 * Awaits one etcd call. A refusal of the `refusal` class (the call's own verdict, such as
 * "not newer") keeps its message; any other failure is reported as etcd's.
 */
export async function etcdCall<T>(call: Promise<T>, refusal?: abstract new (...args: never[]) => Error): Promise<T> {
  try {
    return await call;
  } catch (e) {
    if (refusal && e instanceof refusal) throw new Error(e.message);
    throw new Error(`etcd: ${(e as Error).message}`);
  }
}

export type Commands = Record<string, (argv: string[]) => Promise<void>>;

/**
 * `program <command> …`: runs the command from the table (through runCli); `help`, `-h`,
 * `--help` or no command prints the usage (a function: built only then), an unknown one is a usage error.
 */
export function runCommands(program: string, usage: string | (() => Promise<string>), commands: Commands, prepare: (argv: string[]) => string[] = (a) => a): Promise<void> {
  return runCli(program, async () => {
    const [cmd, ...rest] = prepare(process.argv.slice(2));
    if (cmd === undefined || cmd === 'help' || cmd === '--help' || cmd === '-h') return void process.stdout.write(typeof usage === 'string' ? usage : await usage());
    const run = Object.hasOwn(commands, cmd) ? commands[cmd] : undefined;
    if (!run) throw new UsageError(`unknown command "${cmd}"`);
    return run(rest);
  });
}

/** Runs a CLI main; prints errors as one line on stderr and sets the exit status. */
export async function runCli(program: string, main: () => Promise<void>): Promise<void> {
  exitQuietlyOnClosedPipe();
  try {
    await main();
  } catch (e) {
    const err = e as Error;
    const usage = err instanceof UsageError;
    process.stderr.write(`${program}: ${usage ? '' : 'error: '}${err.message}\n`);
    if (usage) process.stderr.write(`run '${program} help' for usage\n`);
    process.exitCode = usage ? 2 : 1;
  }
}

/**
 * `themis-admin topology diff … | head`: when the reader goes away, stop quietly (status 0, as
 * the pipeline's reader chose to stop) instead of dying with an EPIPE stack trace.
 */
export function exitQuietlyOnClosedPipe(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(0);
      throw e;
    });
  }
}
