import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditLog } from '../../src/audit/audit-log.js';
import { systemClock } from '../../src/runtime.js';
import { runProgram } from '../support/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'themis-audit-verify-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

// A real audit file, written by the sidecar's own AuditLog.
const original = join(dir, 'audit.log');
const log = new AuditLog({ file: original, source: 'shard-001', clock: systemClock });
for (let i = 0; i < 6; i++) log.record({ event: i % 2 ? 'SIGNATURE_FAILED' : 'MTLS_CONNECTION_SUCCESS', peer: { shardId: 'shard-002', serial: `a${i}` }, reason: `r${i}` });
log.close();
const lines = readFileSync(original, 'utf8').trim().split('\n');

function verify(name: string, content: string[]) {
  const file = join(dir, name);
  writeFileSync(file, content.join('\n') + '\n');
  return runProgram('themis-admin', ['audit', 'verify', file]);
}

t.test('an untouched file verifies', async (t) => {
  const r = runProgram('themis-admin', ['audit', 'verify', original]);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /intact, 6 lines/);
});

t.test('edits, removals, reorderings and truncation are found at the first broken line', async (t) => {
  const edited = [...lines];
  edited[2] = edited[2]!.replace('"r2"', '"nothing happened"');
  const cases: [string, string[], number][] = [
    ['edited line 3', edited, 4],
    ['removed line 2', [lines[0]!, ...lines.slice(2)], 2],
    ['swapped lines 4 and 5', [...lines.slice(0, 3), lines[4]!, lines[3]!, lines[5]!], 4],
    ['inserted forged line', [...lines.slice(0, 2), JSON.stringify({ event: 'CRL_APPLIED', prev: '0'.repeat(64) }), ...lines.slice(2)], 3],
    ['truncated last line', [...lines.slice(0, 5), lines[5]!.slice(0, 20)], 6],
    ['first line removed', lines.slice(1), 1],
  ];
  for (const [name, content, line] of cases) {
    const r = verify(name.replace(/\W+/g, '-'), content);
    t.equal(r.status, 1, name);
    t.match(r.stdout, new RegExp(`BROKEN at line ${line}:`), `${name}: ${r.stdout.trim()}`);
  }
});

t.test('a continued (rotated) file verifies from the previous file\'s last hash', async (t) => {
  const intact = runProgram('themis-admin', ['audit', 'verify', original, '--json']);
  const { lastHash } = JSON.parse(intact.stdout);
  const nextFile = join(dir, 'next.log');
  // A new file that carries on the chain: its first line's prev is the old file's last hash.
  writeFileSync(nextFile, JSON.stringify({ time: 'x', event: 'CRL_APPLIED', prev: lastHash }) + '\n');
  t.equal(runProgram('themis-admin', ['audit', 'verify', nextFile, '--prev', lastHash]).status, 0);
  t.equal(runProgram('themis-admin', ['audit', 'verify', nextFile]).status, 1, 'without --prev it does not start a chain');
});
