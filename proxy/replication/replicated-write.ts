// A write to this shard's storage node that counts as done only when the ack gate says so: the
// storage node's answer is held (it is small) until enough replicas confirmed the write, then
// relayed; a failed confirmation answers REPLICATION_UNAVAILABLE instead. Writes the gate does
// not need to wait for (no replicas, ack "primary", a refused write) stream straight through.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import type { LocalUpstream } from '../local-upstream.js';
import type { Reply } from '../respond.js';
import { MAX_WRITE_ANSWER_BYTES, readAnswer } from '../upstream.js';
import type { Topology } from '../../src/topology/topology.js';
import type { AckGate } from './ack-gate.js';
import { ThemisError } from '../../src/errors.js';
import type { WriteHold } from '../rebalance/write-hold.js';

/** A range move's cutover may hold the write; afterwards its key may belong elsewhere. */
export interface HoldCheck {
  writes: WriteHold;
  self: string;
  /** The key's owner and epoch now. */
  now: (key: string) => { owner: string; epoch: number };
}

/** Thrown when a held write's key moved away: the router sends it on to the new owner; a peer gets 421. */
export function movedAway(key: string, now: { owner: string; epoch: number }): ThemisError {
  return new ThemisError('NOT_OWNER', `the key moved to ${now.owner} at topology epoch ${now.epoch} while its write was held`, { topology_epoch: now.epoch, moved: true });
}


interface LocalWrite {
  local: LocalUpstream;
  gate: AckGate;
  key: string;
  /** The topology the write was routed (or its ownership checked) by. */
  topo: Topology;
  req: { method: string; url: string; headers: IncomingHttpHeaders; body: Buffer | Readable | undefined };
  reply: Reply;
  answerHeaders: OutgoingHttpHeaders;
}

/** `topo`: the topology the write was routed (or its ownership checked) by. */
export async function writeLocally(
  local: LocalUpstream,
  gate: AckGate,
  key: string,
  topo: Topology,
  req: LocalWrite['req'],
  reply: Reply,
  answerHeaders: OutgoingHttpHeaders,
  hold?: HoldCheck,
): Promise<void> {
  const w: LocalWrite = { local, gate, key, topo, req, reply, answerHeaders };
  if (!hold) return write(w);
  const leave = await hold.writes.enter(key);
  try {
    const now = hold.now(key);
    if (now.owner !== hold.self) throw movedAway(key, now);
    await write(w);
  } finally {
    leave();
  }
}

async function write({ local, gate, key, topo, req, reply, answerHeaders }: LocalWrite): Promise<void> {
  await gate.settled(key);
  const pending = gate.plan(key, topo);
  const up = await local.forward(req.method, req.url, req.headers, req.body);
  if (up.status >= 300 || (pending.needed <= 0 && !pending.fence)) return reply.upstream(up, answerHeaders);
  const body = await readAnswer(up, MAX_WRITE_ANSWER_BYTES);
  await gate.settle(pending);
  reply.upstream({ ...up, body: Readable.from([body]), complete: () => true }, answerHeaders);
}
