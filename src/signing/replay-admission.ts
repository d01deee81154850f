// The replay check of one signed request that passed every other check: its nonce must be
// unseen within the window and is remembered from now on (409 REPLAY_DETECTED); then the
// sender's persisted high-water mark must cover its timestamp (replay-floors.ts). One function,
// so that the sidecar's workers can ask the one process that holds the cache and the marks
// (proxy/cluster/) instead of each keeping its own, which a copy sent to another worker would pass.
import type { ReplayGuard } from './replay-guard.js';
import type { ReplayFloors } from './replay-floors.js';

/** Resolves (or returns) when the request may go on; throws (or rejects with) a ThemisError. */
export type ReplayAdmission = (sender: string, nonce: string, timestamp: number) => void | Promise<void>;

/** The check done in this process, with its own cache and marks. */
export function localAdmission(guard: ReplayGuard, floors: Pick<ReplayFloors, 'cover'>): ReplayAdmission {
  return (sender, nonce, timestamp) => {
    guard.checkAndRemember(sender, nonce, timestamp);
    return floors.cover(sender, timestamp);
  };
}
