// A term this shard has just taken is not held at once when its replica follower of the group's
// previous primary still writes into the group's ranges here: a late page of the old primary's
// feed would land over writes acknowledged by the new term (lost, or reverted). The terms in
// that state are "settling" until the follower has stopped writing (ReplicaManager.quietFor);
// Failover.holds and the workers' mirror treat them as not held, so writes wait (bounded, in
// AckGate.settled) instead of being acknowledged.
import type { TokenSpan } from '../../src/topology/replica-ranges.js';
import type { ReplicaGroup } from '../../src/topology/replica-groups.js';

type Acting = ReadonlyMap<string, { shard: string; term: number }>;

export class TermSettling {
  private readonly settling = new Set<string>();

  constructor(
    private readonly self: string,
    /** Resolves once no retiring follower writes into `ranges` here; undefined when none does. */
    private readonly quiet: (ranges: readonly TokenSpan[]) => Promise<void> | undefined,
    /** Told when a term stops settling (and after settle()). */
    private readonly changed: () => void,
  ) {}

  /**
   * The groups this shard acts for in `after` at a term it did not act at in `before`, marked
   * settling. Called before the new state is published (which retires the followers), so that no
   * moment exists at which the term is visible as held.
   */
  mark(groups: readonly ReplicaGroup[], before: Acting, after: Acting): ReplicaGroup[] {
    const fresh = groups.filter((g) => {
      const a = after.get(g.id);
      if (a?.shard !== this.self || this.settling.has(g.id)) return false;
      const b = before.get(g.id);
      return !(b?.shard === this.self && b.term === a.term);
    });
    for (const g of fresh) this.settling.add(g.id);
    return fresh;
  }

  /** After the publish: each marked term is held once its ranges are quiet here, at once when they are. */
  settle(fresh: readonly ReplicaGroup[]): void {
    if (fresh.length === 0) return;
    for (const g of fresh) {
      const quiet = this.quiet(g.ranges);
      if (!quiet) {
        this.settling.delete(g.id);
        continue;
      }
      const held = () => {
        this.settling.delete(g.id);
        this.changed();
      };
      void quiet.then(held, held);
    }
    this.changed();
  }

  has(group: string): boolean {
    return this.settling.has(group);
  }

  list(): string[] {
    return [...this.settling];
  }
}
