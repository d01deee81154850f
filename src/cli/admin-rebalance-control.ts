// Controlling and following rebalance operations: `rebalance switch` (a manual cutover may go),
// `rebalance abort` (a signed abort, before cutover only), `rebalance status`, and the --wait of
// the commands that start one.
import { readerCertPem } from './reader-identity.js';
import type { Etcd3 } from 'etcd3';
import { connectEtcd, etcdKeys } from '../control/etcd.js';
import { readSignedTopology } from '../control/topology-store.js';
import { signAbort, verifyAbort } from '../rebalance/abort.js';
import { parseOperation, type RebalanceOperation } from '../rebalance/operation.js';
import { parseTopology } from '../topology/document.js';
import { etcdCall, etcdFlag, parseFlags, readFlagFile, requireFlag } from './cli-common.js';
import { OPERATOR_FLAGS, operatorIdentity } from './operator-identity.js';
import { openOperatorSession, SESSION_FLAGS } from './operator-session.js';

/** Lets a `manual` operation cut over. The cutover publishes only what the operation's signer pre-signed. */
export async function switchOver(argv: string[]): Promise<void> {
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

/** Writes a signed abort, only while the topology is still the operation's base epoch. */
export async function abortOperation(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, { op: { type: 'string' }, ...SESSION_FLAGS });
  const opId = requireFlag(values.op, 'op', '8c0e1f2a-…');
  const s = await openOperatorSession(values);
  try {
    const raw = await etcdCall(s.etcd.get(s.keys.rebalance(opId)).string());
    if (!raw) throw new Error(`no operation ${opId} in cluster ${s.cluster}`);
    let op: RebalanceOperation;
    try {
      op = parseOperation((JSON.parse(raw) as { document: string }).document);
    } catch (e) {
      throw new Error(`operation ${opId} in etcd does not parse: ${(e as Error).message}`);
    }
    if (s.topology.epoch !== op.baseEpoch) throw new Error(`operation ${opId} cannot be aborted: it starts from epoch ${op.baseEpoch} and epoch ${s.topology.epoch} is in force (it was cut over, or went stale)`);
    const signed = await signAbort(opId, s.cluster, s.operator.chain, s.operator.key.privateKey);
    const key = s.keys.rebalanceAbort(opId);
    // One that is there already counts if it verifies; a forged one (it blocks the cutover, but no
    // shard acts on it) is replaced.
    const existing = (await etcdCall(s.etcd.get(key).exec())).kvs[0];
    if (existing) {
      let input: unknown;
      try {
        input = JSON.parse(existing.value.toString());
      } catch {
        input = undefined;
      }
      if ((await verifyAbort(input, { verifier: s.verifier, cluster: s.cluster, opId })).ok) throw new Error(`operation ${opId} is being aborted already (${key} holds a signed abort)`);
    }
    const r = await etcdCall(
      s.etcd
        .if(s.keys.topology, 'Mod', '==', s.revision)
        .and(key, 'Mod', '==', existing ? String(existing.mod_revision) : '0')
        .then(s.etcd.put(key).value(JSON.stringify(signed)))
        .commit(),
    );
    if (!r.succeeded) {
      const now = await etcdCall(readSignedTopology(s.etcd, s.keys.topology));
      const epoch = now?.signed ? parseTopology(now.signed.document).epoch : undefined;
      if (epoch !== op.baseEpoch) throw new Error(`operation ${opId} cannot be aborted: epoch ${epoch} came into force meanwhile (it was cut over, or went stale)`);
      throw new Error(`operation ${opId}: ${key} changed meanwhile; run the abort again`);
    }
    process.stdout.write(`operation ${opId} aborted: it will not cut over; its targets delete what they copied (themis-admin rebalance status --op ${opId})\n`);
  } finally {
    s.close();
  }
}

interface StatusRow {
  op: string;
  shard: string;
  phase: string;
  reason: string | null;
  message: string | null;
  updated_at: string;
  detail: Record<string, unknown>;
}

async function statusRows(etcd: Etcd3, keys: ReturnType<typeof etcdKeys>, opId?: string): Promise<StatusRow[]> {
  const prefix = keys.rebalanceStatusPrefix + (opId ? `${opId}/` : '');
  const all = await etcdCall(etcd.getAll().prefix(prefix).strings());
  return Object.entries(all).map(([k, v]) => {
    const [op, shard] = k.slice(keys.rebalanceStatusPrefix.length).split('/');
    let s: Record<string, unknown> = {};
    try {
      s = JSON.parse(v) as Record<string, unknown>;
    } catch {
      s = { phase: 'unreadable' };
    }
    const { phase, reason, message, updated_at, ...detail } = s;
    return { op: op!, shard: shard!, phase: String(phase), reason: reason === undefined ? null : String(reason), message: message === undefined ? null : String(message), updated_at: String(updated_at), detail };
  });
}

/** One line of progress: keys copied and lag per source for a target, keys verified and pause for a source. */
function describe(r: StatusRow): string {
  if (r.reason) return `${r.reason}: ${r.message}`;
  const d = r.detail;
  const parts: string[] = [];
  if (d.sources && typeof d.sources === 'object') {
    for (const [src, p] of Object.entries(d.sources as Record<string, { keys_copied?: number; keys_per_second?: number | null; lag_changes?: number | null; eta_seconds?: number | null }>)) {
      const rate = typeof p.keys_per_second === 'number' && r.phase === 'copying' ? ` (${p.keys_per_second} keys/s)` : '';
      const eta = typeof p.eta_seconds === 'number' ? `, caught up in ~${p.eta_seconds} s` : '';
      parts.push(`from ${src}: ${p.keys_copied ?? 0} keys copied${rate}, lag ${p.lag_changes ?? '?'} changes${eta}`);
    }
  }
  if (d.keys_verified !== undefined) parts.push(`${String(d.keys_verified)} keys verified equal on both sides`);
  if (d.pause_ms !== undefined) parts.push(`writes held ${String(d.pause_ms)} ms`);
  if (d.keys_deleted !== undefined) parts.push(`${String(d.keys_deleted)} keys deleted`);
  return parts.join('; ');
}

export async function status(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, {
    op: { type: 'string' }, cluster: { type: 'string' }, etcd: { type: 'string' }, ca: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' }, json: { type: 'boolean' },
  });
  const cluster = requireFlag(values.cluster, 'cluster', 'cluster-prod');
  const etcd = connectEtcd({
    endpoints: etcdFlag(values.etcd),
    certPem: readerCertPem(values),
    keyPem: readFlagFile(requireFlag(values.key, 'key', 'pki/operators/readonly/key.pem'), 'key'),
    caPem: readFlagFile(requireFlag(values.ca, 'ca', 'pki/root/cert.pem'), 'ca'),
  });
  try {
    const rows = await statusRows(etcd, etcdKeys(cluster), values.op);
    if (values.json) return void process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
    if (!rows.length) return void process.stdout.write(`no status recorded${values.op ? ` for ${values.op}` : ''}\n`);
    for (const r of rows) process.stdout.write(`${r.op}  ${r.shard.padEnd(12)} ${r.phase.padEnd(11)} ${describe(r)}\n`);
  } finally {
    etcd.close();
  }
}

const FAILED = ['refused', 'stale', 'failed', 'aborted', 'aborting'];

/** Prints each involved shard's progress as it changes until every source cut over (resolves) or one failed (throws). */
export async function followOperation(etcd: Etcd3, keys: ReturnType<typeof etcdKeys>, op: RebalanceOperation, everyMs = 500): Promise<void> {
  const sources = [...new Set(op.moves.map((m) => m.from))];
  const shown = new Map<string, string>();
  for (;;) {
    const rows = await statusRows(etcd, keys, op.id);
    for (const r of rows) {
      const line = `${r.shard.padEnd(12)} ${r.phase.padEnd(11)} ${describe(r)}`;
      if (shown.get(r.shard) !== line) process.stdout.write(`${line}\n`);
      shown.set(r.shard, line);
    }
    const bad = rows.find((r) => FAILED.includes(r.phase));
    if (bad) throw new Error(`operation ${op.id}: ${bad.shard} says ${bad.phase}${bad.reason ? ` (${bad.reason}: ${bad.message})` : ''}`);
    const phases = new Map(rows.map((r) => [r.shard, r.phase]));
    if (sources.every((s) => ['done', 'cleaned'].includes(phases.get(s) ?? ''))) {
      process.stdout.write(`operation ${op.id} cut over: epoch ${op.next.epoch} is in force\n`);
      return;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
