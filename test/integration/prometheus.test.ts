import t from 'tap';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { debianTool } from '../../scripts/debian-tool.js';
import { ROOT } from '../support/cli.js';
import { startMesh, uuidOwnedBy, type Mesh } from '../support/mesh.js';
import { call } from '../support/storage-process.js';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { DASHBOARD, asRecordingRules, dashboardQueries, exportedNames, metricNames } from '../support/grafana.js';

const promtool = debianTool('promtool', 'prometheus');
const dir = join(ROOT, 'deploy/prometheus');
const run = (args: string[], input?: string) => spawnSync(promtool, args, { cwd: dir, input, encoding: 'utf8' });

t.test('the shipped scrape config and alert rules pass promtool, and every alert fires in its unit test', async (t) => {
  for (const args of [['check', 'config', 'prometheus.yml'], ['check', 'rules', 'themis-alerts.yml'], ['test', 'rules', 'themis-alerts.test.yml']]) {
    const r = run(args);
    t.equal(r.status, 0, `promtool ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  }
  const names = [...run(['check', 'rules', 'themis-alerts.yml']).stdout.matchAll(/SUCCESS: (\d+) rules/g)];
  t.equal(names[0]?.[1], '11');
});

t.test('metrics scraped from a running sidecar pass promtool check metrics', async (t) => {
  const mesh: Mesh = await startMesh({ shards: 2 });
  t.teardown(() => mesh.close());
  const [a, b] = mesh.nodes;
  await call(a!.appUrl, 'PUT', `/entities/document.m.x:${uuidOwnedBy(b!.shard.tokenRange)}`, { blob: '{}' });
  await call(a!.appUrl, 'GET', '/entities/nope');
  const text = await fetch(`${a!.adminUrl}/metrics`).then((r) => r.text());
  // The seed's themis_certificate_expiry_days is the one name promtool's lint objects to (its
  // unit); everything else passes, and that objection is the only one.
  const withoutDays = text.split('\n').filter((l) => !l.includes('themis_certificate_expiry_days')).join('\n');
  const r = run(['check', 'metrics'], withoutDays);
  t.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  const full = run(['check', 'metrics'], text);
  t.equal(`${full.stdout}${full.stderr}`.trim(), 'themis_certificate_expiry_days use base unit "seconds" instead of "days"');
  for (const name of [
    'themis_requests_total',
    'themis_request_duration_seconds_bucket',
    'themis_pki_events_total',
    'themis_certificate_expiry_seconds',
    'themis_certificate_expiry_days',
    'themis_trust_anchor_expiry_seconds',
    'themis_crl_expiry_seconds',
    'themis_crl_size_bytes',
    'themis_crl_next_update_timestamp_seconds',
    'themis_topology_epoch',
    'themis_peer_session_state',
    'process_cpu_user_seconds_total',
  ]) {
    t.match(text, new RegExp(`^${name}`, 'm'), name);
  }
  t.match(text, /themis_peer_session_state\{peer="shard-002",state="ready"\} 1/);

  // The Grafana dashboard (deploy/grafana/): every panel's PromQL parses, and names only
  // metrics this real sidecar exports.
  const queries = dashboardQueries();
  t.ok(queries.length >= 17, `${queries.length} panel queries`);
  const tmp = mkdtempSync(join(tmpdir(), 'grafana-'));
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
  writeFileSync(join(tmp, 'dashboard-rules.yml'), asRecordingRules(queries));
  const parsed = spawnSync(promtool, ['check', 'rules', join(tmp, 'dashboard-rules.yml')], { encoding: 'utf8' });
  t.equal(parsed.status, 0, `promtool check rules on the dashboard's queries: ${parsed.stdout}${parsed.stderr}`);
  t.match(parsed.stdout, `SUCCESS: ${queries.length} rules found`);
  const exported = exportedNames(text);
  for (const q of queries) {
    const names = metricNames(q.expr);
    t.ok(names.length > 0, `${q.panel} ${q.refId} queries a sidecar metric`);
    const unknown = names.filter((n) => !exported.has(n));
    t.same(unknown, [], `${q.panel} ${q.refId}: every metric is exported (${names.join(', ')})`);
  }
  // And anywhere else in the file (the sidecar variable's label_values query).
  t.same(metricNames(readFileSync(DASHBOARD, 'utf8')).filter((n) => !exported.has(n)), [], 'no metric the sidecar does not export, anywhere in the dashboard');
  t.notMatch(text, /themis_etcd_connected/, 'no etcd gauge (and so no etcd alert) without etcd');
});
