// themis-admin backup and restore on a real mesh (etcd, sidecars over mTLS, storage nodes): a
// backup taken while a write loop runs through the sidecars, the data directory destroyed, the
// shard restored — every change up to the backup's sequence number is there, none after it.
// Then each tampered or foreign backup is refused with its code, leaving the target untouched.
import t, { type Test } from 'tap';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { operatorArgs, startMesh, uuidOwnedBy, type Mesh } from '../support/mesh.js';
import { History, writeLoop } from '../support/history.js';
import { call } from '../support/storage-process.js';
import { PROGRAMS, ROOT, runProgramAsync } from '../support/cli.js';
import { findStrace, type StraceBinary } from '../support/strace.js';
import { differences, readFeed, scanAll, stateAt } from '../support/feed-state.js';
import { xxhsum64 } from '../support/xxhsum.js';
import { snapshot } from '../support/pki-fixture.js';

// About 80 s alone, beside another test file up to 2 min (tap's default limit is 120 s).
t.setTimeout(240_000);

let mesh: Mesh;
let work: string;
t.before(async () => {
  mesh = await startMesh({ shards: 2, withEtcd: true, etcdTopology: true });
  work = mkdtempSync(join(tmpdir(), 'themis-backup-test-'));
});
t.teardown(async () => {
  await mesh?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

const strace = findStrace();
if ('missing' in strace) process.stderr.write(`\n*** backup-restore: the durability guard is SKIPPED: ${strace.missing} ***\n\n`);
const straceSkip = 'missing' in strace ? `durability guard not run: ${strace.missing}` : false;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** --ca and --crls of the operator flags (what restore needs). */
function trustArgs(): string[] {
  const a = operatorArgs(mesh);
  return ['--ca', a[a.indexOf('--ca') + 1]!, '--crls', a[a.indexOf('--crls') + 1]!];
}
const admin = (args: string[]) => runProgramAsync('themis-admin', args);

/** Writes to `count` keys of `table` owned by shard `n`, through both sidecars, until stopped. */
function writesTo(n: number, table: string, count: number) {
  const node = mesh.nodes[n]!;
  const keys = Array.from({ length: count }, () => `document.shop.${table}:${uuidOwnedBy(node.shard.tokenRange)}`);
  const history = new History();
  let stop!: () => void;
  const until = new Promise<void>((r) => (stop = r));
  let lane = 0;
  const loop = writeLoop(history, keys, async (key, blob) => {
    const r = await call(mesh.nodes[lane++ % 2]!.appUrl, 'PUT', `/entities/${encodeURIComponent(key)}`, { blob }, 10_000);
    return { status: r.status, code: r.body?.code };
  }, { until, concurrency: 4 });
  return { node, keys, history, stop, loop };
}

let backupDir: string;
let backupSeq = 0;

t.test('backup under a write loop, data directory destroyed, restored: exactly the changes up to the backup’s seq', async (t) => {
  const { node, keys, history, stop, loop } = writesTo(0, 'orders', 60);
  await sleep(800);
  backupDir = join(work, 'shard-001-a');
  const b = await admin(['backup', '--shard', 'shard-001', '--out', backupDir, '--storage', node.storage.url, ...operatorArgs(mesh)]);
  t.equal(b.status, 0, `backup ran: ${b.stdout}${b.stderr}`);
  await sleep(500);
  stop();
  const stats = await loop;
  t.equal(stats.failed, 0, `no write failed (${stats.acknowledged} acknowledged; ${JSON.stringify(stats.failures)})`);

  const manifest = JSON.parse(readFileSync(join(backupDir, 'manifest.json'), 'utf8'));
  backupSeq = manifest.seq;
  t.match(manifest, { format: 'themis-backup/1', cluster: mesh.pki.cluster, shard: 'shard-001', topology_epoch: mesh.topology.epoch, seq: Number, keys: Number });
  t.equal(BigInt('0x' + manifest.data_xxh64), xxhsum64(readFileSync(join(backupDir, 'data.ndjson'), 'utf8')), 'data_xxh64 is what xxhsum computes over data.ndjson');
  const feed = await readFeed(node.storage.url);
  const atBackup = stateAt(feed, backupSeq);
  const final = stateAt(feed, Infinity);
  t.ok(feed[feed.length - 1]!.sequence > backupSeq && differences(atBackup, final).length > 0, `writes went on after the backup's seq ${backupSeq} (the feed reaches ${feed[feed.length - 1]!.sequence})`);
  t.same(differences(await scanAll(node.storage.url), final), [], 'control: the live node holds the feed’s final state');
  t.equal(manifest.keys, atBackup.size, 'the manifest counts the keys the node held at that seq');

  await node.storage.stop();
  rmSync(node.storage.dataDir!, { recursive: true, force: true });
  const r = await admin(['restore', '--from', backupDir, '--data-dir', node.storage.dataDir!, '--cluster', mesh.pki.cluster, '--shard', 'shard-001', ...trustArgs()]);
  t.equal(r.status, 0, `restore ran: ${r.stdout}${r.stderr}`);
  t.match(r.stdout, new RegExp(`restored ${atBackup.size} keys .* at seq ${backupSeq}`));
  await node.storage.start();
  const restored = await scanAll(node.storage.url);
  t.same(differences(restored, atBackup), [], `the restored node holds exactly the state at seq ${backupSeq} (${restored.size} keys): every change up to it, none after`);
  t.equal((await call(node.storage.url, 'GET', '/health')).body.last_seq, backupSeq, 'and its log continues from the backup’s seq');
  const viaMesh = await call(mesh.nodes[1]!.appUrl, 'GET', `/entities/${encodeURIComponent(keys[0]!)}`);
  t.equal(viaMesh.body?.blob, atBackup.get(keys[0]!), 'the restored shard serves through the mesh');
});

/** Restores `dir` into a fresh copy of a populated data directory and expects refusal `code`, the target unchanged. */
async function refused(t: Test, dir: string, code: string, extra: string[] = [], cluster = mesh.pki.cluster) {
  const target = join(work, `target-${code}-${Math.random().toString(36).slice(2, 8)}`);
  cpSync(mesh.nodes[1]!.storage.dataDir!, target, { recursive: true });
  rmSync(join(target, 'LOCK'), { force: true });
  const before = await snapshot(target);
  const r = await admin(['restore', '--from', dir, '--data-dir', target, '--replace', '--cluster', cluster, ...trustArgs(), ...extra]);
  t.equal(r.status, 1, `refused: ${r.stderr.trim()}`);
  t.match(r.stderr, new RegExp(`refused \\(${code}\\)`), `code ${code}`);
  t.same(await snapshot(target), before, 'the target is untouched');
  const name = basename(target);
  t.same(readdirSync(dirname(target)).filter((f) => f.startsWith(`.${name}.restoring`) || f.startsWith(`${name}.replaced`)), [], 'nothing half-built is left beside it, nothing moved aside');
}

function copyBackup(name: string): string {
  const d = join(work, name);
  cpSync(backupDir, d, { recursive: true });
  return d;
}

t.test('tampered and foreign backups are refused with a clear code; nothing is applied', async (t) => {
  t.ok(backupDir && existsSync(backupDir), 'the backup of the first test exists');
  const manifestEdited = copyBackup('manifest-edited');
  const m = JSON.parse(readFileSync(join(manifestEdited, 'manifest.json'), 'utf8'));
  writeFileSync(join(manifestEdited, 'manifest.json'), JSON.stringify({ ...m, seq: m.seq + 1000 }, null, 2) + '\n');
  await refused(t, manifestEdited, 'BACKUP_SIGNATURE_INVALID');

  const dataEdited = copyBackup('data-edited');
  const data = readFileSync(join(dataEdited, 'data.ndjson'), 'utf8');
  writeFileSync(join(dataEdited, 'data.ndjson'), data.replace('"n\\":', '"n\\":9'));
  t.not(readFileSync(join(dataEdited, 'data.ndjson'), 'utf8'), data, 'control: one value was changed');
  await refused(t, dataEdited, 'BACKUP_FILE_DIGEST');

  const dataGone = copyBackup('data-gone');
  rmSync(join(dataGone, 'data.ndjson'));
  await refused(t, dataGone, 'BACKUP_FILE_DIGEST');

  await refused(t, backupDir, 'BACKUP_WRONG_CLUSTER', [], 'cluster-other');
  await refused(t, backupDir, 'BACKUP_WRONG_SHARD', ['--shard', 'shard-002']);

  const noCms = copyBackup('no-cms');
  writeFileSync(join(noCms, 'manifest.cms'), 'not a signature');
  await refused(t, noCms, 'BACKUP_SIGNATURE_INVALID');
});

t.test('a backup signed by an operator without admin, a shard, a revoked operator or another cluster’s operator is refused', async (t) => {
  const { signManifest } = await import('../../src/backup/manifest.js');
  const { loadPrivateKey } = await import('../../src/pki/keys.js');
  const { parsePem } = await import('../../src/pki/pem.js');
  const { operatorProfile } = await import('../../src/pki/profiles.js');
  const { createPkiFixture } = await import('../support/pki-fixture.js');
  const resign = async (name: string, who: { chain: string; key: string }, edit: (m: Record<string, unknown>) => Record<string, unknown> = (m) => m) => {
    const d = copyBackup(name);
    const text = JSON.stringify(edit(JSON.parse(readFileSync(join(d, 'manifest.json'), 'utf8'))), null, 2) + '\n';
    writeFileSync(join(d, 'manifest.json'), text);
    const chain = parsePem(who.chain, name).map((b) => new Uint8Array(b.der));
    writeFileSync(join(d, 'manifest.cms'), await signManifest(text, chain, (await loadPrivateKey(who.key, undefined, name)).privateKey));
    return d;
  };
  const control = await resign('signed-admin-again', mesh.pki.operators.admin);
  const ok = await admin(['restore', '--from', control, '--data-dir', join(work, 'control-target'), '--cluster', mesh.pki.cluster, ...trustArgs()]);
  t.equal(ok.status, 0, `control: re-signed by the admin operator, it restores (${ok.stderr.trim()})`);
  // Signed, but the signer vouched for digests the data does not have.
  await refused(t, await resign('wrong-xxh64', mesh.pki.operators.admin, (m) => ({ ...m, data_xxh64: '0123456789abcdef' })), 'BACKUP_DATA_DIGEST');
  await refused(t, await resign('wrong-count', mesh.pki.operators.admin, (m) => ({ ...m, keys: (m.keys as number) + 1 })), 'BACKUP_DATA_DIGEST');
  await refused(t, await resign('malformed', mesh.pki.operators.admin, (m) => ({ ...m, seq: -1 })), 'BACKUP_MALFORMED');
  await refused(t, await resign('signed-readonly', mesh.pki.operators.readonly), 'BACKUP_SIGNER_UNTRUSTED');
  await refused(t, await resign('signed-shard', mesh.pki.shards[0]!), 'BACKUP_SIGNER_UNTRUSTED');
  const leaver = await mesh.pki.issue(operatorProfile({ name: 'backup-leaver', capabilities: ['admin'] }), 'backup-leaver');
  const byLeaver = await resign('signed-revoked', leaver);
  await mesh.pki.revoke(leaver.serial);
  await refused(t, byLeaver, 'BACKUP_SIGNER_UNTRUSTED');
  const foreign = await createPkiFixture({ shards: 1, cluster: 'cluster-other' });
  try {
    await refused(t, await resign('other-cluster', foreign.operators.admin, (m) => ({ ...m, cluster: 'cluster-other' })), 'BACKUP_SIGNER_UNTRUSTED');
  } finally {
    await foreign.cleanup();
  }
});

t.test('the target directory of a running node, or one holding data without --replace, is refused', async (t) => {
  const running = mesh.nodes[1]!.storage.dataDir!;
  const r = await admin(['restore', '--from', backupDir, '--data-dir', running, '--replace', '--cluster', mesh.pki.cluster, ...trustArgs()]);
  t.match(r.stderr, /refused \(RESTORE_TARGET_IN_USE\)/, r.stderr.trim());
  t.same(readdirSync(dirname(running)).filter((f) => /restoring|replaced/.test(f)), [], 'the running node’s directory stays in place, nothing built beside it');
  t.equal((await call(mesh.nodes[1]!.storage.url, 'GET', '/health')).status, 200, 'and the node serves on');
  const held = join(work, 'held');
  cpSync(running, held, { recursive: true });
  rmSync(join(held, 'LOCK'), { force: true });
  const n = await admin(['restore', '--from', backupDir, '--data-dir', held, '--cluster', mesh.pki.cluster, ...trustArgs()]);
  t.match(n.stderr, /refused \(RESTORE_TARGET_NOT_EMPTY\)/, n.stderr.trim());
  const ok = await admin(['restore', '--from', backupDir, '--data-dir', held, '--replace', '--cluster', mesh.pki.cluster, ...trustArgs()]);
  t.equal(ok.status, 0, ok.stderr);
  t.match(ok.stdout, /moved the old data directory aside to .*held\.replaced-/);
});

// A backup or restore that says "done" must survive a machine crash: the files are fsynced, and
// so are the directories whose entries changed (a file's fsync does not make its name durable).
t.test('backup and restore make their names durable: each directory fsynced after its entries change (strace)', { skip: straceSkip }, async (t) => {
  const out = join(work, 'durable-backup');
  const traced = (args: string[], file: string) => {
    const r = spawnSync((strace as StraceBinary).path, ['-f', '-y', '-e', 'trace=fsync,fdatasync,rename,renameat,renameat2', '-o', file, process.execPath, ROOT + PROGRAMS['themis-admin'], ...args], { env: (strace as StraceBinary).env, encoding: 'utf8', timeout: 60_000 });
    return { status: r.status, stderr: r.stderr, lines: readFileSync(file, 'utf8').split('\n') };
  };
  const fsyncOf = (dir: string) => (l: string) => /\b(fsync|fdatasync)\(\d+</.test(l) && l.includes(`<${dir}>`);
  const renameTo = (path: string) => (l: string) => /\brename(at2?)?\(/.test(l) && l.includes(`"${path}"`) && / = 0$/.test(l);

  const b = traced(['backup', '--shard', 'shard-002', '--out', out, '--storage', mesh.nodes[1]!.storage.url, ...operatorArgs(mesh)], join(work, 'backup.strace'));
  t.equal(b.status, 0, b.stderr);
  const swap = b.lines.findIndex(renameTo(out));
  t.ok(swap >= 0, 'the backup is renamed into place');
  t.ok(b.lines.slice(0, swap).some(fsyncOf(`${out}.partial`)), 'its folder is fsynced before the rename (the files’ names)');
  t.ok(b.lines.slice(swap + 1).some(fsyncOf(work)), 'the parent is fsynced after it (the rename)');

  const target = join(work, 'durable-target');
  const r = traced(['restore', '--from', out, '--data-dir', target, '--cluster', mesh.pki.cluster, ...trustArgs()], join(work, 'restore.strace'));
  t.equal(r.status, 0, r.stderr);
  const into = r.lines.findIndex(renameTo(target));
  t.ok(into >= 0, 'the restored store is renamed into place');
  t.ok(r.lines.slice(into + 1).some(fsyncOf(work)), 'the parent is fsynced after it');
});

t.test('point in time: backup --follow archives the feed under a write loop; restore --until SEQ holds every change up to SEQ, none after', async (t) => {
  const { node, history, stop, loop } = writesTo(1, 'carts', 40);
  await sleep(500);
  const dir = join(work, 'shard-002-follow');
  let child: import('node:child_process').ChildProcess | undefined;
  const follow = runProgramAsync('themis-admin', ['backup', '--follow', '--segment-records', '100', '--segment-seconds', '1', '--shard', 'shard-002', '--out', dir, '--storage', node.storage.url, ...operatorArgs(mesh)], { child: (c) => (child = c) });
  for (let i = 0; i < 100 && !existsSync(join(dir, 'manifest.json')); i++) await sleep(100);
  t.ok(existsSync(join(dir, 'manifest.json')), 'the base backup was taken');
  await sleep(2500);
  stop();
  const stats = await loop;
  t.equal(stats.failed, 0, `no write failed (${stats.acknowledged} acknowledged; ${JSON.stringify(stats.failures)})`);
  const head = (await call(node.storage.url, 'GET', '/health')).body.last_seq as number;
  const pad = String(head).padStart(16, '0');
  for (let i = 0; i < 100 && !readdirSync(join(dir, 'feed')).some((f) => f.endsWith(`-${pad}.cms`)); i++) await sleep(100);
  child!.kill('SIGTERM');
  const done = await follow;
  t.equal(done.status, 0, `the follow stopped cleanly: ${done.stdout}${done.stderr.slice(-2000)}`);
  t.match(done.stdout, `archived the change feed of shard-002 through seq ${head}`);
  const base = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')).seq as number;
  t.ok(head - base >= 20, `changes after the base backup: ${base} → ${head}`);
  const segments = readdirSync(join(dir, 'feed')).filter((f) => f.endsWith('.ndjson'));
  t.ok(segments.length >= 2, `several signed segments: ${segments.join(', ')}`);
  const feed = await readFeed(node.storage.url);
  const mid = base + Math.floor((head - base) / 2);

  // Refused before anything is touched.
  await refused(t, dir, 'RESTORE_UNTIL_UNREACHABLE', ['--until', String(head + 5)]);
  if (base > 0) await refused(t, dir, 'RESTORE_UNTIL_UNREACHABLE', ['--until', String(base - 1)]);
  const segEdited = join(work, 'seg-edited');
  cpSync(dir, segEdited, { recursive: true });
  const first = readdirSync(join(segEdited, 'feed')).filter((f) => f.endsWith('.ndjson')).sort()[0]!;
  writeFileSync(join(segEdited, 'feed', first), readFileSync(join(segEdited, 'feed', first), 'utf8').replace('"n\\":', '"n\\":7'));
  await refused(t, segEdited, 'BACKUP_FILE_DIGEST', ['--until', String(head)]);
  const manEdited = join(work, 'seg-manifest-edited');
  cpSync(dir, manEdited, { recursive: true });
  const segJson = join(manEdited, 'feed', first.replace('.ndjson', '.json'));
  writeFileSync(segJson, readFileSync(segJson, 'utf8').replace('"records"', '"records" ').replace(/"bytes": \d+/, '"bytes": 1'));
  await refused(t, manEdited, 'BACKUP_SIGNATURE_INVALID', ['--until', String(head)]);

  await node.storage.stop();
  rmSync(node.storage.dataDir!, { recursive: true, force: true });
  const r = await admin(['restore', '--from', dir, '--until', String(mid), '--data-dir', node.storage.dataDir!, '--cluster', mesh.pki.cluster, ...trustArgs()]);
  t.equal(r.status, 0, `restore --until ran: ${r.stdout}${r.stderr}`);
  t.match(r.stdout, `replayed ${mid - base} archived changes after seq ${base}`);
  await node.storage.start();
  const restored = await scanAll(node.storage.url);
  const want = stateAt(feed, mid);
  t.same(differences(restored, want), [], `restored to seq ${mid}: exactly the state there (${restored.size} keys)`);
  t.not(differences(want, stateAt(feed, head)).length, 0, 'control: the state at the head differs, so later changes were left out');
  t.equal((await call(node.storage.url, 'GET', '/health')).body.last_seq, mid, 'its log ends at the chosen seq');
  const tail = await call(node.storage.url, 'GET', `/changefeed?from_seq=${base}&limit=1000`);
  t.same((tail.body.changes as { sequence: number }[]).map((c) => c.sequence), Array.from({ length: mid - base }, (_, i) => base + 1 + i), 'and holds the replayed change records, so followers continue from the backup’s seq');
});

t.test('point in time by the clock: restore --until TIME holds exactly the writes acknowledged before TIME, none sent after it', async (t) => {
  const node = mesh.nodes[0]!;
  const put = async (key: string, blob: string) => t.equal((await call(node.appUrl, 'PUT', `/entities/${encodeURIComponent(key)}`, { blob }, 10_000)).status, 201, `PUT ${key.slice(-8)}`);
  const del = async (key: string) => t.equal((await call(node.appUrl, 'DELETE', `/entities/${encodeURIComponent(key)}`, undefined, 10_000)).status, 200, `DELETE ${key.slice(-8)}`);
  const key = () => `document.shop.pitr:${uuidOwnedBy(node.shard.tokenRange)}`;
  const others = await scanAll(node.storage.url); // what the node holds besides this test's table (no other writes run now)

  // W0 is in the base backup; `beforeBackup` is before it.
  const beforeBackup = new Date().toISOString();
  await sleep(20);
  const w0 = key();
  await put(w0, '"w0"');
  const dir = join(work, 'shard-001-pitr-time');
  let child: import('node:child_process').ChildProcess | undefined;
  const follow = runProgramAsync('themis-admin', ['backup', '--follow', '--segment-records', '4', '--segment-seconds', '1', '--shard', 'shard-001', '--out', dir, '--storage', node.storage.url, ...operatorArgs(mesh)], { child: (c) => (child = c) });
  for (let i = 0; i < 100 && !existsSync(join(dir, 'manifest.json')); i++) await sleep(100);
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
  t.ok(Date.parse(manifest.seq_committed_at) > Date.parse(beforeBackup), `the manifest dates its newest change: ${manifest.seq_committed_at}`);

  // Phase A, every write acknowledged; then TIME; then phase B, every write sent after TIME.
  const a = [key(), key(), key(), key(), key()];
  for (const [i, k] of a.entries()) await put(k, `"a${i}"`);
  await sleep(300);
  const time = new Date().toISOString();
  await sleep(300);
  const b = [key(), key(), key()];
  for (const [i, k] of b.entries()) await put(k, `"b${i}"`);
  await put(a[0]!, '"a0-overwritten-in-b"');
  await del(a[1]!);
  await sleep(50);
  const afterAll = new Date(Date.now() + 1).toISOString();
  const head = (await call(node.storage.url, 'GET', '/health')).body.last_seq as number;
  const pad = String(head).padStart(16, '0');
  for (let i = 0; i < 100 && !readdirSync(join(dir, 'feed')).some((f) => f.endsWith(`-${pad}.cms`)); i++) await sleep(100);
  child!.kill('SIGTERM');
  t.equal((await follow).status, 0, 'the follow stopped cleanly');

  // What the test itself wrote: W0 and phase A as written; nothing of phase B.
  const want = new Map(others);
  want.set(w0, '"w0"');
  a.forEach((k, i) => want.set(k, `"a${i}"`));

  // Refused before anything is touched.
  await refused(t, dir, 'RESTORE_UNTIL_MALFORMED', ['--until', 'yesterday']);
  await refused(t, dir, 'RESTORE_UNTIL_MALFORMED', ['--until', time.replace('Z', '')]);
  await refused(t, dir, 'RESTORE_UNTIL_MALFORMED', ['--until', '2026-02-30T10:00:00Z']);
  await refused(t, dir, 'RESTORE_UNTIL_FUTURE', ['--until', new Date(Date.now() + 3_600_000).toISOString()]);
  await refused(t, dir, 'RESTORE_UNTIL_BEFORE_BACKUP', ['--until', beforeBackup]);
  await refused(t, dir, 'RESTORE_UNTIL_UNREACHABLE', ['--until', afterAll]);
  // An archive whose records carry no commit time (from a node before they were stamped), signed.
  const { signManifest } = await import('../../src/backup/manifest.js');
  const { loadPrivateKey } = await import('../../src/pki/keys.js');
  const { parsePem } = await import('../../src/pki/pem.js');
  const { createHash } = await import('node:crypto');
  const old = join(work, 'pitr-untimed');
  cpSync(dir, old, { recursive: true });
  const op = mesh.pki.operators.admin;
  for (const f of readdirSync(join(old, 'feed')).filter((n) => /^\d{16}-\d{16}\.ndjson$/.test(n))) {
    const text = readFileSync(join(old, 'feed', f), 'utf8').split('\n').filter(Boolean).map((l) => {
      const { committed_at: _, ...rest } = JSON.parse(l);
      return JSON.stringify(rest) + '\n';
    }).join('');
    writeFileSync(join(old, 'feed', f), text);
    const mf = join(old, 'feed', f.replace('.ndjson', '.json'));
    const m = { ...JSON.parse(readFileSync(mf, 'utf8')), bytes: Buffer.byteLength(text), sha256: createHash('sha256').update(text).digest('hex') };
    const mtext = JSON.stringify(m, null, 2) + '\n';
    writeFileSync(mf, mtext);
    writeFileSync(mf.replace('.json', '.cms'), await signManifest(mtext, parsePem(op.chain, 'op').map((x) => new Uint8Array(x.der)), (await loadPrivateKey(op.key, undefined, 'op')).privateKey));
  }
  await refused(t, old, 'RESTORE_TIME_UNKNOWN', ['--until', time]);
  const bySeq = await admin(['restore', '--from', old, '--until', String(head), '--data-dir', join(work, 'pitr-untimed-target'), '--cluster', mesh.pki.cluster, ...trustArgs()]);
  t.equal(bySeq.status, 0, `control: that archive is valid and restores by sequence number (${bySeq.stderr.trim()})`);

  await node.storage.stop();
  rmSync(node.storage.dataDir!, { recursive: true, force: true });
  const r = await admin(['restore', '--from', dir, '--until', time, '--data-dir', node.storage.dataDir!, '--cluster', mesh.pki.cluster, ...trustArgs()]);
  t.equal(r.status, 0, `restore --until ${time} ran: ${r.stdout}${r.stderr}`);
  t.match(r.stdout, new RegExp(`${time.replace(/[.]/g, '\\.')} is seq \\d+: the last change committed at or before it`));
  await node.storage.start();
  const restored = await scanAll(node.storage.url);
  t.same(differences(restored, want), [], `restored to ${time}: W0 and every phase-A write as written, no phase-B write (${restored.size} keys)`);
  for (const k of b) t.notOk(restored.has(k), `phase-B key ${k.slice(-8)} is absent`);
  t.equal(restored.get(a[0]!), '"a0"', 'the key overwritten after TIME holds its value before');
  t.equal(restored.get(a[1]!), '"a1"', 'the key deleted after TIME is there');
});
