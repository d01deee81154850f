// Waiting for this shard to hold the term of a key's group (failover.ts in one process,
// failover-mirror.ts in a worker): a group nobody acts for yet — new after a range move, or in
// an election — is waited for, so that clients see a pause instead of an error; a group another
// shard acts for is not.
import type { Fence } from './fence.js';

export interface HeldView {
  fenceOf(token: bigint): Fence | undefined;
  holds(f: Fence): boolean;
  /** The shard acting for `group` now, if any. */
  actingShard(group: string): string | undefined;
}

/** True once `self` holds the term of `token`'s group (or it has no replicas); false after `ms`, or as soon as another shard acts. */
export async function untilHeld(v: HeldView, self: string, token: bigint, ms: number, now: () => number): Promise<boolean> {
  const end = now() + ms;
  for (;;) {
    const f = v.fenceOf(token);
    if (!f || v.holds(f)) return true;
    const acting = v.actingShard(f.group);
    if (acting !== undefined && acting !== self) return false; // another shard acts: nothing to wait for here
    if (now() >= end) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
}
