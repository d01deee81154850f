// The topology's JSON document — the form written to files and (signed) to etcd:
// {cluster, epoch, vnodes, shards{id: {endpoint?, datacenter?}}, ranges[{start, end, owner, replicas}]}
// Tokens are 0x-prefixed 16-digit hex strings (JSON numbers cannot hold 64 bits).
import { parseToken, tokenHex } from '../hash.js';
import { Topology, TopologyError, type ShardInfo, type TokenRange } from './topology.js';

export interface TopologyDocument {
  cluster: string;
  epoch: number;
  vnodes: number;
  shards: Record<string, ShardInfo>;
  ranges: { start: string; end: string; owner: string; replicas: string[] }[];
}

export function toDocument(t: Topology): TopologyDocument {
  return {
    cluster: t.cluster,
    epoch: t.epoch,
    vnodes: t.vnodes,
    shards: Object.fromEntries(Object.entries(t.shards).map(([k, v]) => [k, { ...v }])),
    ranges: t.ranges.map((r) => ({ start: tokenHex(r.start), end: tokenHex(r.end), owner: r.owner, replicas: [...r.replicas] })),
  };
}

/** Stable, pretty JSON: the exact bytes a file holds and an operator signs. */
export function serializeTopology(t: Topology): string {
  return JSON.stringify(toDocument(t), null, 2) + '\n';
}

const KNOWN = ['cluster', 'epoch', 'vnodes', 'shards', 'ranges'];
const ENDPOINT_RE = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

/** Parses and validates a topology document; throws TopologyError naming the field. */
export function parseTopology(input: string | unknown): Topology {
  let doc: unknown = input;
  if (typeof input === 'string') {
    try {
      doc = JSON.parse(input);
    } catch {
      throw new TopologyError('(document)', 'is not valid JSON');
    }
  }
  const o = obj(doc, '(document)');
  for (const k of Object.keys(o)) if (!KNOWN.includes(k)) throw new TopologyError(k, `unknown field; known: ${KNOWN.join(', ')}`);
  if (typeof o.cluster !== 'string' || !o.cluster) throw new TopologyError('cluster', 'must be a non-empty string');
  if (!Number.isSafeInteger(o.epoch) || (o.epoch as number) < 0) throw new TopologyError('epoch', 'must be a non-negative integer');
  const vnodes = o.vnodes ?? 0;
  if (!Number.isSafeInteger(vnodes) || (vnodes as number) < 0) throw new TopologyError('vnodes', 'must be a non-negative integer');
  const shards: Record<string, ShardInfo> = {};
  for (const [id, raw] of Object.entries(obj(o.shards, 'shards'))) {
    const s = obj(raw, `shards.${id}`);
    const info: { endpoint?: string; datacenter?: string } = {};
    for (const [k, v] of Object.entries(s)) {
      if (k === 'endpoint') {
        const m = typeof v === 'string' ? ENDPOINT_RE.exec(v) : null;
        if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) {
          throw new TopologyError(`shards.${id}.endpoint`, 'must be "host:port", e.g. "10.0.0.5:7443"');
        }
        info.endpoint = v as string;
      } else if (k === 'datacenter') {
        if (typeof v !== 'string') throw new TopologyError(`shards.${id}.datacenter`, 'must be a string');
        info.datacenter = v;
      } else {
        throw new TopologyError(`shards.${id}.${k}`, 'unknown field; known: endpoint, datacenter');
      }
    }
    shards[id] = info;
  }
  if (!Array.isArray(o.ranges)) throw new TopologyError('ranges', 'must be an array');
  const ranges: TokenRange[] = o.ranges.map((raw, i) => {
    const at = `ranges[${i}]`;
    const r = obj(raw, at);
    const start = typeof r.start === 'string' ? parseToken(r.start) : undefined;
    const end = typeof r.end === 'string' ? parseToken(r.end) : undefined;
    if (start === undefined) throw new TopologyError(`${at}.start`, 'must be a 64-bit token string such as "0x00000000000000ff"');
    if (end === undefined) throw new TopologyError(`${at}.end`, 'must be a 64-bit token string such as "0x00000000000000ff"');
    if (typeof r.owner !== 'string') throw new TopologyError(`${at}.owner`, 'must be a shard id');
    const replicas = r.replicas ?? [];
    if (!Array.isArray(replicas) || !replicas.every((x) => typeof x === 'string')) {
      throw new TopologyError(`${at}.replicas`, 'must be an array of shard ids');
    }
    return { start, end, owner: r.owner, replicas: replicas as string[] };
  });
  return new Topology({ cluster: o.cluster, epoch: o.epoch as number, vnodes: vnodes as number, shards, ranges });
}

function obj(v: unknown, field: string): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new TopologyError(field, 'must be an object');
  return v as Record<string, unknown>;
}
