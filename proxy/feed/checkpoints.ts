// Where each follower of a change feed has got to: one small JSON file per follower, replaced
// atomically (rename). A checkpoint may lag the follower (it is written every so often, and not
// fsynced): a restart then applies a few pages again, which is harmless, but never skips one,
// since every change it covers is already durable on the target. A file lost in a crash means
// a full repair copy.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Checkpoint {
  /** Every change up to this sequence number of the source is applied. */
  seq: number;
  /** The shard whose feed this is. */
  source: string;
  updatedAt: string;
  /**
   * Token spans to repair against a scan of the source before following from `seq`: a replica
   * whose ranges grew carries its position over and copies only the new spans (hex bounds).
   */
  repair?: { start: string; end: string }[];
  /**
   * The target node's newest sequence number when the checkpoint was written: a target found
   * below it lost what the checkpoint covers (restored, wiped) and the follower copies again.
   */
  target_seq?: number;
}

export interface CheckpointStore {
  get(id: string): Checkpoint | undefined;
  put(id: string, cp: Checkpoint): void;
  drop(id: string): void;
}

const SAFE_ID = /^[a-z0-9][a-z0-9._-]{0,127}$/;
const HEX = /^0x[0-9a-f]{1,16}$/;

export class FileCheckpoints implements CheckpointStore {
  private made = false;

  /** The directory is made at the first checkpoint (a sidecar that replicates nothing writes none). */
  constructor(private readonly dir: string) {}

  private file(id: string): string {
    if (!SAFE_ID.test(id)) throw new Error(`checkpoint id "${id}" must be lower-case letters, digits, dots, hyphens or underscores`);
    return join(this.dir, `${id}.json`);
  }

  get(id: string): Checkpoint | undefined {
    try {
      const v = JSON.parse(readFileSync(this.file(id), 'utf8')) as Partial<Checkpoint>;
      const repairOk = v.repair === undefined || (Array.isArray(v.repair) && v.repair.every((r) => typeof r?.start === 'string' && typeof r?.end === 'string' && HEX.test(r.start) && HEX.test(r.end)));
      const targetOk = v.target_seq === undefined || (Number.isSafeInteger(v.target_seq) && v.target_seq >= 0);
      return Number.isSafeInteger(v.seq) && v.seq! >= 0 && typeof v.source === 'string' && repairOk && targetOk ? (v as Checkpoint) : undefined;
    } catch {
      return undefined; // none yet, or unreadable: a full copy starts over, which is always safe
    }
  }

  put(id: string, cp: Checkpoint): void {
    const file = this.file(id);
    if (!this.made) {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      this.made = true;
    }
    writeFileSync(file + '.tmp', JSON.stringify(cp), { mode: 0o600 });
    renameSync(file + '.tmp', file);
  }

  drop(id: string): void {
    this.put(id, { seq: -1, source: '', updatedAt: new Date(0).toISOString() });
  }
}

/** In memory, for tests of the follower's logic. */
export class MemoryCheckpoints implements CheckpointStore {
  private readonly m = new Map<string, Checkpoint>();
  get(id: string): Checkpoint | undefined {
    const c = this.m.get(id);
    return c && c.seq >= 0 ? c : undefined;
  }
  put(id: string, cp: Checkpoint): void {
    this.m.set(id, cp);
  }
  drop(id: string): void {
    this.m.delete(id);
  }
}
