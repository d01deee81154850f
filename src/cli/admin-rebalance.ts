// `themis-admin rebalance`: builds a RebalanceOperation from the topology in force (read from
// etcd and verified), signs it with the operator's key and writes it to
// /themis/{cluster}/rebalance/{opId}; `rebalance status` shows what each shard made of it.
import { connectEtcd, etcdKeys } from '../control/etcd.js';
import { readSignedTopology } from '../control/topology-store.js';
import { parseToken, tokenHex } from '../hash.js';
import { PeerVerifier } from '../pki/verify.js';
import { MoveError } from '../rebalance/moves.js';
import { buildOperation, signOperation } from '../rebalance/operation.js';
import { systemClock } from '../runtime.js';
import { verifySignedTopology } from '../topology/signed.js';
import { crlsFlag, etcdCall, etcdFlag, parseFlags, readFlagFile, requireFlag, UsageError } from './cli-common.js';
import { OPERATOR_FLAGS, operatorIdentity } from './admin-topology.js';

export const REBALANCE_USAGE = `themis-admin rebalance --from SHARD --to SHARD --token-range 0xSTART:0xEND --cluster NAME
        --etcd https://HOST:2379 --ca ROOT.pem --crls A.pem,… --operator-cert CHAIN.pem --operator-key KEY.pem
  Signs an operation moving the tokens START…END (inclusive) from one shard to another,
  starting from the topology in force (epoch E) and naming the topology of epoch E+1, and
  writes it to /themis/{cluster}/rebalance/{opId}. Every shard verifies it (signature, the
  operator's rebalance capability, the epoch, the target's certified range) and audits it.
  The target copies the tokens and follows the source's feed; the source then holds writes to
  them briefly, verifies both copies match, publishes the next epoch and deletes its copy.
  --cutover manual waits for \`rebalance switch\` before that (default: auto).
themis-admin rebalance switch --op ID --cluster NAME --etcd … --ca … --operator-cert … --operator-key …
  Lets a --cutover manual operation cut over.
themis-admin rebalance status [--op ID] --cluster NAME --etcd … --ca … --cert … --key …
  What each involved shard made of each operation: accepted, copying, catching-up (with lag),
  done, cleaned — or refused, stale, failed and why.`;

export async function rebalanceCommand(argv: string[]): Promise<void> {
  if (argv[0] === 'status') return status(argv.slice(1));
  if (argv[0] === 'switch') return switchOver(argv.slice(1));
  const { values } = parseFlags(argv, {
    from: { type: 'string' }, to: { type: 'string' }, 'token-range': { type: 'string' }, cluster: { type: 'string' }, cutover: { type: 'string' },
    etcd: { type: 'string' }, ca: { type: 'string' }, crls: { type: 'string' }, ...OPERATOR_FLAGS,
  });
  const from = requireFlag(values.from, 'from', 'shard-001');
  const to = requireFlag(values.to, 'to', 'shard-002');
  const range = requireFlag(values['token-range'], 'token-range', '0x0000000000000000:0x1fffffffffffffff');
  const [a, b] = range.split(':');
  const start = a === undefined ? undefined : parseToken(a);
  const end = b === undefined ? undefined : parseToken(b);
  if (start === undefined || end === undefined || start > end) throw new UsageError(`--token-range ${range}: write 0xSTART:0xEND, 0x-prefixed hex tokens with START ≤ END`);
  const cluster = requireFlag(values.cluster, 'cluster', 'cluster-prod');
  const cutover = values.cutover ?? 'auto';
  if (cutover !== 'auto' && cutover !== 'manual') throw new UsageError(`--cutover ${cutover}: write auto or manual`);
  const caPem = readFlagFile(requireFlag(values.ca, 'ca', 'pki/root/cert.pem'), 'ca');
  const op = await operatorIdentity(values);
  const etcd = connectEtcd({ endpoints: etcdFlag(values.etcd), certPem: op.certPem, keyPem: op.keyPem, caPem });
  try {
    const keys = etcdKeys(cluster);
    const stored = await etcdCall(readSignedTopology(etcd, keys.topology));
    if (!stored) throw new Error(`no topology published for cluster ${cluster}`);
    const v = await verifySignedTopology(stored.signed ?? null, { verifier: new PeerVerifier({ root: caPem, crls: crlsFlag(values.crls), clock: systemClock }), cluster });
    if (!v.ok) throw new Error(`the published topology does not verify (${v.reason}): ${v.message}`);
    let operation;
    try {
      operation = buildOperation(v.topology, [{ from, to, start, end }], { cutover });
    } catch (e) {
      if (e instanceof MoveError) throw new UsageError(e.message);
      throw e;
    }
    const signed = await signOperation(operation, op.chain, op.key.privateKey);
    const key = keys.rebalance(operation.id);
    const r = await etcdCall(etcd.if(key, 'Create', '==', 0).then(etcd.put(key).value(JSON.stringify(signed))).commit());
    if (!r.succeeded) throw new Error(`${key} exists already`);
    process.stdout.write(`operation ${operation.id}: ${tokenHex(start)}–${tokenHex(end)} from ${from} to ${to}, epoch ${operation.baseEpoch} → ${operation.next.epoch}; written to ${key}\n`);
  } finally {
    etcd.close();
  }
}

/** Lets a `manual` operation cut over. The cutover publishes only what the operation's signer pre-signed. */
async function switchOver(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, { op: { type: 'string' }, cluster: { type: 'string' }, etcd: { type: 'string' }, ca: { type: 'string' }, ...OPERATOR_FLAGS });
  const opId = requireFlag(values.op, 'op', '8c0e1f2a-…');
  const cluster = requireFlag(values.cluster, 'cluster', 'cluster-prod');
  const op = await operatorIdentity(values);
  const etcd = connectEtcd({ endpoints: etcdFlag(values.etcd), certPem: op.certPem, keyPem: op.keyPem, caPem: readFlagFile(requireFlag(values.ca, 'ca', 'pki/root/cert.pem'), 'ca') });
  try {
    const keys = etcdKeys(cluster);
    if (!(await etcdCall(etcd.get(keys.rebalance(opId)).string()))) throw new Error(`no operation ${opId} in cluster ${cluster}`);
    await etcdCall(etcd.put(keys.rebalanceSwitch(opId)).value(JSON.stringify({ at: new Date().toISOString() })).exec());
    process.stdout.write(`operation ${opId} may cut over now; follow it with themis-admin rebalance status --op ${opId}\n`);
  } finally {
    etcd.close();
  }
}

async function status(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, {
    op: { type: 'string' }, cluster: { type: 'string' }, etcd: { type: 'string' }, ca: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' }, json: { type: 'boolean' },
  });
  const cluster = requireFlag(values.cluster, 'cluster', 'cluster-prod');
  const etcd = connectEtcd({
    endpoints: etcdFlag(values.etcd),
    certPem: readFlagFile(requireFlag(values.cert, 'cert', 'pki/operators/readonly/chain.pem'), 'cert'),
    keyPem: readFlagFile(requireFlag(values.key, 'key', 'pki/operators/readonly/key.pem'), 'key'),
    caPem: readFlagFile(requireFlag(values.ca, 'ca', 'pki/root/cert.pem'), 'ca'),
  });
  try {
    const keys = etcdKeys(cluster);
    const prefix = keys.rebalanceStatusPrefix + (values.op ? `${values.op}/` : '');
    const all = await etcdCall(etcd.getAll().prefix(prefix).strings());
    const rows = Object.entries(all).map(([k, v]) => {
      const [opId, shard] = k.slice(keys.rebalanceStatusPrefix.length).split('/');
      let s: Record<string, unknown> = {};
      try {
        s = JSON.parse(v) as Record<string, unknown>;
      } catch {
        s = { phase: 'unreadable' };
      }
      return { op: opId!, shard: shard!, phase: String(s.phase), reason: s.reason === undefined ? null : String(s.reason), message: s.message === undefined ? null : String(s.message), updated_at: String(s.updated_at) };
    });
    if (values.json) return void process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
    if (!rows.length) return void process.stdout.write(`no status recorded${values.op ? ` for ${values.op}` : ''}\n`);
    for (const r of rows) process.stdout.write(`${r.op}  ${r.shard.padEnd(12)} ${r.phase.padEnd(9)} ${r.reason ? `${r.reason}: ${r.message}` : ''}\n`);
  } finally {
    etcd.close();
  }
}
