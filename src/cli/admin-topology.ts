// `themis-admin topology plan|diff|sign|verify|publish|show`: build a topology from the ring (or
// balanced: admin-topology-balanced.ts) and show its balance; diff, sign, publish and read topologies.
import { readerCertPem } from './reader-identity.js';
import { existsSync, writeFileSync } from 'node:fs';
import { HashRing, DEFAULT_VNODES } from '../ring/ring.js';
import { topologyFromRing } from '../topology/from-ring.js';
import { diffTopologies, strandedRanges } from '../topology/diff.js';
import { measureBalance } from '../topology/balance.js';
import { parseTopology, serializeTopology } from '../topology/document.js';
import { TopologyError, type Topology } from '../topology/topology.js';
import { tokenHex } from '../hash.js';
import { parsePem } from '../pki/pem.js';
import { keyFromFlags } from './admin-key.js';
import { PeerVerifier } from '../pki/verify.js';
import { signTopology, verifySignedTopology } from '../topology/signed.js';
import { registeredCertifiedRanges } from '../control/certified-ranges.js';
import { verifierWithEtcdCrls } from '../control/crl-store.js';
import { connectEtcd, etcdKeys } from '../control/etcd.js';
import { PublishError, publishSignedTopology, readSignedTopology } from '../control/topology-store.js';
import { SeededRandom, systemClock, systemRandom, type Random } from '../runtime.js';
import { parseFlags, requireFlag, intFlag, UsageError, readFlagFile, crlsFlag, etcdCall, etcdFlag } from './cli-common.js';
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
  if (sub === 'sign') return sign(rest);
  if (sub === 'verify') return verify(rest);
  if (sub === 'publish') return publish(rest);
  if (sub === 'show') return show(rest);
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

/** Reads the operator's chain and opens its key (for signing, and as the etcd client identity). */
export async function operatorIdentity(values: { 'operator-cert'?: string; 'operator-key'?: string; 'key-passphrase-file'?: string }) {
  const certPath = requireFlag(values['operator-cert'], 'operator-cert', 'pki/operators/admin/chain.pem');
  const keyPath = requireFlag(values['operator-key'], 'operator-key', 'pki/operators/admin/key.pem');
  const certPem = readFlagFile(certPath, 'operator-cert');
  const chain = parsePem(certPem, certPath).filter((b) => b.label === 'CERTIFICATE').map((b) => new Uint8Array(b.der));
  if (chain.length === 0) throw new UsageError(`--operator-cert ${certPath} holds no certificate`);
  const { key, pem } = await keyFromFlags(keyPath, 'operator-key', values['key-passphrase-file']);
  return { certPath, certPem, chain, key, keyPem: pem };
}

export const OPERATOR_FLAGS = {
  'operator-cert': { type: 'string' },
  'operator-key': { type: 'string' },
  'key-passphrase-file': { type: 'string' },
} as const;

async function sign(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, { plan: { type: 'string' }, ...OPERATOR_FLAGS, out: { type: 'string' }, force: { type: 'boolean' } });
  const topology = readTopology(requireFlag(values.plan, 'plan', 'topology.json'), 'plan');
  const out = requireFlag(values.out, 'out', 'topology.signed.json');
  if (!values.force && existsSync(out)) throw new UsageError(`--out ${out} already exists; pass --force to overwrite it`);
  const op = await operatorIdentity(values);
  const signed = await signTopology(topology, op.chain, op.key.privateKey);
  writeFileSync(out, JSON.stringify(signed, null, 2) + '\n', { flag: values.force ? 'w' : 'wx', mode: 0o644 });
  process.stdout.write(`wrote ${out}: epoch ${topology.epoch}, ${topology.ranges.length} ranges, signed by ${op.certPath}\n`);
}


async function publish(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, {
    plan: { type: 'string' }, cluster: { type: 'string' }, ...OPERATOR_FLAGS, etcd: { type: 'string' }, ca: { type: 'string' }, crls: { type: 'string' },
    'i-know-data-is-stranded': { type: 'boolean' },
  });
  const planPath = requireFlag(values.plan, 'plan', 'topology.json');
  const topology = readTopology(planPath, 'plan');
  const cluster = requireFlag(values.cluster, 'cluster', 'cluster-prod');
  if (topology.cluster !== cluster) {
    throw new UsageError(`--plan ${planPath} is a topology of cluster "${topology.cluster}", but the target is cluster "${cluster}" (--cluster or the context); plan it with --cluster ${cluster}`);
  }
  const stranding = (current: Topology, next: Topology): string | undefined => {
    if (values['i-know-data-is-stranded']) return undefined;
    const lost = strandedRanges(current, next);
    if (lost.length === 0) return undefined;
    const tokens = lost.reduce((a, m) => a + (m.end - m.start + 1n), 0n);
    const first = lost.slice(0, 3).map((m) => `${tokenHex(m.start)}-${tokenHex(m.end)} ${m.from} → ${m.to}`).join(', ');
    return `refused (data_stranded): this topology gives ${lost.length} range(s) (${(Number(tokens) / 2 ** 64 * 100).toFixed(2)}% of the token space) to shards that hold no copy of them (${first}${lost.length > 3 ? ', …' : ''}); their keys would answer 404 while the data stays where it was. Move data with themis-admin shard add|remove (docs/scaling.md); to publish anyway, pass --i-know-data-is-stranded`;
  };
  const endpoints = etcdFlag(values.etcd);
  const caPem = readFlagFile(requireFlag(values.ca, 'ca', 'pki/root/cert.pem'), 'ca');
  const extraCrls = values.crls === undefined ? [] : crlsFlag(values.crls);
  const op = await operatorIdentity(values);
  const signed = await signTopology(topology, op.chain, op.key.privateKey);
  const etcd = connectEtcd({ endpoints, certPem: op.certPem, keyPem: op.keyPem, caPem });
  try {
    const key = etcdKeys(topology.cluster).topology;
    const r = await etcdCall(
      (async () => {
        const verifier = await verifierWithEtcdCrls(etcd, topology.cluster, caPem, systemClock, extraCrls);
        const certifiedRanges = await registeredCertifiedRanges(etcd, topology.cluster, verifier);
        return publishSignedTopology(etcd, key, signed, { verifier, cluster: topology.cluster, certifiedRanges, refuseChange: stranding });
      })(),
      PublishError,
    );
    if (r.replacedUnverified) process.stderr.write(`warning: the value stored at ${key} did not verify (${r.replacedUnverified}); it was replaced, not trusted\n`);
    process.stdout.write(`published epoch ${r.epoch} of cluster ${topology.cluster}${r.previousEpoch !== undefined ? ` (was ${r.previousEpoch})` : ''} to ${key}\n`);
  } finally {
    etcd.close();
  }
}

async function show(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, {
    etcd: { type: 'string' }, ca: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' },
    cluster: { type: 'string' }, crls: { type: 'string' }, ranges: { type: 'boolean' },
  });
  const endpoints = etcdFlag(values.etcd);
  const cluster = requireFlag(values.cluster, 'cluster', 'cluster-prod');
  const caPem = readFlagFile(requireFlag(values.ca, 'ca', 'pki/root/cert.pem'), 'ca');
  const crls = crlsFlag(values.crls);
  const certPem = readerCertPem(values);
  const keyPem = readFlagFile(requireFlag(values.key, 'key', 'pki/operators/readonly/key.pem'), 'key');
  const etcd = connectEtcd({ endpoints, certPem, keyPem, caPem });
  try {
    const stored = await etcdCall(readSignedTopology(etcd, etcdKeys(cluster).topology));
    if (!stored) throw new Error(`no topology published for cluster ${cluster}`);
    const v = await verifySignedTopology(stored.signed ?? null, { verifier: new PeerVerifier({ root: caPem, crls, clock: systemClock }), cluster });
    if (!v.ok) {
      process.stdout.write(`the published topology is REFUSED (${v.reason}): ${v.message}\n`);
      process.exitCode = 1;
      return;
    }
    process.stdout.write(`cluster ${cluster}: epoch ${v.topology.epoch}, ${Object.keys(v.topology.shards).length} shards, ${v.topology.ranges.length} ranges; signed by ${v.signer.subject} (serial ${v.signer.serial}, issued by ${v.signer.issuer}); verified\n`);
    if (values.ranges) for (const r of v.topology.ranges) process.stdout.write(`${tokenHex(r.start)}  ${tokenHex(r.end)}  ${r.owner}\n`);
  } finally {
    etcd.close();
  }
}

async function verify(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, { signed: { type: 'string' }, ca: { type: 'string' }, crls: { type: 'string' }, current: { type: 'string' }, json: { type: 'boolean' } });
  const signedPath = requireFlag(values.signed, 'signed', 'topology.signed.json');
  let input: unknown;
  try {
    input = JSON.parse(readFlagFile(signedPath, 'signed'));
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`--signed ${signedPath} is not JSON`);
  }
  const ca = readFlagFile(requireFlag(values.ca, 'ca', 'pki/root/cert.pem'), 'ca');
  const crls = crlsFlag(values.crls);
  const current = values.current ? readTopology(values.current, 'current') : undefined;
  const verifier = new PeerVerifier({ root: ca, crls, clock: systemClock });
  const cluster = current?.cluster ?? (typeof (input as { document?: unknown })?.document === 'string' ? parseTopology((input as { document: string }).document).cluster : '');
  const v = await verifySignedTopology(input, { verifier, current, cluster });
  if (values.json) process.stdout.write(JSON.stringify(v.ok ? { ok: true, epoch: v.topology.epoch, signer: v.signer } : v) + '\n');
  else if (v.ok) process.stdout.write(`${signedPath}: valid — epoch ${v.topology.epoch}, signed by ${v.signer.subject} (serial ${v.signer.serial}, issued by ${v.signer.issuer})\n`);
  else process.stdout.write(`${signedPath}: REFUSED (${v.reason}): ${v.message}\n`);
  if (!v.ok) process.exitCode = 1;
}
