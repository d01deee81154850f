// `npm run bench -- faults [--rounds N]`: the fault trials that need repetitions, N rounds of each
// (default 1). Part of them run in `npm test` as well; here every trial runs, as tap tests on real
// processes (the test files' own harness and checks: every acknowledged write reads back after
// each fault). THEMIS_FAULT_TRIALS=all selects the trials `npm test` leaves to this bench.
import { parseArgs } from 'node:util';
import { runTap } from './run-tap.js';

/** The files with trials kept to this bench (and a few in `npm test`). */
export const FAULT_FILES = ['test/integration/rebalance-kill.test.ts'];

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { rounds: { type: 'string' }, help: { type: 'boolean' } }, strict: true });
  if (values.help) return void console.log('usage: npm run bench -- faults [--rounds 1]');
  const rounds = Number(values.rounds ?? 1);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 50) throw new Error('--rounds: a whole number from 1 to 50');
  const failed: number[] = [];
  for (let round = 1; round <= rounds; round++) {
    process.stdout.write(`\n# fault trials, round ${round} of ${rounds}\n`);
    if (runTap(process.execPath, ['--timeout', '900', ...FAULT_FILES], { THEMIS_FAULT_TRIALS: 'all' }) !== 0) failed.push(round);
  }
  process.stdout.write(`\n# fault trials: ${rounds - failed.length} of ${rounds} rounds passed${failed.length ? ` (failed: ${failed.join(', ')})` : ''}\n`);
  if (failed.length) process.exitCode = 1;
}
