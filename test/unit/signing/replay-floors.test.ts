// The persisted high-water marks that carry replay protection across a restart: written (fsync,
// rename) before a request above them is accepted, renewed ahead of need, read back at start.
// Real files in a temporary folder; a fake clock.
import t from 'tap';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReplayFloors } from '../../../src/signing/replay-floors.js';
import { ReplayGuard } from '../../../src/signing/replay-guard.js';
import { FakeClock } from '../../../src/runtime.js';

const dir = mkdtempSync(join(tmpdir(), 'replay-floors-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const freshFile = () => join(dir, `replay-${++n}.json`);
const onDisk = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as { version: number; written_at: number; floors: Record<string, number> };

t.test('a first request waits for its mark on disk; later ones inside the reservation do not', async (t) => {
  const clock = new FakeClock(1_000_000_000);
  const file = freshFile();
  const f = await ReplayFloors.open({ file, clock, reserveMs: 1000, windowMs: 60_000 });
  t.equal(f.quietMs(), 0, 'no previous run: nothing to wait for');
  const ts = clock.now();
  const first = f.cover('shard-001', ts);
  t.ok(first instanceof Promise, 'the first request of a sender waits for the write');
  await first;
  t.same(onDisk(file).floors, { 'shard-001': ts + 1000 }, 'reserved 1 s ahead');
  t.equal(f.cover('shard-001', ts + 400), undefined, 'covered: no wait, no write');
  // Within half the reserve of the mark: renewed ahead, still without waiting.
  clock.advance(600);
  t.equal(f.cover('shard-001', ts + 600), undefined, 'still covered by the mark on disk');
  await f.settled();
  t.same(onDisk(file).floors, { 'shard-001': ts + 1600 }, 'renewed ahead of need');
  t.equal(onDisk(file).written_at, clock.now());
});

t.test('after a restart, the guard refuses every request of a sender up to its mark, and the mesh port waits out the reserve', async (t) => {
  const clock = new FakeClock(1_000_000_000);
  const file = freshFile();
  const before = await ReplayFloors.open({ file, clock, reserveMs: 1000, windowMs: 60_000 });
  const accepted = clock.now();
  await before.cover('shard-001', accepted);
  await before.cover('shard-002', accepted - 5000); // a sender whose clock is 5 s behind
  clock.advance(300); // the restart
  const after = await ReplayFloors.open({ file, clock, reserveMs: 1000, windowMs: 60_000 });
  t.same(Object.fromEntries(after.loaded.floors), { 'shard-001': accepted + 1000, 'shard-002': accepted - 4000 });
  t.equal(after.quietMs(), 701, 'until 1 s after the last write');
  const guard = new ReplayGuard(clock, { floors: after.loaded.floors, floorAll: after.loaded.floorAll });
  t.throws(() => guard.checkAndRemember('shard-001', 'aaaaaaaaaaaaaaaa', accepted), { code: 'REPLAY_DETECTED' }, 'the accepted request, replayed');
  t.throws(() => guard.checkAndRemember('shard-001', 'bbbbbbbbbbbbbbbb', accepted + 1000), { code: 'REPLAY_DETECTED' }, 'anything up to the mark');
  t.doesNotThrow(() => guard.checkAndRemember('shard-001', 'cccccccccccccccc', accepted + 1001), 'a fresh one after the quiet time');
  t.doesNotThrow(() => guard.checkAndRemember('shard-002', 'dddddddddddddddd', accepted - 3999), 'each sender by its own clock');
  t.doesNotThrow(() => guard.checkAndRemember('shard-003', 'eeeeeeeeeeeeeeee', accepted - 50_000), 'a sender with no mark');
  // The marks of the previous run are never written lower.
  await after.cover('shard-003', clock.now());
  t.equal(onDisk(file).floors['shard-001'], accepted + 1000);
  clock.advance(10_000);
  t.equal(after.quietMs(), 0, 'a restart longer than the reserve waits for nothing');
});

t.test('marks that can no longer refuse anything are dropped', async (t) => {
  const clock = new FakeClock(1_000_000_000);
  const file = freshFile();
  const f = await ReplayFloors.open({ file, clock, reserveMs: 1000, windowMs: 60_000 });
  await f.cover('old', clock.now());
  clock.advance(62_000);
  await f.cover('new', clock.now());
  t.same(Object.keys(onDisk(file).floors), ['new']);
});

t.test('an unreadable state file fails closed: every sender refused up to now + window', async (t) => {
  const clock = new FakeClock(1_000_000_000);
  const file = freshFile();
  writeFileSync(file, '{"version": 1, "floo');
  const f = await ReplayFloors.open({ file, clock, reserveMs: 1000, windowMs: 60_000 });
  t.match(f.loaded.problem, /not a replay state file/);
  t.equal(f.loaded.floorAll, clock.now() + 60_000);
  const guard = new ReplayGuard(clock, { floors: f.loaded.floors, floorAll: f.loaded.floorAll });
  t.throws(() => guard.checkAndRemember('anyone', 'aaaaaaaaaaaaaaaa', clock.now() + 59_000), { code: 'REPLAY_DETECTED' });
  t.doesNotThrow(() => guard.checkAndRemember('anyone', 'bbbbbbbbbbbbbbbb', clock.now() + 60_001));
  await f.cover('anyone', clock.now() + 60_001);
  t.equal(onDisk(file).version, 1, 'the next write replaces it');
});

t.test('a failed write refuses the requests that needed it (503), and the next write succeeds', async (t) => {
  const clock = new FakeClock(1_000_000_000);
  // A folder that does not exist yet (root would write through a read-only one).
  const sub = join(dir, 'later');
  const file = join(sub, 'replay.json');
  const errors: string[] = [];
  const f = await ReplayFloors.open({ file, clock, reserveMs: 1000, windowMs: 60_000, onWriteError: (e) => errors.push(e.message) });
  await t.rejects(f.cover('shard-001', clock.now()) as Promise<void>, { code: 'REPLAY_STATE_UNAVAILABLE', status: 503 });
  t.equal(errors.length, 1, 'told of the failure');
  await t.rejects(f.cover('shard-001', clock.now() + 1) as Promise<void>, { code: 'REPLAY_STATE_UNAVAILABLE' }, 'still failing closed');
  mkdirSync(sub);
  chmodSync(sub, 0o700);
  await f.cover('shard-001', clock.now() + 2);
  t.equal(onDisk(file).floors['shard-001'], clock.now() + 1000, 'the mark the failed writes wanted');
});

// Found by mutation testing (docs/testing.md): the edges of each decision.
t.test('a missing file is a first start; any other read error, or a malformed file, fails closed', async (t) => {
  const clock = new FakeClock(1_000_000_000);
  const fresh = await ReplayFloors.open({ file: freshFile(), clock, reserveMs: 1000, windowMs: 60_000 });
  t.same([fresh.loaded.floors.size, fresh.loaded.floorAll, fresh.loaded.problem, fresh.loaded.writtenAt], [0, -Infinity, undefined, undefined]);
  const folder = freshFile();
  mkdirSync(folder);
  const unreadable = await ReplayFloors.open({ file: folder, clock, reserveMs: 1000, windowMs: 60_000 });
  t.match(unreadable.loaded.problem, new RegExp(`^cannot read ${folder}: EISDIR`));
  t.equal(unreadable.loaded.floorAll, clock.now() + 60_000);
  const bad: [string, RegExp][] = [
    ['{"version":2,"written_at":1,"floors":{}}', /not a version 1 replay state/],
    ['{"version":1,"written_at":"1","floors":{}}', /not a version 1 replay state/],
    ['{"version":1,"written_at":1,"floors":null}', /not a version 1 replay state/],
    ['{"version":1,"written_at":1,"floors":"x"}', /not a version 1 replay state/],
    ['{"version":1,"written_at":1,"floors":{"shard-001":"5"}}', /bad mark for shard-001/],
    ['{"version":1,"written_at":1,"floors":{"shard-001":1e999}}', /bad mark for shard-001/],
  ];
  for (const [text, why] of bad) {
    const file = freshFile();
    writeFileSync(file, text);
    const f = await ReplayFloors.open({ file, clock, reserveMs: 1000, windowMs: 60_000 });
    t.match(f.loaded.problem, why, text);
    t.equal(f.loaded.floorAll, clock.now() + 60_000, `${text}: fails closed`);
  }
  const good = freshFile();
  writeFileSync(good, '{"version":1,"written_at":7,"floors":{"shard-001":5}}');
  const ok = await ReplayFloors.open({ file: good, clock, reserveMs: 1000, windowMs: 60_000 });
  t.same([Object.fromEntries(ok.loaded.floors), ok.loaded.floorAll, ok.loaded.writtenAt, ok.loaded.problem], [{ 'shard-001': 5 }, -Infinity, 7, undefined]);
});

t.test('probe: a writable folder passes and keeps no probe file; a missing one throws', async (t) => {
  const clock = new FakeClock(1_000_000_000);
  const file = freshFile();
  const f = await ReplayFloors.open({ file, clock, reserveMs: 1000, windowMs: 60_000 });
  await f.probe();
  t.throws(() => readFileSync(`${file}.probe`), { code: 'ENOENT' }, 'the probe file is removed');
  const nowhere = await ReplayFloors.open({ file: join(dir, 'missing', 'replay.json'), clock, reserveMs: 1000, windowMs: 60_000 });
  await t.rejects(nowhere.probe(), { code: 'ENOENT' });
});

t.test('covered exactly at the mark; renewed only once within half the reserve', async (t) => {
  const clock = new FakeClock(1_000_000_000);
  const file = freshFile();
  const f = await ReplayFloors.open({ file, clock, reserveMs: 1000, windowMs: 60_000 });
  const ts = clock.now();
  await f.cover('s', ts);
  t.equal(f.cover('s', ts + 500), undefined, 'half the reserve below the mark: covered');
  await f.settled();
  t.equal(onDisk(file).floors.s, ts + 1000, 'and not renewed yet (exactly half the reserve away)');
  t.equal(f.cover('s', ts + 1000), undefined, 'a timestamp equal to the mark on disk is covered');
  await f.settled();
  t.equal(onDisk(file).floors.s, ts + 2000, 'renewed ahead');
  t.ok(readFileSync(file, 'utf8').endsWith('}\n'), 'the file is one line of JSON');
});

t.test('a request waits for a write that holds its mark: the one in flight, or the next', async (t) => {
  const clock = new FakeClock(1_000_000_000);
  const file = freshFile();
  const f = await ReplayFloors.open({ file, clock, reserveMs: 1000, windowMs: 60_000 });
  const ts = clock.now();
  const a = f.cover('a', ts) as Promise<void>;
  // While a's write is in flight: b is not in it, so b waits for the next write.
  const b = f.cover('b', ts) as Promise<void>;
  // And a again, at exactly a's mark in flight: that write is enough.
  const a2 = f.cover('a', ts + 1000) as Promise<void>;
  await a2;
  t.equal(onDisk(file).floors.a, ts + 1000, 'a2 answered once the write in flight, holding its mark, was on disk');
  await b;
  t.equal(onDisk(file).floors.b, ts + 1000, "b answered only once its own mark was on disk");
  await a;
  await f.settled();
  t.same(onDisk(file).floors, { a: ts + 2000, b: ts + 1000 }, 'nothing lost between the two writes');
});

t.test('marks at exactly now − window are kept; older ones dropped', async (t) => {
  const clock = new FakeClock(1_000_000_000);
  const file = freshFile();
  const f = await ReplayFloors.open({ file, clock, reserveMs: 1000, windowMs: 60_000 });
  await f.cover('edge', clock.now());
  await f.cover('older', clock.now() - 1);
  clock.advance(61_000);
  await f.cover('new', clock.now());
  t.same(Object.keys(onDisk(file).floors).sort(), ['edge', 'new']);
});

t.test('a failed write names its cause in the refusal', async (t) => {
  const clock = new FakeClock(1_000_000_000);
  const f = await ReplayFloors.open({ file: join(dir, 'nowhere', 'replay.json'), clock, reserveMs: 1000, windowMs: 60_000 });
  await t.rejects(f.cover('s', clock.now()) as Promise<void>, { message: /^the replay guard cannot persist its high-water mark \(ENOENT.*\); retry shortly$/ });
});
