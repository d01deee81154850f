// Test keys that land on a chosen shard: random uuids, kept when XXH64 puts them in range.
import { randomUUID } from 'node:crypto';
import { xxh64 } from '../../src/hash.js';

export function uuidOwnedBy(range: { start: bigint; end: bigint }): string {
  for (;;) {
    const u = randomUUID();
    const t = xxh64(u);
    if (t >= range.start && t <= range.end) return u;
  }
}
