// Where each follower of a change feed has got to: one small JSON file per follower, written
// atomically and fsynced before the follower moves on, so a restart resumes where it stopped
// and never skips a change (it may apply the last page again, which is harmless).
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export interface Checkpoint {
  /** Every change up to this sequence number of the source is applied. */
  seq: number;
  /** The shard whose feed this is. */
  source: string;
  updatedAt: string;
}

export interface CheckpointStore {
  get(id: string): Checkpoint | undefined;
  put(id: string, cp: Checkpoint): void;
  drop(id: string): void;
}

const SAFE_ID = /^[a-z0-9][a-z0-9._-]{0,127}$/;

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
      return Number.isSafeInteger(v.seq) && v.seq! >= 0 && typeof v.source === 'string' ? (v as Checkpoint) : undefined;
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
    const fd = openSync(file + '.tmp', 'w', 0o600);
    try {
      writeSync(fd, JSON.stringify(cp));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
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
