// What every operator CLI shares: argument parsing that turns unknown or malformed flags
// into a one-line usage error, and a single exit path for errors (status 2 for usage, 1 otherwise).
import { parseArgs, type ParseArgsConfig } from 'node:util';

export class UsageError extends Error {
  override name = 'UsageError';
}

export type Options = NonNullable<ParseArgsConfig['options']>;

export function parseFlags<O extends Options>(argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: true });
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/\. To specify.*$/s, ''));
  }
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

/** Runs a CLI main; prints errors as one line on stderr and sets the exit status. */
export async function runCli(program: string, main: () => Promise<void>): Promise<void> {
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
