// `npm run bench -- <name> [flags]`: runs one of the project's benchmarks and prints its figures.
const [name, ...rest] = process.argv.slice(2);
const benches: Record<string, string> = {
  ring: './bench-ring.js',
  mesh: './bench-mesh.js',
  query: './bench-query.js',
  changefeed: './bench-changefeed.js',
  replication: './bench-replication.js',
  rebalance: './bench-rebalance.js',
  backup: './bench-backup.js',
  faults: './bench-faults.js',
};
const file = name ? benches[name] : undefined;
if (!file) {
  console.error(`usage: npm run bench -- <${Object.keys(benches).join('|')}> [flags]`);
  process.exit(2);
}
const mod = (await import(file)) as { main(argv: string[]): Promise<void> };
try {
  await mod.main(rest);
} catch (e) {
  // A bad flag: one line naming it (usage status 2); anything else keeps its stack trace.
  const err = e as Error & { code?: string };
  if (!(err.code?.startsWith('ERR_PARSE_ARGS') || err.message.startsWith('--'))) throw e;
  console.error(`bench ${name}: ${err.message}`);
  process.exitCode = 2;
}
