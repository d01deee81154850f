// `themis-admin rebalance`: builds a RebalanceOperation from the topology in force (read from
// etcd and verified), signs it with the operator's key and writes it to
// /themis/{cluster}/rebalance/{opId}. `switch`, `abort` and `status` are in admin-rebalance-control.ts.
import { parseToken, tokenHex } from '../hash.js';
import { MoveError } from '../rebalance/moves.js';
import { buildOperation } from '../rebalance/operation.js';
import { parseFlags, requireFlag, UsageError } from './cli-common.js';
import { abortOperation, followOperation, status, switchOver } from './admin-rebalance-control.js';
import { openOperatorSession, SESSION_FLAGS, submitOperation } from './operator-session.js';

export const REBALANCE_USAGE = `themis-admin rebalance --from SHARD --to SHARD --token-range 0xSTART:0xEND --cluster NAME
        --etcd https://HOST:2379 --ca ROOT.pem --crls A.pem,… --operator-cert CHAIN.pem --operator-key KEY.pem
        [--cutover auto|manual] [--wait]
  Signs an operation moving the tokens START…END (inclusive) from one shard to another,
  starting from the topology in force (epoch E) and naming the topology of epoch E+1, and
  writes it to /themis/{cluster}/rebalance/{opId}. Every shard verifies it (signature, the
  operator's rebalance capability, the epoch, the target's certified range) and audits it.
  The target copies the tokens and follows the source's feed; the source then holds writes to
  them briefly, verifies both copies match, publishes the next epoch and deletes its copy.
  --cutover manual waits for \`rebalance switch\` before that (default: auto). --wait follows
  the operation until it is cut over (exit 0) or refused, stale, failed or aborted (exit 1);
  interrupting it changes nothing, the shards carry on.
themis-admin rebalance switch --op ID --cluster NAME --etcd … --ca … --operator-cert … --operator-key …
  Lets a --cutover manual operation cut over.
themis-admin rebalance abort --op ID --cluster NAME --etcd … --ca … --crls … --operator-cert … --operator-key …
  Stops an operation before its cutover: the signed abort is written only while the topology is
  still the operation's base epoch, and a cutover cannot happen once it is there. Targets delete
  what they copied. Refused (exit 1) when the operation was already cut over.
themis-admin rebalance status [--op ID] --cluster NAME --etcd … --ca … --cert … --key … [--json]
  What each involved shard made of each operation: accepted, copying, catching-up (with lag
  and keys copied), done, cleaned, received — or refused, stale, failed, aborted and why.`;

export async function rebalanceCommand(argv: string[]): Promise<void> {
  if (argv[0] === 'status') return status(argv.slice(1));
  if (argv[0] === 'switch') return switchOver(argv.slice(1));
  if (argv[0] === 'abort') return abortOperation(argv.slice(1));
  const { values } = parseFlags(argv, {
    from: { type: 'string' }, to: { type: 'string' }, 'token-range': { type: 'string' }, cutover: { type: 'string' }, wait: { type: 'boolean' }, ...SESSION_FLAGS,
  });
  const from = requireFlag(values.from, 'from', 'shard-001');
  const to = requireFlag(values.to, 'to', 'shard-002');
  const range = requireFlag(values['token-range'], 'token-range', '0x0000000000000000:0x1fffffffffffffff');
  const [a, b] = range.split(':');
  const start = a === undefined ? undefined : parseToken(a);
  const end = b === undefined ? undefined : parseToken(b);
  if (start === undefined || end === undefined || start > end) throw new UsageError(`--token-range ${range}: write 0xSTART:0xEND, 0x-prefixed hex tokens with START ≤ END`);
  const cutover = values.cutover ?? 'auto';
  if (cutover !== 'auto' && cutover !== 'manual') throw new UsageError(`--cutover ${cutover}: write auto or manual`);
  const s = await openOperatorSession(values);
  try {
    let operation;
    try {
      operation = buildOperation(s.topology, [{ from, to, start, end }], { cutover });
    } catch (e) {
      if (e instanceof MoveError) throw new UsageError(e.message);
      throw e;
    }
    const key = await submitOperation(s, operation);
    process.stdout.write(`operation ${operation.id}: ${tokenHex(start)}–${tokenHex(end)} from ${from} to ${to}, epoch ${operation.baseEpoch} → ${operation.next.epoch}; written to ${key}\n`);
    if (values.wait) await followOperation(s.etcd, s.keys, operation);
  } finally {
    s.close();
  }
}
