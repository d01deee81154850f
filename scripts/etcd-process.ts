// A private etcd for tests and the dev cluster: Debian's etcd binary (unpacked, not installed,
// so no system service starts), one member on free loopback ports, a temporary data dir,
// client TLS with a server certificate from our cluster CA and --client-cert-auth.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { debianTool } from './debian-tool.js';
import { reservePorts } from './ports.js';

export interface EtcdTls {
  /** Server certificate chain (leaf + cluster CA) and key. */
  cert: string;
  key: string;
  /** The root CA: client certificates must chain to it. */
  ca: string;
  /** etcd's --client-crl-file (themis-admin etcd crl-file writes it; it must exist first). */
  crlFile?: string;
}

export interface ClientTls {
  cert: string;
  key: string;
  ca: string;
}

export interface EtcdProcess {
  endpoint: string;
  dataDir: string;
  /** Client and peer ports, to start the same member again (restart tests). */
  ports: { client: number; peer: number };
  child: ChildProcess;
  /** Runs etcdctl against this etcd with the given client certificate. */
  etcdctl(client: ClientTls, args: string[]): { status: number | null; stdout: string; stderr: string };
  stop(): Promise<void>;
}

export function etcdctlPath(): string {
  return debianTool('etcdctl', 'etcd-client');
}

export async function startEtcd(tls: EtcdTls, o: { dataDir?: string; port?: number; peerPort?: number; timeoutMs?: number } = {}): Promise<EtcdProcess> {
  const etcd = debianTool('etcd', 'etcd-server');
  const etcdctl = etcdctlPath();
  const dataDir = o.dataDir ?? mkdtempSync(join(tmpdir(), 'themis-etcd-'));
  const [clientPort, peerPort] = o.port
    ? [o.port, o.peerPort ?? (await reservePorts([{ host: '127.0.0.1' }]))[0]!]
    : await reservePorts([{ host: '127.0.0.1' }, { host: '127.0.0.1' }]);
  const endpoint = `https://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const child = spawn(
    etcd,
    [
      '--name', 'themis', '--data-dir', dataDir,
      '--listen-client-urls', endpoint, '--advertise-client-urls', endpoint,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `themis=${peer}`,
      '--cert-file', tls.cert, '--key-file', tls.key, '--client-cert-auth', '--trusted-ca-file', tls.ca,
      ...(tls.crlFile ? ['--client-crl-file', tls.crlFile] : []),
      '--logger', 'zap', '--log-level', 'error',
      // Loopback, one member: a short election timeout lowers etcd's minimum lease TTL to 1 s, so
      // failover tests can run with 1 s leases (the default 1 s election timeout makes it 2 s).
      '--heartbeat-interval', '50', '--election-timeout', '500',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-8192)));
  const ctl = (client: ClientTls, args: string[]) => {
    const r = spawnSync(etcdctl, ['--endpoints', endpoint, '--cacert', client.ca, '--cert', client.cert, '--key', client.key, '--dial-timeout', '2s', ...args], {
      encoding: 'utf8',
      env: { ...process.env, ETCDCTL_API: '3' },
      timeout: 10_000,
    });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const deadline = Date.now() + (o.timeoutMs ?? 20_000);
  for (;;) {
    if (child.exitCode !== null) throw new Error(`etcd exited (${child.exitCode}) before serving:\n${err}`);
    // The server certificate doubles as a client one (it allows clientAuth) for the health probe.
    if (ctl({ cert: tls.cert, key: tls.key, ca: tls.ca }, ['endpoint', 'health']).status === 0) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`etcd did not become healthy in time:\n${err}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    endpoint,
    dataDir,
    ports: { client: clientPort!, peer: peerPort! },
    child,
    etcdctl: ctl,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      if (!o.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
