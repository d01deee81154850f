import t from 'tap';
import { validateSidecarConfig } from '../../../src/config/sidecar.js';
import { socketIds } from '../../../src/config/app-socket.js';

const good = {
  shardId: 'shard-001',
  cluster: 'prod',
  app: { host: '127.0.0.1', port: 7080 },
  mesh: { host: '10.0.0.5', port: 7443 },
  storage: { url: 'http://127.0.0.1:8765' },
  tls: { cert: 'pki/shard.chain.pem', key: 'pki/shard.key', ca: 'pki/root.pem', crls: ['crl/root.pem', 'crl/cluster.pem'] },
  topology: { file: 'topology.json' },
};

t.test('a good config is filled with defaults and paths resolve against the config folder', async (t) => {
  const c = validateSidecarConfig(good, '/etc/themis');
  t.equal(c.tls.cert, '/etc/themis/pki/shard.chain.pem');
  t.same(c.tls.crls, ['/etc/themis/crl/root.pem', '/etc/themis/crl/cluster.pem']);
  t.equal(c.admin.port, 9464);
  t.equal(c.timeouts.requestMs, 10_000);
  t.equal(c.replay.windowMs, 60_000);
  t.equal(c.auditFile, '/etc/themis/audit-shard-001.log');
  t.same(c.replay, { windowMs: 60_000, maxNoncesPerSender: 200_000, stateFile: '/etc/themis/replay-shard-001.json', reserveMs: 1000 });
  t.same(c.app, { host: '127.0.0.1', port: 7080, headersTimeoutMs: 10_000, requestTimeoutMs: 60_000, idleTimeoutMs: 65_000, maxConnections: 4096, tcp: true, socket: undefined, tls: false });
  t.same(c.admin, { host: '127.0.0.1', port: 9464, headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, idleTimeoutMs: 65_000, maxConnections: 64, console: false }, 'the web console is off by default');
  t.same(c.mesh, { host: '10.0.0.5', port: 7443, bodyTimeoutMs: 30_000, maxInflightBodyBytes: 256 * 1024 * 1024 });
  t.same(c.aql, { model: 'document', namespace: 'default' }, "AQL's bare collection names: the clients' defaults");
  t.ok(Object.isFrozen(c) && Object.isFrozen(c.tls));
});

t.test('each bad field is named, with what to write instead', async (t) => {
  const cases: [string, Record<string, unknown>, string][] = [
    ['missing shardId', { shardId: undefined }, 'shardId'],
    ['bad shardId', { shardId: 'Shard 1' }, 'shardId'],
    ['unknown top-level key', { colour: 'blue' }, 'colour'],
    ['aql model not a ThemisDB model', { aql: { model: 'table' } }, 'aql.model'],
    ['aql namespace with a dot', { aql: { namespace: 'a.b' } }, 'aql.namespace'],
    ['aql unknown key', { aql: { collection: 'x' } }, 'aql.collection'],
    ['app port off loopback', { app: { host: '0.0.0.0', port: 7080 } }, 'app.host'],
    ['app port out of range', { app: { port: 70000 } }, 'app.port'],
    ['app socket without a path', { app: { socket: {} } }, 'app.socket.path'],
    ['app socket open to everyone', { app: { socket: { path: '/run/themis/app.sock', mode: '0666' } } }, 'app.socket.mode'],
    ['app socket mode not octal', { app: { socket: { path: '/run/themis/app.sock', mode: 'rw-rw----' } } }, 'app.socket.mode'],
    ['app socket group not a name', { app: { socket: { path: '/run/themis/app.sock', group: 'Bad Group' } } }, 'app.socket.group'],
    ['app socket owner negative', { app: { socket: { path: '/run/themis/app.sock', owner: -1 } } }, 'app.socket.owner'],
    ['app socket unknown key', { app: { socket: { path: '/run/themis/app.sock', perms: 1 } } }, 'app.socket.perms'],
    ['app with neither tcp nor socket', { app: { tcp: false } }, 'app.tcp'],
    ['mesh host not an address', { mesh: { host: 'my host', port: 7443 } }, 'mesh.host'],
    ['storage over https', { storage: { url: 'https://127.0.0.1:8765' } }, 'storage.url'],
    ['storage off loopback', { storage: { url: 'http://10.0.0.9:8765' } }, 'storage.url'],
    ['storage not a URL', { storage: { url: 'nope' } }, 'storage.url'],
    ['no tls', { tls: undefined }, 'tls'],
    ['tls without key', { tls: { ...good.tls, key: undefined } }, 'tls.key'],
    ['empty crls', { tls: { ...good.tls, crls: [] } }, 'tls.crls'],
    ['unknown tls key', { tls: { ...good.tls, pass: 'x' } }, 'tls.pass'],
    ['no topology', { topology: undefined }, 'topology'],
    ['timeout too small', { timeouts: { requestMs: 1 } }, 'timeouts.requestMs'],
    ['replay window as text', { replay: { windowMs: 'long' } }, 'replay.windowMs'],
    ['watchFiles not a boolean', { watchFiles: 'yes' }, 'watchFiles'],
    ['replay reserve longer than the window', { replay: { windowMs: 5000, reserveMs: 6000 } }, 'replay.reserveMs'],
    ['replay state file empty', { replay: { stateFile: '' } }, 'replay.stateFile'],
    ['app headers timeout zero', { app: { headersTimeoutMs: 0 } }, 'app.headersTimeoutMs'],
    ['app request timeout shorter than headers', { app: { headersTimeoutMs: 5000, requestTimeoutMs: 1000 } }, 'app.requestTimeoutMs'],
    ['app idle timeout as text', { app: { idleTimeoutMs: 'long' } }, 'app.idleTimeoutMs'],
    ['app without a connection cap', { app: { maxConnections: 0 } }, 'app.maxConnections'],
    ['unknown app setting', { app: { keepAlive: 5 } }, 'app.keepAlive'],
    ['admin request timeout negative', { admin: { requestTimeoutMs: -1 } }, 'admin.requestTimeoutMs'],
    ['admin connection cap fractional', { admin: { maxConnections: 1.5 } }, 'admin.maxConnections'],
    ['mesh body timeout too short', { mesh: { host: '10.0.0.5', bodyTimeoutMs: 10 } }, 'mesh.bodyTimeoutMs'],
    ['mesh body budget below maxBodyBytes', { mesh: { host: '10.0.0.5', maxInflightBodyBytes: 4096 }, maxBodyBytes: 8192 }, 'mesh.maxInflightBodyBytes'],
    ['unknown mesh setting', { mesh: { host: '10.0.0.5', idleTimeoutMs: 5 } }, 'mesh.idleTimeoutMs'],
    ['etcd over plain http', { etcd: { endpoints: ['http://10.0.0.2:2379'] } }, 'etcd.endpoints'],
    ['etcd without endpoints', { etcd: {} }, 'etcd.endpoints'],
    ['admin.console not a boolean', { admin: { console: 'on' }, etcd: { endpoints: ['https://10.0.0.2:2379'] } }, 'admin.console'],
    ['admin.console with the admin port off loopback', { admin: { host: '10.0.0.5', console: true }, etcd: { endpoints: ['https://10.0.0.2:2379'] } }, 'admin.console'],
    ['admin.console with the admin port on every address', { admin: { host: '0.0.0.0', console: true }, etcd: { endpoints: ['https://10.0.0.2:2379'] } }, 'admin.console'],
    ['admin.console without etcd', { admin: { console: true } }, 'admin.console'],
    ['etcd without a cluster name', { cluster: undefined, etcd: { endpoints: ['https://10.0.0.2:2379'] } }, 'cluster'],
  ];
  for (const [name, patch, field] of cases) {
    const cfg: Record<string, unknown> = { ...good, ...patch };
    for (const k of Object.keys(patch)) if (patch[k] === undefined) delete cfg[k];
    t.throws(() => validateSidecarConfig(cfg, '/etc/themis'), { name: 'ConfigError', field }, name);
  }
});

t.test('admin.console: on with etcd and the admin port on loopback; the admin port alone may still listen elsewhere', async (t) => {
  const etcd = { endpoints: ['https://10.0.0.2:2379'] };
  t.equal(validateSidecarConfig({ ...good, etcd, admin: { console: true } }, '/').admin.console, true);
  t.equal(validateSidecarConfig({ ...good, etcd, admin: { host: '127.0.0.2', console: true } }, '/').admin.console, true);
  t.equal(validateSidecarConfig({ ...good, etcd, admin: { host: '::1', console: true } }, '/').admin.console, true);
  t.equal(validateSidecarConfig({ ...good, admin: { host: '10.0.0.5' } }, '/').admin.console, false, 'metrics scraped from another host, no console');
  t.throws(() => validateSidecarConfig({ ...good, etcd, admin: { host: '10.0.0.5', console: true } }, '/'), { message: /admin\.console.*10\.0\.0\.5.*write 127\.0\.0\.1/ });
});

t.test('cluster: cluster-dev only without etcd (a topology file of another cluster is refused at start)', async (t) => {
  const { cluster: _, ...unnamed } = good;
  t.equal(validateSidecarConfig(unnamed, '/etc/themis').cluster, 'cluster-dev');
  t.equal(validateSidecarConfig({ ...good, etcd: { endpoints: ['https://10.0.0.2:2379'] } }, '/etc/themis').cluster, 'prod');
});

t.test('app.socket: a relative path resolves against the config folder; names become ids at start', async (t) => {
  const c = validateSidecarConfig({ ...good, app: { tcp: false, socket: { path: 'run/app.sock', group: 'root', owner: 'root', mode: '0640' } } }, '/etc/themis');
  t.same(c.app.socket, { path: '/etc/themis/run/app.sock', mode: 0o640, owner: 'root', group: 'root' });
  t.equal(c.app.tcp, false);
  t.same(socketIds(c.app.socket!), { uid: 0, gid: 0 });
  const numbers = validateSidecarConfig({ ...good, app: { socket: { path: '/run/a.sock', group: 100 } } }, '/').app.socket!;
  t.same(numbers, { path: '/run/a.sock', mode: 0o660, owner: undefined, group: 100 }, 'mode 0660 by default');
  t.same(socketIds(numbers), { gid: 100 }, 'a number is taken as it is');
  const unknown = validateSidecarConfig({ ...good, app: { socket: { path: '/run/a.sock', group: 'no-such-group-here' } } }, '/').app.socket!;
  t.throws(() => socketIds(unknown), { name: 'ConfigError', message: /app\.socket\.group.*no group "no-such-group-here"/ });
});

t.test('workers: 1 by default, "auto" is the number of cores; with etcd, failover stays on', async (t) => {
  const { availableParallelism } = await import('node:os');
  t.equal(validateSidecarConfig(good, '/etc/themis').workers, 1);
  t.equal(validateSidecarConfig({ ...good, workers: 4 }, '/etc/themis').workers, 4);
  t.equal(validateSidecarConfig({ ...good, workers: 'auto' }, '/etc/themis').workers, Math.min(64, availableParallelism()));
  for (const bad of [0, 65, 1.5, '2', 'all', null, true]) {
    t.throws(() => validateSidecarConfig({ ...good, workers: bad }, '/etc/themis'), { name: 'ConfigError', field: 'workers' }, `workers: ${JSON.stringify(bad)}`);
  }
  const withEtcd = { ...good, cluster: 'prod', etcd: { endpoints: ['https://127.0.0.1:2379'] } };
  const multi = validateSidecarConfig({ ...withEtcd, workers: 2 }, '/etc/themis');
  t.same([multi.workers, multi.replication.failover], [2, true], 'workers mirror the control process\'s failover');
});

t.test('signing: the thread pool under load ("auto") by default, or always, or never; its size only for workers', async (t) => {
  t.same(validateSidecarConfig(good, '/etc/themis').signing, { threadpool: 'auto', threads: undefined });
  t.same(validateSidecarConfig({ ...good, signing: { threadpool: false } }, '/etc/themis').signing, { threadpool: false, threads: undefined });
  t.same(validateSidecarConfig({ ...good, signing: { threadpool: 'auto' } }, '/etc/themis').signing, { threadpool: 'auto', threads: undefined });
  t.same(validateSidecarConfig({ ...good, signing: { threadpool: true } }, '/etc/themis').signing, { threadpool: true, threads: undefined });
  t.same(validateSidecarConfig({ ...good, workers: 2, signing: { threadpool: true, threads: 8 } }, '/etc/themis').signing, { threadpool: true, threads: 8 });
  t.throws(() => validateSidecarConfig({ ...good, signing: { threads: 8 } }, '/etc/themis'), { name: 'ConfigError', field: 'signing.threads', message: /UV_THREADPOOL_SIZE/ }, 'one process: the pool is sized by its environment');
  for (const [bad, field] of [[{ threadpool: 'yes' }, 'signing.threadpool'], [{ threadpool: 'true' }, 'signing.threadpool'], [{ threadpool: 1 }, 'signing.threadpool'], [{ threads: 0 }, 'signing.threads'], [{ threads: 1025 }, 'signing.threads'], [{ threads: 2.5 }, 'signing.threads'], [{ pool: 4 }, 'signing.pool'], ['on', 'signing']] as const) {
    t.throws(() => validateSidecarConfig({ ...good, workers: 2, signing: bad }, '/etc/themis'), { name: 'ConfigError', field }, `signing: ${JSON.stringify(bad)}`);
  }
});
