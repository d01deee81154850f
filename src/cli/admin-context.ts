// `themis-admin context show`: which etcd, certificates, cluster and CRLs a command would use
// when the command line does not name them, and where each comes from (cli-context.ts).
import { contextFilePath, loadContext, CONTEXT_FIELDS, type ContextFlag } from './cli-context.js';
import { parseFlags, UsageError } from './cli-common.js';

export const CONTEXT_USAGE = `themis-admin context show [--json]
  What commands take when a flag is left out: --cluster, --etcd, --ca, --crls, --cert, --key,
  --operator-cert, --operator-key, --key-passphrase-file, from $THEMIS_CLUSTER, $THEMIS_ETCD, …
  or the current context of $THEMIS_CONFIG (default ~/.config/themis/admin.json); a flag on
  the command line always wins. --context NAME (or $THEMIS_CONTEXT) picks another context.`;

export async function contextCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub !== 'show') throw new UsageError(`unknown context command "${sub ?? ''}"; use context show`);
  const { values } = parseFlags(rest, { json: { type: 'boolean' } });
  // Reads the context again, without the defaults parseFlags would have filled in.
  const selected = process.argv.find((a, i) => process.argv[i - 1] === '--context') ?? process.argv.find((a) => a.startsWith('--context='))?.slice(10);
  const ctx = loadContext(selected);
  if (values.json) {
    process.stdout.write(JSON.stringify({ file: ctx.file ?? null, context: ctx.name ?? null, values: ctx.values }, null, 2) + '\n');
    return;
  }
  process.stdout.write(`context file: ${ctx.file ?? `none (${contextFilePath()} does not exist)`}\ncontext: ${ctx.name ?? 'none'}\n`);
  for (const flag of Object.keys(CONTEXT_FIELDS) as ContextFlag[]) {
    const v = ctx.values[flag];
    process.stdout.write(`--${flag.padEnd(20)} ${v ? `${v.value}   (${v.source})` : '-'}\n`);
  }
}
