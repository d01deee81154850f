// A complete PKI minted at test start through the library (no child processes): root, the
// three intermediates, N shards, admin/readonly operators, read-write/read-only clients, etcd.
// Also small helpers the PKI tests share: openssl, the compiled themis-pki, directory snapshots.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TOKEN_MAX } from '../../src/hash.js';
import { PkiLayout, loadIssuer, type CaName } from '../../src/pki/ca-store.js';
import { createIntermediate, initRoot, issue, revoke, writeCrl, type LeafOptions, type PkiContext } from '../../src/pki/commands.js';
import type { RevocationReason } from '../../src/pki/crl.js';
import type { Capability } from '../../src/pki/identity-extension.js';
import type { Issuer, Validity } from '../../src/pki/issue.js';
import { clientProfile, operatorProfile, serverProfile, shardProfile, type LeafProfileParams } from '../../src/pki/profiles.js';
import { systemClock, systemRandom, type Clock } from '../../src/runtime.js';

export const FIXTURE_PASSPHRASE = 'fixture-passphrase';
const INTERMEDIATES = ['cluster', 'operator', 'client'] as const;

export interface CaMaterial {
  certPath: string;
  cert: string; // PEM
  chainPath: string; // intermediate + root (the root's own cert for the root)
  chain: string;
  crlPath: string;
  crl: string; // PEM, `X509 CRL`
}

export interface LeafMaterial {
  name: string;
  serial: string; // serialHex
  certPath: string;
  keyPath: string;
  chainPath: string; // leaf + intermediate: what a TLS endpoint presents
  cert: string;
  key: string;
  chain: string;
}

export interface ShardMaterial extends LeafMaterial {
  id: string; // shard-001
  ip: string; // 127.0.0.N (the certificate also names 127.0.0.1 and localhost)
  tokenRange: { start: bigint; end: bigint };
}

export interface PkiFixture {
  dir: string;
  layout: PkiLayout;
  ctx: PkiContext;
  passphrase: string;
  cluster: string;
  root: CaMaterial;
  cas: Record<(typeof INTERMEDIATES)[number], CaMaterial>;
  shards: ShardMaterial[];
  operators: { admin: LeafMaterial; readonly: LeafMaterial };
  clients: { readWrite: LeafMaterial; readOnly: LeafMaterial };
  etcd: LeafMaterial;
  /** Current CRL PEMs of all four CAs (root first): what Node's `crl:` option needs. */
  crls(): string[];
  /** Mints one more leaf (e.g. with a validity in the past) into its own folder. */
  issue(params: LeafProfileParams, name: string, extra?: { validity?: Validity; overrides?: LeafOptions['overrides'] }): Promise<LeafMaterial>;
  /** Records the revocation and republishes the issuing CA's CRL. */
  revoke(serial: string, reason?: RevocationReason): Promise<void>;
  cleanup(): Promise<void>;
}

export interface PkiFixtureOptions {
  shards?: number;
  cluster?: string;
  clock?: Clock;
}

/** Splits 0 … 2^64-1 into n contiguous ranges. */
export function splitTokenRange(n: number): Array<{ start: bigint; end: bigint }> {
  const size = (TOKEN_MAX + 1n) / BigInt(n);
  return Array.from({ length: n }, (_, i) => ({
    start: BigInt(i) * size,
    end: i === n - 1 ? TOKEN_MAX : BigInt(i + 1) * size - 1n,
  }));
}

export async function createPkiFixture(opts: PkiFixtureOptions = {}): Promise<PkiFixture> {
  const dir = await mkdtemp(join(tmpdir(), 'themis-pki-'));
  const layout = new PkiLayout(dir);
  // Few PBKDF2 rounds: the keys are real encrypted PKCS#8, just cheap to open in tests.
  const ctx: PkiContext = { layout, clock: opts.clock ?? systemClock, random: systemRandom, force: false, kdfIterations: 1000 };
  const passphrase = FIXTURE_PASSPHRASE;
  const cluster = opts.cluster ?? 'cluster-test';
  await initRoot(ctx, { passphrase, keyType: 'ecdsa-p256' });
  for (const kind of INTERMEDIATES) {
    await createIntermediate(ctx, { kind, rootPassphrase: passphrase, newPassphrase: passphrase, keyType: 'ecdsa-p256' });
  }
  const issuers = new Map<CaName, Issuer>();
  for (const ca of INTERMEDIATES) issuers.set(ca, await loadIssuer(layout, ca, passphrase));

  const mint = async (params: LeafProfileParams, name: string, extra: { validity?: Validity; overrides?: LeafOptions['overrides'] } = {}) => {
    const ca = params.profile === 'shard' || params.profile === 'server' ? 'cluster' : params.profile;
    const r = await issue(ctx, { params, name, caPassphrase: passphrase, issuer: issuers.get(ca), keyType: 'ecdsa-p256', ...extra });
    const [cert, key, chain] = await Promise.all([r.files.cert, r.files.key, r.files.chain].map((p) => readFile(p, 'utf8')));
    return { name, serial: r.certificate!.serial, certPath: r.files.cert, keyPath: r.files.key, chainPath: r.files.chain, cert: cert!, key: key!, chain: chain! };
  };

  const ranges = splitTokenRange(opts.shards ?? 3);
  const shards: ShardMaterial[] = [];
  for (const [i, tokenRange] of ranges.entries()) {
    const id = `shard-${String(i + 1).padStart(3, '0')}`;
    const ip = `127.0.0.${i + 1}`;
    const caps: Capability[] = ['read', 'write', 'replicate'];
    const params = shardProfile({ id, cluster, datacenter: 'dc1', dns: ['localhost'], ips: [...new Set([ip, '127.0.0.1'])], tokenRange, capabilities: caps, role: 'primary' });
    shards.push({ ...(await mint(params, id)), id, ip, tokenRange });
  }
  const operators = {
    admin: await mint(operatorProfile({ name: 'admin', capabilities: ['rebalance', 'add_shard', 'remove_shard', 'view_topology'] }), 'admin'),
    readonly: await mint(operatorProfile({ name: 'readonly', capabilities: ['view_topology'] }), 'readonly'),
  };
  const clients = {
    readWrite: await mint(clientProfile({ name: 'app-rw', capabilities: ['read', 'write'] }), 'app-rw'),
    readOnly: await mint(clientProfile({ name: 'app-ro', capabilities: ['read'] }), 'app-ro'),
  };
  const etcd = await mint(serverProfile({ name: 'etcd', dns: ['localhost'], ips: ['127.0.0.1'] }), 'etcd');

  const ca = async (name: CaName): Promise<CaMaterial> => ({
    certPath: layout.caCert(name),
    cert: await readFile(layout.caCert(name), 'utf8'),
    chainPath: name === 'root' ? layout.caCert(name) : layout.caChain(name),
    chain: await readFile(name === 'root' ? layout.caCert(name) : layout.caChain(name), 'utf8'),
    crlPath: layout.caCrl(name),
    crl: await readFile(layout.caCrl(name), 'utf8'),
  });
  const fx: PkiFixture = {
    dir, layout, ctx, passphrase, cluster, shards, operators, clients, etcd,
    root: await ca('root'),
    cas: { cluster: await ca('cluster'), operator: await ca('operator'), client: await ca('client') },
    crls: () => [fx.root.crl, fx.cas.cluster.crl, fx.cas.operator.crl, fx.cas.client.crl],
    issue: mint,
    revoke: async (serial, reason = 'keyCompromise') => {
      const r = await revoke(ctx, { serial, reason });
      const name = r.revocation!.ca;
      await writeCrl(ctx, { ca: name, passphrase });
      const crl = await readFile(layout.caCrl(name), 'utf8');
      if (name === 'root') fx.root.crl = crl;
      else fx.cas[name].crl = crl;
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
  return fx;
}

// ---- helpers shared by the PKI tests -------------------------------------------------------

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const PKI_CLI = join(ROOT, 'dist/src/cli/themis-pki.js');

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs real openssl; never throws (tests look at status and output). */
export function openssl(args: string[], input?: string | Buffer): Run {
  const r = spawnSync('openssl', args, { input, encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** Runs the compiled themis-pki with a clean environment plus `env` (no terminal: stdin is a pipe). */
export function runPki(args: string[], env: Record<string, string> = {}, cwd = ROOT): Run {
  const r = spawnSync(process.execPath, [PKI_CLI, ...args], {
    cwd,
    encoding: 'utf8',
    timeout: 60_000,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  return { status: r.status, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** path → "mode sha256" for every file under dir: equal snapshots mean nothing was written. */
export async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        out[p + '/'] = 'dir';
        await walk(p);
      } else {
        const st = await stat(p);
        out[p] = `${(st.mode & 0o777).toString(8)} ${createHash('sha256').update(await readFile(p)).digest('hex')}`;
      }
    }
  };
  await walk(dir);
  return out;
}
