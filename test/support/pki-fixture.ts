// A test PKI minted by src/pki/dev-pki.ts (N shards on contiguous certified ranges, two clients) with
// PEM contents, issue and revoke; and helpers the PKI tests share: openssl, themis-pki, snapshots.
import { TOKEN_MAX } from '../../src/hash.js';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './root.js';
import type { CaName, PkiLayout } from '../../src/pki/ca-store.js';
import { revoke, writeCrl, type LeafOptions, type PkiContext } from '../../src/pki/commands.js';
import type { RevocationReason } from '../../src/pki/crl.js';
import { devLeafMinter, devPkiContext, devShards, mintDevPki, replicatedSpan, type DevLeaf, type DevPki } from '../../src/pki/dev-pki.js';
import type { Validity } from '../../src/pki/issue.js';
import type { LeafProfileParams } from '../../src/pki/profiles.js';
import type { Clock } from '../../src/runtime.js';

export { splitTokenRange } from '../../src/pki/dev-pki.js';

export const FIXTURE_PASSPHRASE = 'fixture-passphrase';
/** Few PBKDF2 rounds: the keys are real encrypted PKCS#8, just cheap to open in tests. */
const KDF_ITERATIONS = 1000;
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
  /** The range it owns in a 'certified' topology (its certificate may cover more: see `replicas`). */
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
  /** Shards beyond `shards` (not in a mesh's topology), certified for every token: for shard add. */
  spares: ShardMaterial[];
  operators: { admin: LeafMaterial; readonly: LeafMaterial };
  clients: { readWrite: LeafMaterial; readOnly: LeafMaterial };
  etcd: LeafMaterial;
  /** The same PKI as the dev PKI describes it (file paths only): what the local mesh takes. */
  dev: DevPki;
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
  /** Each shard's range replicated on the next `replicas` shards: certificates cover those too (tokenRange stays the owned range). */
  replicas?: number;
  /** Certificates for this many more shards (after the others, on the next addresses), covering every token. */
  spares?: number;
  cluster?: string;
  clock?: Clock;
  /** A suffix for every CA's name: a second root generation for rotation tests. */
  generation?: string;
}

async function material(name: string, leaf: DevLeaf): Promise<LeafMaterial> {
  const [cert, key, chain] = await Promise.all([leaf.certPath, leaf.keyPath, leaf.chainPath].map((p) => readFile(p, 'utf8')));
  return { name, ...leaf, cert: cert!, key: key!, chain: chain! };
}

export async function createPkiFixture(opts: PkiFixtureOptions = {}): Promise<PkiFixture> {
  const dir = await mkdtemp(join(tmpdir(), 'themis-pki-'));
  const passphrase = FIXTURE_PASSPHRASE;
  const cluster = opts.cluster ?? 'cluster-test';
  const specs = devShards(opts.shards ?? 3, { firstIp: 1, split: true });
  // Replicated: certificates also cover the ranges each shard replicates (failover may hand them over).
  const split = specs.map((s) => s.tokenRange!);
  const certified = opts.replicas ? specs.map((s, i) => ({ ...s, tokenRange: replicatedSpan(split, i, opts.replicas!) })) : specs;
  const spareSpecs = devShards(specs.length + (opts.spares ?? 0), { firstIp: 1, split: false })
    .slice(specs.length)
    .map((s) => ({ ...s, tokenRange: { start: 0n, end: TOKEN_MAX } }));
  const dev = await mintDevPki({
    dir, cluster, shards: [...certified, ...spareSpecs], passphrase, kdfIterations: KDF_ITERATIONS, clock: opts.clock,
    clients: [{ name: 'app-rw', capabilities: ['read', 'write'] }, { name: 'app-ro', capabilities: ['read'] }],
    ...(opts.generation ? { generation: opts.generation } : {}),
  });
  const layout = dev.layout;
  const ctx = devPkiContext(layout, { clock: opts.clock, kdfIterations: KDF_ITERATIONS });
  const mint = await devLeafMinter(ctx, passphrase);
  const shards: ShardMaterial[] = [];
  for (const s of specs) shards.push({ ...(await material(s.id, dev.shards[s.id]!)), id: s.id, ip: s.ip, tokenRange: s.tokenRange! });
  const spares: ShardMaterial[] = [];
  for (const s of spareSpecs) spares.push({ ...(await material(s.id, dev.shards[s.id]!)), id: s.id, ip: s.ip, tokenRange: s.tokenRange });
  const ca = async (name: CaName): Promise<CaMaterial> => ({
    certPath: layout.caCert(name),
    cert: await readFile(layout.caCert(name), 'utf8'),
    chainPath: name === 'root' ? layout.caCert(name) : layout.caChain(name),
    chain: await readFile(name === 'root' ? layout.caCert(name) : layout.caChain(name), 'utf8'),
    crlPath: layout.caCrl(name),
    crl: await readFile(layout.caCrl(name), 'utf8'),
  });
  const fx: PkiFixture = {
    dir, layout, ctx, passphrase, cluster, shards, spares, dev,
    operators: { admin: await material('admin', dev.operators.admin), readonly: await material('readonly', dev.operators.readonly) },
    clients: { readWrite: await material('app-rw', dev.clients['app-rw']!), readOnly: await material('app-ro', dev.clients['app-ro']!) },
    etcd: await material('etcd', dev.etcd),
    root: await ca('root'),
    cas: { cluster: await ca('cluster'), operator: await ca('operator'), client: await ca('client') },
    crls: () => [fx.root.crl, fx.cas.cluster.crl, fx.cas.operator.crl, fx.cas.client.crl],
    issue: async (params, name, extra) => material(name, await mint(params, name, extra)),
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

export { ROOT };
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
