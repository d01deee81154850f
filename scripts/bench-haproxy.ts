// The peer we measure against: two HAProxy 2.6 instances (Debian's package) as sidecars —
// A takes plaintext HTTP/1.1 from the app and speaks HTTP/2 over mutually authenticated
// TLS 1.3 to B, which forwards to the storage node. Same certificates, root and CRLs as our
// sidecars; HAProxy checks chain and CRLs per connection but signs nothing per request.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { debianLibraryPath, debianTool } from './debian-tool.js';

export interface HaproxyChain {
  /** http://127.0.0.1:PORT — the app side of A. */
  url: string;
  a: ChildProcess;
  b: ChildProcess;
  stop(): Promise<void>;
}

export interface HaproxyChainOptions {
  dir: string;
  appPort: number;
  mesh: { host: string; port: number };
  storage: { host: string; port: number };
  /** Leaf + intermediate, and the (unencrypted) key, of each side. */
  a: { chainPath: string; keyPath: string };
  b: { chainPath: string; keyPath: string };
  rootCert: string;
  crls: readonly string[];
}

const LIBS = ['liblua5.3-0', 'libopentracing-c-wrapper0', 'libopentracing1'];

function config(frontend: string, backend: string): string {
  return `global
  maxconn 4096
  ssl-default-bind-options ssl-min-ver TLSv1.3
  ssl-default-server-options ssl-min-ver TLSv1.3
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend in
${frontend}
  default_backend out
backend out
  http-reuse always
${backend}
`;
}

async function waitForPort(host: string, port: number, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`haproxy exited (${child.exitCode}):\n${log()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, host, () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`haproxy did not listen on ${host}:${port}:\n${log()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function startHaproxyChain(o: HaproxyChainOptions): Promise<HaproxyChain> {
  const bin = debianTool('haproxy', 'haproxy', { binDir: 'usr/sbin', libs: LIBS });
  const env = { ...process.env, LD_LIBRARY_PATH: debianLibraryPath('haproxy') };
  const pem = (side: { chainPath: string; keyPath: string }, name: string) => {
    const file = join(o.dir, `${name}.pem`);
    writeFileSync(file, readFileSync(side.chainPath, 'utf8') + readFileSync(side.keyPath, 'utf8'), { mode: 0o600 });
    return file;
  };
  const crlFile = join(o.dir, 'haproxy-crls.pem');
  writeFileSync(crlFile, o.crls.map((f) => readFileSync(f, 'utf8')).join(''));
  const tls = `ca-file ${o.rootCert} crl-file ${crlFile} verify required`;
  const bCfg = join(o.dir, 'haproxy-b.cfg');
  writeFileSync(bCfg, config(`  bind ${o.mesh.host}:${o.mesh.port} ssl crt ${pem(o.b, 'haproxy-b')} ${tls} alpn h2`, `  server storage ${o.storage.host}:${o.storage.port}`));
  const aCfg = join(o.dir, 'haproxy-a.cfg');
  writeFileSync(aCfg, config(`  bind 127.0.0.1:${o.appPort}`, `  server b ${o.mesh.host}:${o.mesh.port} ssl crt ${pem(o.a, 'haproxy-a')} ${tls} alpn h2`));
  const start = (cfg: string) => {
    const child = spawn(bin, ['-db', '-f', cfg], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-8192)));
    return { child, log: () => err };
  };
  const b = start(bCfg);
  const a = start(aCfg);
  const stop = async () => {
    for (const c of [a.child, b.child]) {
      if (c.exitCode === null && c.signalCode === null) {
        const exited = new Promise((r) => c.once('exit', r));
        c.kill('SIGTERM');
        await exited;
      }
    }
  };
  try {
    await waitForPort(o.mesh.host, o.mesh.port, b.child, b.log);
    await waitForPort('127.0.0.1', o.appPort, a.child, a.log);
  } catch (e) {
    await stop();
    throw e;
  }
  return { url: `http://127.0.0.1:${o.appPort}`, a: a.child, b: b.child, stop };
}
