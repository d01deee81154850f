// `themis-admin backup --follow`: after the base backup, the shard's change feed is archived
// into DIR/feed/ by the project's one change-feed follower (proxy/feed/follower.ts) with a sink
// instead of a target node. The archive is its own checkpoint (its last durable sequence
// number); a feed trimmed past it, or a node whose log is behind it, ends the follow with the
// reason — the archive cannot skip changes, a new base backup is needed.
import type { webcrypto } from 'node:crypto';
import { FeedFollower } from '../../proxy/feed/follower.js';
import { NodeClient } from '../../proxy/feed/node-client.js';
import { TokenRanges } from '../../proxy/feed/token-ranges.js';
import type { Checkpoint, CheckpointStore } from '../../proxy/feed/checkpoints.js';
import { LocalUpstream } from '../../proxy/local-upstream.js';
import { TOKEN_MAX } from '../hash.js';
import type { Logger } from '../log.js';
import { systemClock } from '../runtime.js';
import { SegmentWriter, type ArchiveIdentity, type FeedRecord } from './feed-segments.js';

export interface FollowOptions {
  storageUrl: string;
  backupDir: string;
  id: ArchiveIdentity;
  /** The follower's registration at the node (the base backup registered it at its seq). */
  registerAs: string;
  signer: { chain: readonly Uint8Array[]; key: webcrypto.CryptoKey };
  limits: { maxRecords: number; maxMs: number };
  log: Logger;
  /** Resolves when the follow should stop (a signal). */
  stop: Promise<unknown>;
  onStarted?: (fromSeq: number) => void;
}

/** Follows until `stop` (resolves with the archive's last seq) or a gap it cannot bridge (rejects). */
export async function followFeed(o: FollowOptions): Promise<number> {
  const writer = new SegmentWriter(o.backupDir, o.id, o.signer, o.limits);
  await writer.open();
  let dropped = false;
  let fatal: string | undefined;
  let wakeFatal!: () => void;
  const fatalSeen = new Promise<void>((r) => (wakeFatal = r));
  // The archive is the checkpoint; one the follower drops (trimmed, source behind) leads it to a
  // full copy, which a sink cannot make: onFullCopy hears why and the follow ends.
  const checkpoints: CheckpointStore = {
    get: (): Checkpoint | undefined => (dropped ? undefined : { seq: writer.lastSeq, source: o.id.shard, updatedAt: new Date().toISOString() }),
    put: () => undefined,
    drop: () => void (dropped = true),
  };
  const upstream = new LocalUpstream({ url: o.storageUrl, requestTimeoutMs: 30_000 });
  const follower = new FeedFollower({
    id: 'backup-archive',
    sourceShard: o.id.shard,
    source: new NodeClient(upstream),
    sink: (changes) => writer.append(changes as unknown as FeedRecord[]),
    ranges: new TokenRanges([{ start: 0n, end: TOKEN_MAX }]),
    checkpoints,
    clock: systemClock,
    log: o.log,
    registerAs: o.registerAs,
    longPollMs: 1000,
    onFullCopy: (reason) => {
      fatal = reason;
      wakeFatal();
    },
  });
  o.onStarted?.(writer.lastSeq);
  follower.start();
  try {
    await Promise.race([o.stop, fatalSeen]);
    await follower.stop();
    await writer.close();
  } finally {
    upstream.close();
  }
  if (fatal) throw new Error(`the archive ends at seq ${writer.lastSeq} and cannot continue (${fatal}); take a new base backup`);
  return writer.lastSeq;
}
