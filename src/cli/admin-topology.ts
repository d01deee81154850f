// `themis-admin topology plan|diff|sign|verify|publish|show`: build a topology from the ring (or
// balanced: admin-topology-balanced.ts) and show its balance; diff topologies. Signing, publishing
// and reading signed ones is admin-topology-signed.ts, loaded only for those commands.
import { existsSync, writeFileSync } from 'node:fs';
import { HashRing, DEFAULT_VNODES } from '../ring/ring.js';
import { topologyFromRing } from '../topology/from-ring.js';
import { diffTopologies } from '../topology/diff.js';
import { measureBalance } from '../topology/balance.js';
import { serializeTopology } from '../topology/document.js';
import { TopologyError, type Topology } from '../topology/topology.js';
import { tokenHex } from '../hash.js';
import { SeededRandom, systemRandom, type Random } from '../runtime.js';
import { parseFlags, requireFlag, intFlag, UsageError } from './cli-common.js';
import { formatBalance, parseEndpoints, parseShards, planCluster, readTopology } from './topology-flags.js';
import { BALANCED_FLAGS, BALANCED_USAGE, planBalancedCommand, refuseBalancedFlags } from './admin-topology-balanced.js';

export { formatBalance } from './topology-flags.js';

export const TOPOLOGY_USAGE = `themis-admin topology plan --shards shard-001,shard-002,… [--vnodes 150] [--replicas 0]
        --cluster NAME [--epoch 1] [--endpoints shard-001=HOST:PORT,…] [--sample 100000] [--seed N]
        [--ranges] [--json] [--out FILE [--force]]
  Builds the topology from the ThemisDB ring and prints each shard's share of the token
  space and of a sample of random UUIDs. --out writes the topology document.
${BALANCED_USAGE}
themis-admin topology diff --from OLD.json --to NEW.json [--json]
  Lists the token ranges whose owner changes between two topology documents.
themis-admin topology sign --plan PLAN.json --operator-cert CHAIN.pem --operator-key KEY.pem
        [--key-passphrase-file FILE] --out SIGNED.json [--force]
  Signs a topology document (detached CMS over its exact bytes, with your certificate chain).
themis-admin topology verify --signed SIGNED.json --ca ROOT.pem --crls A.pem,B.pem,… [--current CURRENT.json]
  Checks a signed topology as a sidecar does: chain, CRLs, operator capability, newer epoch.
themis-admin topology publish --plan PLAN.json --cluster NAME --operator-cert CHAIN.pem --operator-key KEY.pem
        [--key-passphrase-file FILE] --etcd https://HOST:2379[,…] --ca ROOT.pem [--crls A.pem,…]
        [--i-know-data-is-stranded]
  Signs the topology, checks it as the shards will (against the published one, verified
  first: every capability the change needs, a newer epoch, every registered shard's certified
  range; CRLs from etcd plus --crls) and writes it to /themis/{cluster}/topology in etcd,
  refusing a plan of another cluster than --cluster, and one that gives ranges to shards that
  hold no copy of them (their data would be stranded: move it with shard add|remove),
  compare-and-swap on the key's revision. A stored value that does not verify is replaced and
  reported. The operator certificate also authenticates to etcd.
themis-admin topology show --etcd https://HOST:2379 --ca ROOT.pem --cert CHAIN.pem --key KEY.pem
        --cluster NAME --crls A.pem,B.pem,… [--ranges]
  Reads the published topology and verifies it before printing it.`;

export async function topologyCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === 'plan') return plan(rest);
  if (sub === 'diff') return diff(rest);
  if (sub === 'sign' || sub === 'verify' || sub === 'publish' || sub === 'show') return (await import('./admin-topology-signed.js'))[sub](rest);
  throw new UsageError(`unknown topology command "${sub ?? ''}"; use plan, diff, sign, verify, publish or show`);
}

function plan(argv: string[]): void {
  const { values } = parseFlags(argv, {
    shards: { type: 'string' },
    vnodes: { type: 'string' },
    replicas: { type: 'string' },
    cluster: { type: 'string' },
    epoch: { type: 'string' },
    endpoints: { type: 'string' },
    sample: { type: 'string' },
    seed: { type: 'string' },
    ranges: { type: 'boolean' },
    json: { type: 'boolean' },
    out: { type: 'string' },
    force: { type: 'boolean' },
    ...BALANCED_FLAGS,
  });
  if (values.balanced) return planBalancedCommand(values);
  refuseBalancedFlags(values);
  const ids = parseShards(requireFlag(values.shards, 'shards', 'shard-001,shard-002,shard-003'));
  if (values.out && !values.force && existsSync(values.out)) {
    throw new UsageError(`--out ${values.out} already exists; pass --force to overwrite it`);
  }
  const vnodes = intFlag(values.vnodes, 'vnodes', DEFAULT_VNODES, 1, 10_000);
  const replicas = intFlag(values.replicas, 'replicas', 0, 0, ids.length - 1);
  const epoch = intFlag(values.epoch, 'epoch', 1, 0, Number.MAX_SAFE_INTEGER);
  const sample = intFlag(values.sample, 'sample', 100_000, 0, 10_000_000);
  const random: Random = values.seed === undefined ? systemRandom : new SeededRandom(intFlag(values.seed, 'seed', 0, 0, 2 ** 31));
  let topology: Topology;
  try {
    topology = topologyFromRing(new HashRing(ids, vnodes), {
      cluster: planCluster(values.cluster),
      epoch,
      replicas,
      shards: parseEndpoints(values.endpoints, ids),
    });
  } catch (e) {
    if (e instanceof TopologyError) throw new UsageError(e.message);
    throw e;
  }
  const uuids = Array.from({ length: sample }, () => random.uuid());
  const balance = measureBalance(topology, uuids);
  if (values.out) {
    writeFileSync(values.out, serializeTopology(topology), { flag: values.force ? 'w' : 'wx', mode: 0o644 });
  }
  if (values.json) {
    const o = { cluster: topology.cluster, epoch: topology.epoch, vnodes, ranges: topology.ranges.length, balance, out: values.out ?? null };
    process.stdout.write(JSON.stringify(o, null, 2) + '\n');
    return;
  }
  if (values.ranges) {
    for (const r of topology.ranges) {
      process.stdout.write(`${tokenHex(r.start)}  ${tokenHex(r.end)}  ${r.owner}${r.replicas.length ? '  replicas=' + r.replicas.join(',') : ''}\n`);
    }
    process.stdout.write('\n');
  }
  process.stdout.write(formatBalance(topology, balance));
  if (values.out) process.stdout.write(`wrote ${values.out} (epoch ${topology.epoch}, ${topology.ranges.length} ranges)\n`);
}

function diff(argv: string[]): void {
  const { values } = parseFlags(argv, { from: { type: 'string' }, to: { type: 'string' }, json: { type: 'boolean' } });
  const before = readTopology(requireFlag(values.from, 'from', 'old.json'), 'from');
  const after = readTopology(requireFlag(values.to, 'to', 'new.json'), 'to');
  const moves = diffTopologies(before, after);
  const moved = moves.reduce((a, m) => a + Number(m.end - m.start + 1n), 0) / 2 ** 64;
  if (values.json) {
    const rows = moves.map((m) => ({ start: tokenHex(m.start), end: tokenHex(m.end), from: m.from, to: m.to }));
    process.stdout.write(JSON.stringify({ moves: rows, tokenShareMoved: moved }, null, 2) + '\n');
    return;
  }
  for (const m of moves) process.stdout.write(`${tokenHex(m.start)}  ${tokenHex(m.end)}  ${m.from} → ${m.to}\n`);
  process.stdout.write(`${moves.length} ranges change owner (${(moved * 100).toFixed(2)}% of the token space)\n`);
}
