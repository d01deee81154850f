// What each kind of leaf certificate says: names, SANs, URN and identity extension for
// shards, operators, clients and the etcd server, checked field by field.
import { TOKEN_MAX } from '../hash.js';
import { invalid } from './errors.js';
import type { Capability, Role, ThemisIdentity } from './identity-extension.js';
import { checkDnsName, checkIp, checkLabel, type LeafParams } from './issue.js';

export const ALLOWED_CAPABILITIES = {
  shard: ['read', 'write', 'replicate'],
  operator: ['rebalance', 'add_shard', 'remove_shard', 'view_topology', 'admin'],
  client: ['read', 'write'],
} as const satisfies Record<string, readonly Capability[]>;

export const DEFAULT_SHARD_CAPABILITIES: Capability[] = ['read', 'write', 'replicate'];

/** Everything of a leaf except key, issuer, validity and randomness. */
export type LeafProfileParams = Omit<LeafParams, 'publicKey' | 'issuer' | 'validity' | 'random' | 'overrides'>;

export const DOMAIN = 'themis.local';

export interface ShardInput {
  id: string; // shard-001
  cluster: string;
  datacenter: string;
  dns?: readonly string[];
  ips?: readonly string[];
  tokenRange: { start: bigint; end: bigint };
  capabilities: readonly Capability[];
  role: 'primary' | 'replica';
}

const SHARD_ID = /^shard-(\d{3,12})$/;

export function shardNumber(id: string, field = '--id'): string {
  const m = SHARD_ID.exec(id);
  if (!m) throw invalid(field, `"${id}" must look like shard-001 (shard- and at least three digits)`);
  return m[1]!;
}

function checkCaps(caps: readonly Capability[], allowed: readonly Capability[], profile: string): void {
  if (caps.length === 0) throw invalid('--capabilities', `a ${profile} certificate needs at least one capability`);
  for (const c of caps) {
    if (!allowed.includes(c)) throw invalid('--capabilities', `"${c}" is not allowed in a ${profile} certificate; allowed: ${allowed.join(', ')}`);
  }
}

export function shardProfile(s: ShardInput): LeafProfileParams {
  const nnn = shardNumber(s.id);
  checkLabel(s.cluster, '--cluster');
  checkLabel(s.datacenter, '--dc');
  checkCaps(s.capabilities, ALLOWED_CAPABILITIES.shard, 'shard');
  if (s.role !== 'primary' && s.role !== 'replica') throw invalid('--role', `"${String(s.role)}" must be primary or replica`);
  const { start, end } = s.tokenRange;
  if (start < 0n || end > TOKEN_MAX || start > end) throw invalid('--token-range', 'must satisfy 0 ≤ START ≤ END ≤ 2^64-1');
  const cn = `${s.id}.${DOMAIN}`;
  const dns = [cn, ...(s.dns ?? []).map((d) => checkDnsName(d))].filter((d, i, a) => a.indexOf(d) === i);
  const identity: ThemisIdentity = {
    shardId: s.id,
    datacenter: s.datacenter,
    tokenRangeStart: start,
    tokenRangeEnd: end,
    capabilities: [...s.capabilities],
    role: s.role,
  };
  return {
    profile: 'shard',
    commonName: cn,
    dns,
    ips: (s.ips ?? []).map((ip) => checkIp(ip)),
    uris: [`urn:themis:shard:${s.cluster}:${nnn}`],
    identity,
  };
}

export interface PersonInput {
  name: string;
  capabilities: readonly Capability[];
  datacenter?: string;
}

/** Operators and clients carry the extension with an empty shardId and the token range 0…0. */
function personProfile(kind: 'operator' | 'client', p: PersonInput): LeafProfileParams {
  checkLabel(p.name, '--name');
  if (p.datacenter) checkLabel(p.datacenter, '--dc');
  checkCaps(p.capabilities, ALLOWED_CAPABILITIES[kind], kind);
  const role: Role = kind;
  return {
    profile: kind,
    commonName: `${p.name}.${kind}.${DOMAIN}`,
    uris: [`urn:themis:${kind}:${p.name}`],
    identity: {
      shardId: '',
      datacenter: p.datacenter ?? '',
      tokenRangeStart: 0n,
      tokenRangeEnd: 0n,
      capabilities: [...p.capabilities],
      role,
    },
  };
}

export const operatorProfile = (p: PersonInput) => personProfile('operator', p);
export const clientProfile = (p: PersonInput) => personProfile('client', p);

export interface ServerInput {
  name: string;
  dns?: readonly string[];
  ips?: readonly string[];
}

/** The etcd server certificate: no identity extension; the names clients dial in the SAN. */
export function serverProfile(s: ServerInput): LeafProfileParams {
  checkLabel(s.name, '--name');
  const dns = (s.dns ?? []).map((d) => checkDnsName(d));
  const ips = (s.ips ?? []).map((ip) => checkIp(ip));
  if (dns.length + ips.length === 0) throw invalid('--dns', 'a server certificate needs at least one --dns or --ip');
  return { profile: 'server', commonName: dns[0] ?? `${s.name}.${DOMAIN}`, dns, ips };
}
