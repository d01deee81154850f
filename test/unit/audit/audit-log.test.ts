import t from 'tap';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditLog, GENESIS } from '../../../src/audit/audit-log.js';
import { FakeClock } from '../../../src/runtime.js';

const dir = mkdtempSync(join(tmpdir(), 'themis-audit-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

t.test('each line carries the SHA-256 of the line before; a reopened file continues the chain', async (t) => {
  const file = join(dir, 'a.log');
  const clock = new FakeClock(Date.UTC(2026, 10, 26));
  const a = new AuditLog({ file, source: 'shard-001', clock });
  a.record({ event: 'MTLS_CONNECTION_SUCCESS', peer: { shardId: 'shard-002', serial: 'ab' } });
  a.record({ event: 'SIGNATURE_FAILED', reason: 'SIGNATURE_INVALID', peer: { serial: 'ab' } });
  a.close();
  const b = new AuditLog({ file, source: 'shard-001', clock });
  b.record({ event: 'CRL_APPLIED', reason: 'SIGHUP' });
  b.close();
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  t.equal(lines.length, 3);
  t.equal(JSON.parse(lines[0]!).prev, GENESIS);
  t.equal(JSON.parse(lines[1]!).prev, sha(lines[0]!));
  t.equal(JSON.parse(lines[2]!).prev, sha(lines[1]!), 'chain continues across reopen');
  t.match(JSON.parse(lines[1]!), { event: 'SIGNATURE_FAILED', source: 'shard-001', reason: 'SIGNATURE_INVALID', time: '2026-11-26T00:00:00.000Z' });
});

t.test('limited events: the first per key is written at once, repeats become one counted line', async (t) => {
  const file = join(dir, 'b.log');
  const counted: [string, number][] = [];
  const a = new AuditLog({ file, source: 's', clock: new FakeClock(), onEvent: (e, n) => counted.push([e, n]) });
  for (let i = 0; i < 1000; i++) a.recordLimited('tls_version|127.0.0.9|', { event: 'MTLS_CONNECTION_FAILED', reason: 'tls_version' });
  a.recordLimited('revoked|127.0.0.9|ab', { event: 'MTLS_CONNECTION_FAILED', reason: 'revoked' });
  t.equal(readFileSync(file, 'utf8').trim().split('\n').length, 2, 'one line per key so far');
  a.flushAggregates();
  const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  t.equal(lines.length, 3);
  t.match(lines[2], { event: 'MTLS_CONNECTION_FAILED', reason: 'tls_version', count: 999, aggregated: true });
  t.same(counted.reduce((n, [, c]) => n + c, 0), 1001, 'every occurrence counted');
  a.close();
});

t.test('a failing disk does not throw into the caller', async (t) => {
  const errors: Error[] = [];
  const a = new AuditLog({ file: '/dev/full', source: 's', clock: new FakeClock(), onWriteError: (e) => errors.push(e) });
  t.doesNotThrow(() => a.record({ event: 'MTLS_CONNECTION_FAILED', reason: 'tls_version' }));
  t.doesNotThrow(() => a.close());
  t.ok(errors.length >= 1, 'the failure was reported');
});

t.test('rotation by size keeps the chain: each new file carries on from the last hash of the old one', async (t) => {
  const { readdirSync } = await import('node:fs');
  const { verifyChain } = await import('../../../src/audit/verify-chain.js');
  const sub = mkdtempSync(join(dir, 'rot-'));
  const file = join(sub, 'audit.log');
  const a = new AuditLog({ file, source: 's', clock: new FakeClock(), maxBytes: 2000 });
  for (let i = 0; i < 60; i++) a.record({ event: 'SIGNATURE_FAILED', reason: `r${i}`, peer: { serial: 'ab' } });
  a.close();
  const rotated = readdirSync(sub)
    .filter((f) => f !== 'audit.log')
    .sort((x, y) => Number(x.split('-').pop()) - Number(y.split('-').pop()));
  t.ok(rotated.length >= 3, `${rotated.length} rotated files`);
  let prev: string | undefined;
  let total = 0;
  for (const f of [...rotated, 'audit.log']) {
    const r = verifyChain(readFileSync(join(sub, f), 'utf8'), prev);
    t.ok(r.ok, `${f} continues the chain`);
    if (r.ok) {
      prev = r.lastHash;
      total += r.lines;
    }
  }
  t.equal(total, 60, 'no line lost across rotations');
  t.notOk(verifyChain(readFileSync(join(sub, rotated[1]!), 'utf8')).ok, 'a middle file alone does not start a chain');
});
