// A write to this shard's storage node that counts as done only when the ack gate says so: the
// storage node's answer is held (it is small) until enough replicas confirmed the write, then
// relayed; a failed confirmation answers REPLICATION_UNAVAILABLE instead. Writes the gate does
// not need to wait for (no replicas, ack "primary", a refused write) stream straight through.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import type { LocalUpstream } from '../local-upstream.js';
import type { Reply } from '../respond.js';
import { readAnswer } from '../upstream.js';
import type { Topology } from '../../src/topology/topology.js';
import type { AckGate } from './ack-gate.js';

const MAX_WRITE_ANSWER = 1024 * 1024;

/** `topo`: the topology the write was routed (or its ownership checked) by. */
export async function writeLocally(
  local: LocalUpstream,
  gate: AckGate,
  key: string,
  topo: Topology,
  req: { method: string; url: string; headers: IncomingHttpHeaders; body: Buffer | Readable | undefined },
  reply: Reply,
  answerHeaders: OutgoingHttpHeaders,
): Promise<void> {
  const pending = gate.plan(key, topo);
  const up = await local.forward(req.method, req.url, req.headers, req.body);
  if (up.status >= 300 || (pending.needed <= 0 && !pending.fence)) return reply.upstream(up, answerHeaders);
  const body = await readAnswer(up, MAX_WRITE_ANSWER);
  await gate.settle(pending);
  reply.upstream({ ...up, body: Readable.from([body]), complete: () => true }, answerHeaders);
}
