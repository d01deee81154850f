// A complete PKI for a development cluster or a benchmark, minted in one call through the
// same commands as `themis-pki`: root, the three intermediates, one certificate per shard,
// an admin and a read-only operator, a read-write client, and a CRL for every CA.
import { PkiLayout, loadIssuer, type CaName } from './ca-store.js';
import { createIntermediate, initRoot, issue, type PkiContext } from './commands.js';
import { clientProfile, operatorProfile, serverProfile, shardProfile } from './profiles.js';
import { TOKEN_MAX } from '../hash.js';
import { systemClock, systemRandom } from '../runtime.js';

export interface DevShard {
  id: string;
  ip: string;
  /** Certified token range; default: all tokens (the ring scatters a shard's ranges). */
  tokenRange?: { start: bigint; end: bigint };
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
  client: DevLeaf;
  /** etcd's server certificate (cluster CA; 127.0.0.1 and localhost). */
  etcd: DevLeaf;
}

export async function mintDevPki(o: { dir: string; cluster: string; shards: DevShard[]; passphrase: string; kdfIterations?: number }): Promise<DevPki> {
  const layout = new PkiLayout(o.dir);
  const ctx: PkiContext = { layout, clock: systemClock, random: systemRandom, force: false, kdfIterations: o.kdfIterations };
  const keyType = 'ecdsa-p256' as const;
  await initRoot(ctx, { passphrase: o.passphrase, keyType });
  for (const kind of ['cluster', 'operator', 'client'] as const) {
    await createIntermediate(ctx, { kind, rootPassphrase: o.passphrase, newPassphrase: o.passphrase, keyType });
  }
  const issuers = new Map<CaName, Awaited<ReturnType<typeof loadIssuer>>>();
  for (const ca of ['cluster', 'operator', 'client'] as const) issuers.set(ca, await loadIssuer(layout, ca, o.passphrase));
  const leaf = async (params: Parameters<typeof issue>[1]['params'], name: string, ca: CaName): Promise<DevLeaf> => {
    const r = await issue(ctx, { params, name, caPassphrase: o.passphrase, issuer: issuers.get(ca), keyType });
    return { serial: r.certificate!.serial, certPath: r.files.cert, keyPath: r.files.key, chainPath: r.files.chain };
  };
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
    shards[s.id] = await leaf(params, s.id, 'cluster');
  }
  return {
    layout,
    rootCert: layout.caCert('root'),
    crls: (['root', 'cluster', 'operator', 'client'] as const).map((c) => layout.caCrl(c)),
    shards,
    operators: {
      admin: await leaf(operatorProfile({ name: 'admin', capabilities: ['rebalance', 'add_shard', 'remove_shard', 'view_topology'] }), 'admin', 'operator'),
      readonly: await leaf(operatorProfile({ name: 'readonly', capabilities: ['view_topology'] }), 'readonly', 'operator'),
    },
    client: await leaf(clientProfile({ name: 'app1', capabilities: ['read', 'write'] }), 'app1', 'client'),
    etcd: await leaf(serverProfile({ name: 'etcd', dns: ['localhost'], ips: ['127.0.0.1'] }), 'etcd', 'cluster'),
  };
}
