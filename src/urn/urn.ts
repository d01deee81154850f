// Entity keys and their routing token. Parsing and formatting live in key.ts (pure, shared with
// the client SDK); the token needs XXH64 (wasm), which only the server side loads.
// Both key forms name the same entity. The uuid is kept exactly as written: its token (XXH64 of
// those bytes) decides the owning shard, so "ABC…" and "abc…" are different entities.
import { xxh64 } from '../hash.js';
import type { EntityKey } from './key.js';

export { MODELS, parseKey, parseTable, formatUrn, formatThemisKey } from './key.js';
export type { Model, EntityKey } from './key.js';

/** The routing token: XXH64 of the uuid exactly as written, seed 0 (only the uuid is hashed). */
export function tokenOf(k: EntityKey): bigint {
  return xxh64(k.uuid);
}
