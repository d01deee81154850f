// `themis-admin shard add` and `shard remove`: the balanced planner's least-movement plan for a
// shard joining or leaving (src/topology/rebalance.ts), inside every shard's certified token
// range as registered in etcd, printed with the keys and bytes each move is estimated to carry
// (from each source's last count, in proportion to the tokens it gives), then — after a
// confirmation, or --yes — signed as one rebalance operation whose moves run in parallel and
// cut over together. In a replicated topology the planner also repairs the replica lists (a
// removed shard's copies go to others, the replication factor is kept), and every copy the next
// topology adds is brought by a replica move before the cutover.
import { createInterface } from 'node:readline/promises';
import { tokenHex } from '../hash.js';
import { buildPlannedOperation, type RebalanceOperation } from '../rebalance/operation.js';
import { MoveError, type Move } from '../rebalance/moves.js';
import { planAddShard, planRemoveShard, type RebalancePlan } from '../topology/rebalance.js';
import { PlanError } from '../topology/token-schedule.js';
import { SHARD_ID_RE, type Topology } from '../topology/topology.js';
import { parseFlags, requireFlag, UsageError } from './cli-common.js';
import { followOperation } from './admin-rebalance-control.js';
import { openOperatorSession, registeredShards, SESSION_FLAGS, submitOperation, type Registered } from './operator-session.js';

export const SHARD_USAGE = `themis-admin shard add --id SHARD [--endpoint HOST:PORT] [--datacenter DC] [--yes] [--wait]
        --cluster NAME --etcd https://HOST:2379 --ca ROOT.pem --crls A.pem,… --operator-cert CHAIN.pem --operator-key KEY.pem
  Plans the moves that give a new shard its equal share of the token space while moving the
  least data (≤ 1.05/(N+1) of the space), each inside the certified token ranges the shards
  registered; prints them with the keys and bytes each is estimated to move, asks for
  confirmation (--yes: do not ask; required without a terminal), and signs them as one
  operation (capability add_shard). The new shard's sidecar must be running and registered:
  its endpoint comes from its registration unless --endpoint is given. --wait follows it.
themis-admin shard remove --id SHARD [--yes] [--wait] --cluster NAME --etcd … --ca … --crls … --operator-cert … --operator-key …
  Drains a shard: its tokens go to the others in equal parts (capability remove_shard); after
  the cutover its sidecar and storage node hold nothing and may be stopped.`;

export async function shardCommand(argv: string[]): Promise<void> {
  const verb = argv[0];
  if (verb !== 'add' && verb !== 'remove') throw new UsageError('themis-admin shard: write `shard add --id SHARD …` or `shard remove --id SHARD …`');
  const { values } = parseFlags(argv.slice(1), {
    id: { type: 'string' }, endpoint: { type: 'string' }, datacenter: { type: 'string' }, yes: { type: 'boolean' }, wait: { type: 'boolean' }, ...SESSION_FLAGS,
  });
  const id = requireFlag(values.id, 'id', 'shard-004');
  if (!SHARD_ID_RE.test(id)) throw new UsageError(`--id: "${id}" is not a valid shard id (e.g. shard-004)`);
  if (verb === 'remove' && (values.endpoint !== undefined || values.datacenter !== undefined)) throw new UsageError('--endpoint and --datacenter describe an added shard; they do not apply to shard remove');
  const s = await openOperatorSession(values);
  try {
    const current = s.topology;
    const registered = await registeredShards(s);
    const allowed = (shard: string) => {
      const c = registered.get(shard)?.certified;
      return c ? { start: c.start, end: c.end } : undefined;
    };
    let plan: RebalancePlan;
    try {
      if (verb === 'add') {
        if (id in current.shards) throw new UsageError(`${id} is already in the topology (epoch ${current.epoch})`);
        const reg = registered.get(id);
        if (!reg?.certified) throw new UsageError(`${id} has no registered certificate that verifies: start its sidecar first (it registers in etcd), and check its certificate`);
        const endpoint = values.endpoint ?? (reg.endpoint ? `${reg.endpoint.host}:${reg.endpoint.port}` : undefined);
        if (!endpoint || !/^[^\s:]+:\d{1,5}$/.test(endpoint)) throw new UsageError(`--endpoint: ${id} registered no endpoint; give its mesh address as HOST:PORT`);
        const datacenter = values.datacenter ?? reg.endpoint?.datacenter ?? Object.values(current.shards)[0]?.datacenter ?? 'dc1';
        plan = planAddShard(current, id, { info: { endpoint, datacenter }, allowed });
      } else {
        if (!(id in current.shards)) throw new UsageError(`${id} is not in the topology (epoch ${current.epoch})`);
        plan = planRemoveShard(current, id, { allowed });
      }
    } catch (e) {
      if (e instanceof PlanError) throw new UsageError(e.message);
      throw e;
    }
    const moves: Move[] = plan.moves.map((m) => ({ from: m.from, to: m.to, start: m.tokenStart, end: m.tokenEnd }));
    if (moves.length === 0) return void process.stdout.write('nothing to move\n');
    let operation: RebalanceOperation;
    try {
      operation = buildPlannedOperation(current, plan.next, moves);
    } catch (e) {
      if (e instanceof MoveError) throw new Error(`the plan does not fit the topology in force (a bug): ${e.message}`);
      throw e;
    }
    process.stdout.write(describePlan(current, operation, plan.tokensMoved, registered));
    if (!values.yes && !(await confirm(`sign and start these ${operation.moves.length} moves? [y/N] `))) {
      process.stdout.write('nothing done\n');
      return;
    }
    const key = await submitOperation(s, operation);
    process.stdout.write(`operation ${operation.id}: ${verb} ${id}, epoch ${operation.baseEpoch} → ${operation.next.epoch}; written to ${key}\n`);
    if (values.wait) await followOperation(s.etcd, s.keys, operation);
  } finally {
    s.close();
  }
}

/** The plan, move by move (replica moves marked), with estimated keys and bytes (from each source's last count), and the shares after it. */
export function describePlan(current: Topology, plan: { moves: readonly Move[]; next: Topology }, tokensMoved: bigint, registered: ReadonlyMap<string, Registered>): string {
  const owned = new Map<string, bigint>();
  for (const r of current.ranges) owned.set(r.owner, (owned.get(r.owner) ?? 0n) + (r.end - r.start + 1n));
  const lines = [`${'from'.padEnd(12)} ${'to'.padEnd(20)} ${'tokens'.padEnd(37)} ${'share'.padStart(7)} ${'~keys'.padStart(9)} ${'~bytes'.padStart(10)}`];
  let keys = 0;
  let bytes = 0;
  let unknown = false;
  for (const m of plan.moves) {
    const size = m.end - m.start + 1n;
    const data = registered.get(m.from)?.data;
    const part = Number(size) / Number(owned.get(m.from) ?? 1n);
    const k = data ? Math.round(data.keys * part) : undefined;
    const b = data ? Math.round(data.bytes * part) : undefined;
    if (k === undefined || b === undefined) unknown = true;
    keys += k ?? 0;
    bytes += b ?? 0;
    const to = m.role === 'replica' ? `${m.to} (replica)` : m.to;
    lines.push(`${m.from.padEnd(12)} ${to.padEnd(20)} ${tokenHex(m.start)}–${tokenHex(m.end)} ${pct(Number(size) / 2 ** 64)} ${String(k ?? '?').padStart(9)} ${String(b ?? '?').padStart(10)}`);
  }
  const copies = plan.moves.filter((m) => m.role === 'replica').length;
  lines.push(`${plan.moves.length} moves${copies ? ` (${copies} of them new replica copies)` : ''}, ${pct(Number(tokensMoved) / 2 ** 64).trim()} of the token space changes owner, about ${keys} keys and ${bytes} bytes copied${unknown ? ' (some sources have not reported a count yet: ? above)' : ''}`);
  const after = new Map<string, bigint>();
  for (const r of plan.next.ranges) after.set(r.owner, (after.get(r.owner) ?? 0n) + (r.end - r.start + 1n));
  lines.push(`token share after: ${[...after].sort(([a], [b]) => a.localeCompare(b)).map(([sh, n]) => `${sh} ${pct(Number(n) / 2 ** 64).trim()}`).join(', ')}`);
  return lines.join('\n') + '\n';
}

const pct = (x: number) => `${(x * 100).toFixed(2)}%`.padStart(7);

async function confirm(question: string): Promise<boolean> {
  if (!process.stdin.isTTY) throw new UsageError('not asking without a terminal: pass --yes to go ahead');
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}
