// `themis-admin topology plan --balanced`: equal token shares whatever the ring says, and
// `--from CURRENT.json --add|--remove SHARD`: the least movement that keeps them equal.
import { existsSync, writeFileSync } from 'node:fs';
import { tokenHex } from '../hash.js';
import { measureBalance } from '../topology/balance.js';
import { DEFAULT_RANGES_PER_SHARD, MAX_RANGES_PER_SHARD, planBalanced, type AllowedRange } from '../topology/balanced-plan.js';
import { parseTopology, serializeTopology } from '../topology/document.js';
import { planAddShard, planRemoveShard, type RebalancePlan } from '../topology/rebalance.js';
import type { Span } from '../topology/token-schedule.js';
import { SHARD_ID_RE, TopologyError, type ShardInfo, type Topology } from '../topology/topology.js';
import { parseTokenRange } from '../pki/identity-extension.js';
import { SeededRandom, systemRandom, type Random } from '../runtime.js';
import { fromContext, intFlag, requireFlag, UsageError } from './cli-common.js';
import { formatBalance, parseShards, planCluster, readTopology } from './topology-flags.js';

export const BALANCED_FLAGS = {
  balanced: { type: 'boolean' },
  from: { type: 'string' },
  add: { type: 'string' },
  remove: { type: 'string' },
  'ranges-per-shard': { type: 'string' },
  datacenters: { type: 'string' },
  allowed: { type: 'string' },
} as const;

export const BALANCED_USAGE = `themis-admin topology plan --balanced --shards shard-001,… [--ranges-per-shard ${DEFAULT_RANGES_PER_SHARD}] [--replicas 0]
        [--datacenters shard-001=dc1,…] [--allowed shard-001=START:END,…] --cluster NAME [--epoch 1]
        [--endpoints shard-001=HOST:PORT,…] [--sample 100000] [--seed N] [--ranges] [--json] [--out FILE [--force]]
  Ignores the ring: every shard gets an equal share of the token space in a few scattered
  ranges, only inside its --allowed (certified) token range; replicas go to the next shards
  clockwise, in other datacenters first.
themis-admin topology plan --balanced --from CURRENT.json (--add SHARD | --remove SHARD) [--epoch N]
        [--endpoints SHARD=HOST:PORT] [--datacenters SHARD=DC] [--allowed shard-001=START:END,…]
        [--sample 100000] [--seed N] [--ranges] [--json] [--out FILE [--force]]
  The least movement that keeps the shares equal: adding a shard to N moves 1/(N+1) of the
  token space, all to it; removing one moves only its tokens. Prints the moves and the balance.`;

export interface PlanValues {
  shards?: string;
  vnodes?: string;
  replicas?: string;
  cluster?: string;
  epoch?: string;
  endpoints?: string;
  sample?: string;
  seed?: string;
  ranges?: boolean;
  json?: boolean;
  out?: string;
  force?: boolean;
  balanced?: boolean;
  from?: string;
  add?: string;
  remove?: string;
  'ranges-per-shard'?: string;
  datacenters?: string;
  allowed?: string;
}

/** Refuses the --balanced flags on a ring plan, so the ring plan behaves as it always did. */
export function refuseBalancedFlags(values: PlanValues): void {
  for (const flag of ['from', 'add', 'remove', 'ranges-per-shard', 'datacenters', 'allowed'] as const) {
    if (values[flag] !== undefined) throw new UsageError(`--${flag} needs --balanced (the ring plan does not take it)`);
  }
}

export function planBalancedCommand(values: PlanValues): void {
  if (values.vnodes !== undefined) {
    throw new UsageError('--vnodes does not apply to --balanced: its ranges do not follow the ring (see --ranges-per-shard)');
  }
  if (values.out && !values.force && existsSync(values.out)) {
    throw new UsageError(`--out ${values.out} already exists; pass --force to overwrite it`);
  }
  if (values.from === undefined) {
    if (values.add !== undefined || values.remove !== undefined) throw new UsageError('--add and --remove need --from CURRENT.json');
    return fresh(values);
  }
  return change(values, values.from);
}

function fresh(values: PlanValues): void {
  const ids = parseShards(requireFlag(values.shards, 'shards', 'shard-001,shard-002,shard-003'));
  const topology = planBalanced(ids, {
    cluster: planCluster(values.cluster),
    epoch: intFlag(values.epoch, 'epoch', 1, 0, Number.MAX_SAFE_INTEGER),
    replicas: intFlag(values.replicas, 'replicas', 0, 0, ids.length - 1),
    rangesPerShard: intFlag(values['ranges-per-shard'], 'ranges-per-shard', DEFAULT_RANGES_PER_SHARD, 1, MAX_RANGES_PER_SHARD),
    shards: shardInfo(values, ids, '--shards'),
    allowed: parseAllowed(values.allowed, ids),
  });
  const balance = measureBalance(topology, sampleUuids(values));
  write(values, topology);
  if (values.json) {
    const o = { cluster: topology.cluster, epoch: topology.epoch, balanced: true, ranges: topology.ranges.length, balance, out: values.out ?? null };
    return void process.stdout.write(JSON.stringify(o, null, 2) + '\n');
  }
  if (values.ranges) process.stdout.write(listRanges(topology) + '\n');
  process.stdout.write(formatBalance(topology, balance));
  if (values.out) process.stdout.write(`wrote ${values.out} (epoch ${topology.epoch}, ${topology.ranges.length} ranges)\n`);
}

function change(values: PlanValues, from: string): void {
  for (const flag of ['shards', 'replicas', 'cluster', 'ranges-per-shard'] as const) {
    if (values[flag] !== undefined && !fromContext(values, flag)) throw new UsageError(`--${flag} does not apply with --from: it comes from the current topology`);
  }
  if ((values.add === undefined) === (values.remove === undefined)) throw new UsageError('--from needs one of --add SHARD or --remove SHARD');
  const current = readTopology(from, 'from');
  if (values.cluster !== undefined && values.cluster !== current.cluster) {
    throw new UsageError(`--from ${from} is a topology of cluster ${current.cluster}, but the context is for cluster ${values.cluster}; pick the right context (--context NAME)`);
  }
  const epoch = intFlag(values.epoch, 'epoch', current.epoch + 1, current.epoch + 1, Number.MAX_SAFE_INTEGER);
  let plan: RebalancePlan;
  if (values.add !== undefined) {
    const shard = values.add;
    if (!SHARD_ID_RE.test(shard)) throw new UsageError(`--add: "${shard}" is not a valid shard id (e.g. shard-004)`);
    if (shard in current.shards) throw new UsageError(`--add: ${shard} is already in ${from}`);
    const allowed = parseAllowed(values.allowed, [...Object.keys(current.shards), shard]);
    plan = planAddShard(current, shard, { epoch, info: shardInfo(values, [shard], '--add')[shard], allowed });
  } else {
    const shard = values.remove!;
    if (!(shard in current.shards)) throw new UsageError(`--remove: ${shard} is not in ${from}`);
    if (values.endpoints !== undefined || values.datacenters !== undefined) {
      throw new UsageError('--endpoints and --datacenters describe the added shard; they do not apply with --remove');
    }
    plan = planRemoveShard(current, shard, { epoch, allowed: parseAllowed(values.allowed, Object.keys(current.shards)) });
  }
  const next = plan.next;
  const balance = measureBalance(next, sampleUuids(values));
  write(values, next);
  const share = (a: bigint, b: bigint) => Number(b - a + 1n) / 2 ** 64;
  const moved = Number(plan.tokensMoved) / 2 ** 64;
  if (values.json) {
    const moves = plan.moves.map((m) => ({ start: tokenHex(m.tokenStart), end: tokenHex(m.tokenEnd), from: m.from, to: m.to, tokenShare: share(m.tokenStart, m.tokenEnd) }));
    const o = { cluster: next.cluster, epoch: next.epoch, add: values.add ?? null, remove: values.remove ?? null, moves, tokenShareMoved: moved, ranges: next.ranges.length, balance, out: values.out ?? null };
    return void process.stdout.write(JSON.stringify(o, null, 2) + '\n');
  }
  const pct = (x: number) => `${(x * 100).toFixed(3)}%`;
  const n = Object.keys(current.shards).length;
  const what = values.add !== undefined
    ? `adding ${values.add} to ${n} shards: the minimum is its equal share, 1/${n + 1} = ${pct(1 / (n + 1))}`
    : `removing ${values.remove} from ${n} shards: the minimum is its tokens, ${pct(share(0n, ownedBy(current, values.remove!) - 1n))}`;
  const lines = plan.moves.map((m) => `${tokenHex(m.tokenStart)}  ${tokenHex(m.tokenEnd)}  ${m.from} → ${m.to}  ${pct(share(m.tokenStart, m.tokenEnd)).padStart(8)}`);
  lines.push(`${plan.moves.length} ranges change owner, ${pct(moved)} of the token space (${what})`);
  process.stdout.write(lines.join('\n') + '\n\n');
  if (values.ranges) process.stdout.write(listRanges(next) + '\n');
  process.stdout.write(formatBalance(next, balance));
  if (values.out) process.stdout.write(`wrote ${values.out} (epoch ${next.epoch}, ${next.ranges.length} ranges)\n`);
}

function ownedBy(t: Topology, shard: string): bigint {
  return t.ranges.reduce((a, r) => (r.owner === shard ? a + r.end - r.start + 1n : a), 0n);
}

function write(values: PlanValues, t: Topology): void {
  // What is written must read back (an --endpoints value the document format refuses, say).
  try {
    parseTopology(serializeTopology(t));
  } catch (e) {
    if (e instanceof TopologyError) throw new UsageError(e.message);
    throw e;
  }
  if (values.out) writeFileSync(values.out, serializeTopology(t), { flag: values.force ? 'w' : 'wx', mode: 0o644 });
}

function sampleUuids(values: PlanValues): string[] {
  const sample = intFlag(values.sample, 'sample', 100_000, 0, 10_000_000);
  const random: Random = values.seed === undefined ? systemRandom : new SeededRandom(intFlag(values.seed, 'seed', 0, 0, 2 ** 31));
  return Array.from({ length: sample }, () => random.uuid());
}

function listRanges(t: Topology): string {
  return t.ranges.map((r) => `${tokenHex(r.start)}  ${tokenHex(r.end)}  ${r.owner}${r.replicas.length ? '  replicas=' + r.replicas.join(',') : ''}\n`).join('');
}

/** SHARD=VALUE,… for shards in `ids` (named by `source` in the error). */
function shardMap(list: string | undefined, flag: string, ids: readonly string[], source: string, example: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const item of (list ?? '').split(',').filter(Boolean)) {
    const eq = item.indexOf('=');
    const id = item.slice(0, eq);
    if (eq < 1 || eq === item.length - 1 || !ids.includes(id)) {
      throw new UsageError(`--${flag}: "${item}" must be SHARD=${example} for a shard named in ${source}`);
    }
    out.set(id, item.slice(eq + 1));
  }
  return out;
}

function shardInfo(values: PlanValues, ids: readonly string[], source: string): Record<string, ShardInfo> {
  const endpoints = shardMap(values.endpoints, 'endpoints', ids, source, 'HOST:PORT');
  const dcs = shardMap(values.datacenters, 'datacenters', ids, source, 'DATACENTER');
  const out: Record<string, ShardInfo> = {};
  for (const id of ids) {
    const info: { endpoint?: string; datacenter?: string } = {};
    if (endpoints.has(id)) info.endpoint = endpoints.get(id)!;
    if (dcs.has(id)) info.datacenter = dcs.get(id)!;
    out[id] = info;
  }
  return out;
}

function parseAllowed(list: string | undefined, ids: readonly string[]): AllowedRange | undefined {
  if (list === undefined) return undefined;
  const ranges = new Map<string, Span>();
  for (const [id, text] of shardMap(list, 'allowed', ids, 'the topology', 'START:END')) {
    try {
      ranges.set(id, parseTokenRange(text, `--allowed ${id}`));
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }
  return (shard) => ranges.get(shard);
}
