// The one way to mint a development PKI (dev cluster, benchmarks, local mesh, test fixture),
// through the same commands as `themis-pki`: root, three intermediates, leaves and CRLs.
import { ISSUER_OF } from './ca-kind.js';
import { PkiLayout, loadIssuer, type CaName } from './ca-store.js';
import { createIntermediate, initRoot, issue, type LeafOptions, type PkiContext } from './commands.js';
import type { Capability } from './identity-extension.js';
import type { Issuer, Validity } from './issue.js';
import { clientProfile, operatorProfile, serverProfile, shardProfile, type LeafProfileParams } from './profiles.js';
import { TOKEN_MAX } from '../hash.js';
import { systemClock, systemRandom, type Clock } from '../runtime.js';

export interface DevShard {
  id: string;
  ip: string;
  /** Certified token range; default: all tokens (the ring scatters a shard's ranges). */
  tokenRange?: { start: bigint; end: bigint };
}

export interface DevClient {
  name: string;
  capabilities: Capability[];
}

export interface DevLeaf {
  serial: string;
  certPath: string;
  keyPath: string;
  chainPath: string;
}

export interface DevPki {
  layout: PkiLayout;
  rootCert: string;
  /** One CRL file per CA, root first. */
  crls: string[];
  shards: Record<string, DevLeaf>;
  operators: { admin: DevLeaf; readonly: DevLeaf };
  /** The first of `clients`. */
  client: DevLeaf;
  clients: Record<string, DevLeaf>;
  /** etcd's server certificate (cluster CA; 127.0.0.1 and localhost). */
  etcd: DevLeaf;
}

export interface DevPkiOptions {
  dir: string;
  cluster: string;
  shards: DevShard[];
  /** Of every CA key. */
  passphrase: string;
  /** PBKDF2 rounds of the CA keys; fixtures and benchmarks use few. */
  kdfIterations?: number;
  clock?: Clock;
  /** Client certificates to issue; default one read-write client, app1. */
  clients?: DevClient[];
  /**
   * Appended to every CA's name ("Themis Root CA 2027"…): a new root generation for a root
   * rotation must not share a name with the CAs it replaces (trust-bundle.ts).
   */
  generation?: string;
}

/** Mints one more leaf from the CA its profile belongs to. */
export type LeafMinter = (params: LeafProfileParams, name: string, extra?: { validity?: Validity; overrides?: LeafOptions['overrides'] }) => Promise<DevLeaf>;

const KEY_TYPE = 'ecdsa-p256' as const;
const INTERMEDIATES = ['cluster', 'operator', 'client'] as const;

/** shard-001, shard-002, … */
const devShardId = (i: number): string => `shard-${String(i + 1).padStart(3, '0')}`;

/** Splits 0 … 2^64-1 into n contiguous ranges. */
export function splitTokenRange(n: number): Array<{ start: bigint; end: bigint }> {
  const size = (TOKEN_MAX + 1n) / BigInt(n);
  return Array.from({ length: n }, (_, i) => ({
    start: BigInt(i) * size,
    end: i === n - 1 ? TOKEN_MAX : BigInt(i + 1) * size - 1n,
  }));
}

/**
 * The token range to certify shard i for when each range of `split` is owned by its shard and
 * replicated on the next `replicas` shards (wrapping): its own range and those it replicates,
 * so that it may take them over in a failover. A span that would wrap covers every token.
 */
export function replicatedSpan(split: readonly { start: bigint; end: bigint }[], i: number, replicas: number): { start: bigint; end: bigint } {
  return i - replicas >= 0 ? { start: split[i - replicas]!.start, end: split[i]!.end } : { start: 0n, end: TOKEN_MAX };
}

/** n shards on 127.0.0.{firstIp}, …; each certified for a contiguous 1/n of the tokens when `split`. */
export function devShards(n: number, o: { firstIp: number; split: boolean }): DevShard[] {
  const ranges = o.split ? splitTokenRange(n) : [];
  return Array.from({ length: n }, (_, i) => ({ id: devShardId(i), ip: `127.0.0.${i + o.firstIp}`, ...(o.split ? { tokenRange: ranges[i]! } : {}) }));
}

export function devPkiContext(layout: PkiLayout, o: { clock?: Clock; kdfIterations?: number } = {}): PkiContext {
  return { layout, clock: o.clock ?? systemClock, random: systemRandom, force: false, kdfIterations: o.kdfIterations };
}

/** Opens the three intermediates once; every leaf is then issued by the one its profile names. */
export async function devLeafMinter(ctx: PkiContext, passphrase: string): Promise<LeafMinter> {
  const issuers = new Map<CaName, Issuer>();
  for (const ca of INTERMEDIATES) issuers.set(ca, await loadIssuer(ctx.layout, ca, passphrase));
  return async (params, name, extra = {}) => {
    const r = await issue(ctx, { params, name, caPassphrase: passphrase, issuer: issuers.get(ISSUER_OF[params.profile]), keyType: KEY_TYPE, ...extra });
    return { serial: r.certificate!.serial, certPath: r.files.cert, keyPath: r.files.key, chainPath: r.files.chain };
  };
}

export async function mintDevPki(o: DevPkiOptions): Promise<DevPki> {
  const layout = new PkiLayout(o.dir);
  const ctx = devPkiContext(layout, o);
  const gen = o.generation ? ` ${o.generation}` : '';
  await initRoot(ctx, { passphrase: o.passphrase, keyType: KEY_TYPE, ...(gen ? { commonName: `Themis Root CA${gen}` } : {}) });
  for (const kind of INTERMEDIATES) {
    const commonName = gen ? `Themis ${kind[0]!.toUpperCase()}${kind.slice(1)} CA${gen}` : undefined;
    await createIntermediate(ctx, { kind, rootPassphrase: o.passphrase, newPassphrase: o.passphrase, keyType: KEY_TYPE, ...(commonName ? { commonName } : {}) });
  }
  const mint = await devLeafMinter(ctx, o.passphrase);
  const shards: Record<string, DevLeaf> = {};
  for (const s of o.shards) {
    const params = shardProfile({
      id: s.id,
      cluster: o.cluster,
      datacenter: 'dc1',
      dns: ['localhost'],
      ips: [...new Set([s.ip, '127.0.0.1'])],
      tokenRange: s.tokenRange ?? { start: 0n, end: TOKEN_MAX },
      capabilities: ['read', 'write', 'replicate'],
      role: 'primary',
    });
    shards[s.id] = await mint(params, s.id);
  }
  const operators = {
    admin: await mint(operatorProfile({ name: 'admin', capabilities: ['rebalance', 'add_shard', 'remove_shard', 'view_topology', 'admin'] }), 'admin'),
    readonly: await mint(operatorProfile({ name: 'readonly', capabilities: ['view_topology'] }), 'readonly'),
  };
  const clients: Record<string, DevLeaf> = {};
  for (const c of o.clients ?? [{ name: 'app1', capabilities: ['read', 'write'] }]) {
    clients[c.name] = await mint(clientProfile({ name: c.name, capabilities: c.capabilities }), c.name);
  }
  return {
    layout,
    rootCert: layout.caCert('root'),
    crls: (['root', ...INTERMEDIATES] as const).map((c) => layout.caCrl(c)),
    shards,
    operators,
    client: Object.values(clients)[0]!,
    clients,
    etcd: await mint(serverProfile({ name: 'etcd', dns: ['localhost'], ips: ['127.0.0.1'] }), 'etcd'),
  };
}
