// The web console in a real headless browser (Debian's chromium, driven by playwright-core)
// against a real mesh: etcd, three sidecars, storage nodes, replication factor 2. Off by default
// (404 CONSOLE_DISABLED); turned on, the page draws every shard's ranges and replicas and the
// epoch; a signed topology published to etcd shows without a reload; a hostile shard id written
// into etcd stays text. THEMIS_CONSOLE_SCREENSHOT=FILE keeps a screenshot of the page there.
import t, { type Test } from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { launchChromium, type TestBrowser } from '../support/browser.js';
import { runProgramAsync } from '../support/cli.js';
import { etcdClient, operatorArgs, publishAsAdmin, startMesh, uuidOwnedBy, type Mesh } from '../support/mesh.js';
import { call } from '../support/storage-process.js';
import { etcdKeys } from '../../src/control/etcd.js';
import { tokenHex } from '../../src/hash.js';
import type { ClusterStatus } from '../../src/status/cluster-status.js';

// The functions passed to page.evaluate and waitForFunction run in the browser, not here.
declare const document: any;
declare const window: any;

let mesh: Mesh;
let browser: TestBrowser;
t.before(async () => {
  mesh = await startMesh({ shards: 3, withEtcd: true, etcdTopology: true, replicas: 1 });
  browser = await launchChromium();
});
t.teardown(async () => {
  await browser?.close();
  await mesh?.close();
});

const CONSOLE = 0; // the sidecar whose console is turned on
const consoleUrl = () => `${mesh.nodes[CONSOLE]!.adminUrl}/console`;

async function until(what: string, f: () => Promise<boolean> | boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

t.test('off by default: a sidecar started with the default config answers 404 CONSOLE_DISABLED, and its admin port is on loopback', async (t) => {
  const cfg = JSON.parse(readFileSync(mesh.nodes[1]!.configPath, 'utf8'));
  t.equal(cfg.admin.console, undefined, 'the config does not mention the console');
  for (const path of ['/console', '/console/status.json', '/console/console.js']) {
    const r = await fetch(`${mesh.nodes[1]!.adminUrl}${path}`);
    t.equal(r.status, 404, path);
    t.same(await r.json(), { error: true, message: 'the web console is off; set admin.console to true in the sidecar config and restart it', status_code: 404, code: 'CONSOLE_DISABLED' }, path);
  }
  t.equal((await fetch(`${mesh.nodes[1]!.adminUrl}/readyz`)).status, 200, 'the rest of the admin port answers');
  // The listening line the sidecar printed names the address it bound.
  const admin = mesh.nodes[1]!.sidecar!.ready.admin;
  t.match(admin, /^127\.0\.0\.1:\d+$/, `admin port bound to ${admin}`);
});

t.test('turned on (admin.console: true), the sidecar restarts and serves the console', async (t) => {
  const node = mesh.nodes[CONSOLE]!;
  const cfg = JSON.parse(readFileSync(node.configPath, 'utf8'));
  writeFileSync(node.configPath, JSON.stringify({ ...cfg, admin: { ...cfg.admin, console: true } }));
  await mesh.stopSidecar(CONSOLE);
  await mesh.startSidecar(CONSOLE);
  t.match(mesh.nodes[CONSOLE]!.sidecar!.ready.admin, /^127\.0\.0\.1:\d+$/, 'still bound to loopback');
  const r = await fetch(`${consoleUrl()}/status.json`);
  t.equal(r.status, 200);
  t.match(r.headers.get('content-security-policy'), "script-src 'self'");
  t.equal(r.headers.get('x-content-type-options'), 'nosniff');
  const s = (await r.json()) as ClusterStatus;
  t.equal(s.epoch, mesh.topology.epoch, 'the same document as themis-admin status --json');
  t.equal(s.ranges.length, mesh.topology.ranges.length);
});

async function openConsole(t: Test): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
  });
  const res = await page.goto(consoleUrl());
  t.equal(res?.status(), 200);
  return { page, problems };
}

t.test('the page draws every shard, its ranges and replicas, and the epoch', async (t) => {
  // Some keys on each shard, so the key counts show (each sidecar counts every 5 s). Just after
  // start, until a range has an acting primary and its replica follows it, its writes are 503
  // FAILOVER_IN_PROGRESS or REPLICATION_UNAVAILABLE, both retryable: retried as a client would,
  // for up to 20 s.
  const put = async (key: string) => {
    for (let attempt = 1; ; attempt++) {
      const r = await call(mesh.nodes[0]!.appUrl, 'PUT', `/entities/${key}`, { blob: '{}' });
      if (attempt > 40 || r.status !== 503 || !['FAILOVER_IN_PROGRESS', 'REPLICATION_UNAVAILABLE'].includes(r.body?.code)) return r;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  };
  for (const n of mesh.nodes) {
    for (let i = 0; i < 5; i++) {
      const r = await put(`document.app.e:${uuidOwnedBy(n.shard.tokenRange)}`);
      t.equal(r.status, 201, r.text);
    }
  }
  const { page, problems } = await openConsole(t);
  t.teardown(() => page.close());
  const epoch = mesh.topology.epoch;
  await page.waitForFunction((e) => document.getElementById('epoch')?.textContent === String(e), epoch, { timeout: 10_000 });
  t.equal(await page.textContent('#cluster'), mesh.pki.cluster);
  t.equal(await page.textContent('#ring-epoch'), `epoch ${epoch}`);
  const rows = await page.$$eval('#shards tbody tr', (trs) => trs.map((tr: any) => tr.getAttribute('data-shard')));
  t.same(rows, mesh.nodes.map((n) => n.shard.id), 'a row per shard');
  const owners = await page.$$eval('path.owner-arc', (ps) => ps.map((p) => p.getAttribute('data-owner')));
  t.same(owners, mesh.topology.ranges.map((r) => r.owner), 'an arc per range, in its owner\'s colour');
  const replicas = await page.$$eval('path.replica-arc', (ps) => ps.map((p) => p.getAttribute('data-replica')));
  t.same(replicas, mesh.topology.ranges.flatMap((r) => r.replicas), 'an inner arc per replica');
  const colours = await page.$$eval('path.owner-arc', (ps) => ps.map((p) => `${p.getAttribute('data-owner')}=${p.getAttribute('stroke')}`));
  t.equal(new Set(colours.map((c) => c.split('=')[1])).size, 3, 'three shards, three colours');
  t.equal(new Set(colours).size, 3, 'one colour per shard');
  // Each sidecar reports its epoch and key count every few seconds.
  await page.waitForFunction((n) => [...document.querySelectorAll('#shards tbody tr')].filter((tr) => tr.children[1]?.textContent === 'yes' && /^\d+ \(/.test(tr.children[5]?.textContent ?? '')).length === n, 3, { timeout: 20_000 });
  for (const n of mesh.nodes) {
    const cells = await page.$$eval(`#shards tbody tr[data-shard="${n.shard.id}"] td`, (tds) => tds.map((td) => td.textContent));
    t.equal(cells[2], String(epoch), `${n.shard.id} serves epoch ${epoch}`);
    t.match(cells[6], /^\d{4}-\d\d-\d\d \(\d+ d\)$/, `${n.shard.id}'s certificate expiry: ${cells[6]}`);
    t.match(cells[7], /behind|following|–/, `${n.shard.id}'s replication: ${cells[7]}`);
  }
  t.same(await page.$$eval('#warnings li', (li) => li.map((l) => l.textContent)), ['none'], 'no warnings');
  t.same(problems, [], 'no script errors and no CSP violations');
});

t.test('a topology published to etcd shows without a reload', async (t) => {
  const { page, problems } = await openConsole(t);
  t.teardown(() => page.close());
  const before = mesh.topology.epoch;
  await page.waitForFunction((e) => document.getElementById('epoch')?.textContent === String(e), before, { timeout: 10_000 });
  await page.evaluate(() => ((window as unknown as { sameDocument: boolean }).sameDocument = true));
  const next = before + 1;
  await publishAsAdmin(mesh.pki, mesh.etcd!, mesh.topology.withEpoch(next));
  await page.waitForFunction((e) => document.getElementById('epoch')?.textContent === String(e), next, { timeout: 15_000 });
  t.equal(await page.textContent('#ring-epoch'), `epoch ${next}`);
  // Then every sidecar's report catches up (a lagging one is marked until it does).
  await page.waitForFunction((e) => [...document.querySelectorAll('#shards tbody td.shard-epoch')].every((td) => td.textContent === String(e)), next, { timeout: 20_000 });
  t.equal(await page.evaluate(() => (window as unknown as { sameDocument?: boolean }).sameDocument), true, 'the page was not reloaded');
  t.same(problems, []);
});

t.test('a move in progress is drawn outside the ring, with its phases and progress; aborted, it goes', async (t) => {
  const { page, problems } = await openConsole(t);
  t.teardown(() => page.close());
  // Half of shard-001's range to shard-002 (its replica, certified for it), held before its cutover.
  const r1 = mesh.topology.ranges.find((r) => r.owner === 'shard-001')!;
  const moved = { start: r1.start, end: r1.start + (r1.end - r1.start) / 2n };
  for (let i = 0; i < 20; i++) t.equal((await call(mesh.nodes[2]!.appUrl, 'PUT', `/entities/document.app.moving:${uuidOwnedBy(moved)}`, { blob: '{"n":1}' })).status, 201);
  const r = await runProgramAsync('themis-admin', ['rebalance', '--from', 'shard-001', '--to', 'shard-002', '--token-range', `${tokenHex(moved.start)}:${tokenHex(moved.end)}`, '--cutover', 'manual', ...operatorArgs(mesh)]);
  t.equal(r.status, 0, r.stderr);
  const op = /operation ([0-9a-f-]{36})/.exec(r.stdout)?.[1] ?? '';
  t.ok(op, `operation ${op}`);
  const arc = `path.move-arc[data-op="${op}"]`;
  await page.waitForSelector(arc, { timeout: 20_000 });
  t.match(await page.textContent(`${arc} title`), `moving ${tokenHex(moved.start)}–${tokenHex(moved.end)} (owner) shard-001 → shard-002`);
  await page.waitForFunction((id) => [...document.querySelectorAll('#moves li')].some((li) => li.textContent.startsWith(id) && /shard-002 catching-up \(\d+ keys copied, \d+ changes behind/.test(li.textContent)), op, { timeout: 20_000 });
  const line = (await page.$$eval('#moves li', (li) => li.map((l) => l.textContent))).find((l) => l.startsWith(op))!;
  t.match(line, /shard-001 \w+/, `the source's phase: ${line}`);
  t.match(line, '— shard-001 → shard-002');
  const shot = process.env.THEMIS_CONSOLE_SCREENSHOT;
  if (shot) await page.screenshot({ path: shot, fullPage: true });
  const abort = await runProgramAsync('themis-admin', ['rebalance', 'abort', '--op', op, ...operatorArgs(mesh)]);
  t.equal(abort.status, 0, abort.stderr);
  await page.waitForFunction(() => document.querySelectorAll('path.move-arc').length === 0 && document.querySelector('#moves li')?.textContent === 'none', undefined, { timeout: 20_000 });
  t.pass('the aborted move is gone from the ring and the list');
  t.same(problems, []);
});

t.test('a hostile shard id written into etcd is shown as text, never as markup', async (t) => {
  const { page, problems } = await openConsole(t);
  t.teardown(() => page.close());
  const hostile = '<img src=x onerror="window.pwned=1"><svg onload="window.pwned=2">';
  const etcd = etcdClient(mesh);
  const key = `${etcdKeys(mesh.pki.cluster).shardsPrefix}${hostile}/endpoint`;
  await etcd.put(key).value(JSON.stringify({ host: '<b>bold</b>', port: 1 }));
  t.teardown(async () => {
    await etcd.delete().key(key);
    etcd.close();
  });
  await page.waitForFunction((n) => document.querySelectorAll('#shards tbody tr').length === n, 4, { timeout: 15_000 });
  const cells = await page.$$eval('#shards tbody td.shard-id', (tds) => tds.map((td) => td.textContent));
  t.ok(cells.includes(hostile), 'the id shows literally in its row');
  t.equal(await page.$$eval('#shards img, #shards svg, #warnings img, #warnings svg', (e) => e.length), 0, 'no element was made of it');
  const warnings = await page.$$eval('#warnings li', (li) => li.map((l) => l.textContent));
  t.ok(warnings.includes(`${hostile} is not alive (no lease)`), 'its warning is text too');
  t.equal(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned), undefined, 'no script of it ran');
  t.same(problems, []);
});
