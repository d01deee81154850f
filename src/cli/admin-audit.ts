// `themis-admin audit verify FILE [--prev HASH]`: checks an audit trail's hash chain and
// names the first tampered, removed or reordered line. Exit 0 intact, 1 broken.
import { verifyChainFile } from '../audit/verify-chain.js';
import { parseFlags, UsageError } from './cli-common.js';

export const AUDIT_USAGE = `themis-admin audit verify FILE… [--prev HASH] [--json]
  Checks the SHA-256 chain of one audit file, or of rotated files given oldest first (each must
  carry on from the one before). --prev is the last hash of the file before the first one.
  Exit status 1 names the file and the first broken line.`;

export async function auditCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub !== 'verify') throw new UsageError(`unknown audit command "${sub ?? ''}"; use verify`);
  const { values, positionals } = parseFlags(rest, { prev: { type: 'string' }, json: { type: 'boolean' } });
  if (positionals.length === 0) throw new UsageError('audit verify needs at least one FILE');
  if (values.prev !== undefined && !/^[0-9a-f]{64}$/.test(values.prev)) throw new UsageError('--prev must be 64 lower-case hex digits');
  let prev = values.prev;
  for (const file of positionals) {
    let r;
    try {
      r = verifyChainFile(file, prev);
    } catch (e) {
      throw new Error(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    if (values.json) process.stdout.write(JSON.stringify({ file, ...r }) + '\n');
    else if (r.ok) process.stdout.write(`${file}: intact, ${r.lines} lines, last hash ${r.lastHash}\n`);
    else process.stdout.write(`${file}: BROKEN at line ${r.line}: ${r.reason}\n`);
    if (!r.ok) {
      process.exitCode = 1;
      return;
    }
    prev = r.lastHash;
  }
}
