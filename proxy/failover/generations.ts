// The highest failover generation this sidecar saw per replica group, and who held it, kept in
// replication.stateDir/failover-generations.json (written durably before the sidecar acts on
// a newer one). A restored etcd's generations go back with it; this file does not, so a
// sidecar — running or restarted — can tell (failover.ts, checkGenerations).
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeFileDurably } from '../../src/durable-write.js';
import type { Logger } from '../../src/log.js';

export interface Generation {
  gen: number;
  holder: string;
}

export class FailoverGenerations {
  private readonly known = new Map<string, Generation>();

  constructor(
    private readonly file: string | undefined,
    private readonly log: Logger,
  ) {
    if (!file) return;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      return; // none yet
    }
    try {
      const o = JSON.parse(text) as { groups?: Record<string, unknown> };
      for (const [group, v] of Object.entries(o.groups ?? {})) {
        const g = v as Partial<Generation>;
        if (typeof g?.gen === 'number' && Number.isSafeInteger(g.gen) && g.gen > 0 && typeof g.holder === 'string') this.known.set(group, { gen: g.gen, holder: g.holder });
      }
    } catch (e) {
      log.warn({ file, err: (e as Error).message }, 'failover generations file unreadable; starting from what etcd holds');
    }
  }

  get(group: string): Generation | undefined {
    return this.known.get(group);
  }

  /**
   * Remembers newer generations; durable before it resolves. A file that cannot be written is
   * logged as an error and the generations are kept in memory: failover goes on, and a rolled-back
   * etcd is still noticed while the sidecar runs, but not after a restart.
   */
  async raise(seen: readonly ({ group: string } & Generation)[]): Promise<void> {
    let changed = false;
    for (const s of seen) {
      if ((this.known.get(s.group)?.gen ?? 0) >= s.gen) continue;
      this.known.set(s.group, { gen: s.gen, holder: s.holder });
      changed = true;
    }
    if (!changed || !this.file) return;
    try {
      mkdirSync(dirname(this.file), { recursive: true });
      await writeFileDurably(this.file, `${JSON.stringify({ groups: Object.fromEntries(this.known) }, null, 1)}\n`);
    } catch (e) {
      this.log.error({ file: this.file, err: (e as Error).message }, 'cannot write the failover generations; a restored etcd is noticed only while this sidecar runs (replication.stateDir must be writable)');
    }
  }
}
