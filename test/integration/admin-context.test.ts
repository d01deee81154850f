// themis-admin's context: flags left out come from $THEMIS_* variables, then from the current
// context of the context file; a flag on the command line always wins (docs/cli-context.md).
import t from 'tap';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runProgram } from '../support/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'themis-context-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
mkdirSync(join(dir, 'pki'));
const file = join(dir, 'admin.json');
writeFileSync(file, JSON.stringify({
  current: 'prod',
  contexts: {
    prod: { cluster: 'cluster-prod', etcd: ['https://10.0.0.2:2379', 'https://10.0.0.3:2379'], ca: 'pki/root.pem', crls: ['pki/root.crl.pem', 'pki/cluster.crl.pem'] },
    staging: { cluster: 'cluster-staging' },
  },
}));
// A clean environment: no variable of the developer's own context leaks in.
const env = (more: Record<string, string> = {}) => {
  const e: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('THEMIS_') && v !== undefined) e[k] = v;
  return { ...e, HOME: dir, XDG_CONFIG_HOME: join(dir, 'xdg'), ...more };
};
const admin = (args: string[], more: Record<string, string> = {}) => runProgram('themis-admin', args, { env: env(more) });
const planned = (args: string[], more: Record<string, string> = {}) => {
  const out = join(dir, `plan-${Math.random().toString(36).slice(2)}.json`);
  const r = admin(['topology', 'plan', '--shards', 'shard-001,shard-002', '--sample', '0', '--out', out, ...args], more);
  return { r, cluster: r.status === 0 ? JSON.parse(readFileSync(out, 'utf8')).cluster : undefined };
};

t.test('the current context supplies the cluster; --context, $THEMIS_CLUSTER and --cluster take precedence in that order', async (t) => {
  t.equal(planned([], { THEMIS_CONFIG: file }).cluster, 'cluster-prod', 'current context');
  t.equal(planned(['--context', 'staging'], { THEMIS_CONFIG: file }).cluster, 'cluster-staging', '--context picks another');
  t.equal(planned([], { THEMIS_CONFIG: file, THEMIS_CONTEXT: 'staging' }).cluster, 'cluster-staging', '$THEMIS_CONTEXT picks another');
  t.equal(planned([], { THEMIS_CONFIG: file, THEMIS_CLUSTER: 'cluster-env' }).cluster, 'cluster-env', 'a variable beats the context file');
  t.equal(planned(['--cluster', 'cluster-flag'], { THEMIS_CONFIG: file, THEMIS_CLUSTER: 'cluster-env' }).cluster, 'cluster-flag', 'a flag beats both');
  t.equal(planned([], { THEMIS_CLUSTER: 'cluster-env' }).cluster, 'cluster-env', 'variables alone, no file');
  const none = planned([]);
  t.equal(none.r.status, 2, 'no flag, no variable, no file: refused');
  t.equal(planned([], { THEMIS_CONFIG: join(dir, 'not-yet.json') }).r.status, 2, 'a context file not written yet is no context');
  t.match(none.r.stderr, /--cluster is required/);
});

t.test('context show names each value and where it comes from; paths resolve against the file', async (t) => {
  const r = admin(['context', 'show', '--json'], { THEMIS_CONFIG: file, THEMIS_CA: '/etc/themis/pki/root.pem' });
  t.equal(r.status, 0, r.stderr);
  const shown = JSON.parse(r.stdout);
  t.equal(shown.context, 'prod');
  t.same(shown.values.etcd, { value: 'https://10.0.0.2:2379,https://10.0.0.3:2379', source: `context prod (${file})` });
  t.same(shown.values.crls, { value: `${dir}/pki/root.crl.pem,${dir}/pki/cluster.crl.pem`, source: `context prod (${file})` });
  t.same(shown.values.ca, { value: '/etc/themis/pki/root.pem', source: 'env THEMIS_CA' });
  const text = admin(['context', 'show'], { THEMIS_CONFIG: file });
  t.match(text.stdout, /--cluster\s+cluster-prod\s+\(context prod/);
  // The default file: $XDG_CONFIG_HOME/themis/admin.json.
  mkdirSync(join(dir, 'xdg', 'themis'), { recursive: true });
  writeFileSync(join(dir, 'xdg', 'themis', 'admin.json'), JSON.stringify({ current: 'x', contexts: { x: { cluster: 'cluster-x' } } }));
  t.equal(planned([]).cluster, 'cluster-x', 'found at the default path');
  rmSync(join(dir, 'xdg'), { recursive: true });
});

t.test('a context that is not there, or not understood, is a usage error naming the file', async (t) => {
  const bad = join(dir, 'bad.json');
  const cases: [string, Record<string, string>, string[], RegExp][] = [
    ['unknown context', { THEMIS_CONFIG: file }, ['--context', 'nope'], /context "nope" is not in .*admin\.json \(it has: prod, staging\)/],
    ['a context asked for, no file', { THEMIS_CONFIG: join(dir, 'missing.json') }, ['--context', 'prod'], /context file .*missing\.json: cannot read it \(ENOENT\)/],
    ['not JSON', { THEMIS_CONFIG: bad }, [], /context file .*bad\.json is not JSON/],
  ];
  writeFileSync(bad, '{');
  for (const [name, more, args, msg] of cases) {
    const r = admin([...args, 'context', 'show'], more);
    t.equal(r.status, 2, name);
    t.match(r.stderr, msg, name);
  }
  writeFileSync(bad, JSON.stringify({ current: 'a', contexts: { a: { cluster: 'c', endpoint: 'x' } } }));
  const unknown = admin(['context', 'show'], { THEMIS_CONFIG: bad });
  t.equal(unknown.status, 2);
  t.match(unknown.stderr, /context "a" in .*bad\.json: unknown field "endpoint"/);
});

t.test('plan --balanced --from takes the cluster from the file, and refuses a context of another cluster', async (t) => {
  const base = join(dir, 'base.json');
  t.equal(admin(['topology', 'plan', '--balanced', '--shards', 'a,b', '--cluster', 'cluster-prod', '--sample', '0', '--out', base]).status, 0);
  const same = admin(['topology', 'plan', '--balanced', '--from', base, '--add', 'c', '--sample', '0', '--json'], { THEMIS_CONFIG: file });
  t.equal(same.status, 0, same.stderr);
  t.equal(JSON.parse(same.stdout).cluster, 'cluster-prod');
  const other = admin(['topology', 'plan', '--balanced', '--from', base, '--add', 'c', '--sample', '0'], { THEMIS_CONFIG: file, THEMIS_CONTEXT: 'staging' });
  t.equal(other.status, 2);
  t.match(other.stderr, /is a topology of cluster cluster-prod, but the context is for cluster cluster-staging/);
});

t.test('crl publish: --ca names a CA and is never the context\'s ca (a root certificate)', async (t) => {
  const r = admin(['crl', 'publish', '--pki', join(dir, 'pki')], { THEMIS_CONFIG: file });
  t.equal(r.status, 2, 'the context\'s root certificate does not stand in for the CA name');
  t.match(r.stderr, /--ca is required, e\.g\. --ca cluster \(the CA whose CRL to publish/);
  const given = admin(['crl', 'publish', '--ca', 'nope', '--pki', join(dir, 'pki')], { THEMIS_CONFIG: file });
  t.equal(given.status, 2);
  t.match(given.stderr, /--ca must be one of root, cluster, operator, client, got "nope"/, 'one given on the command line is checked as a CA name');
});
