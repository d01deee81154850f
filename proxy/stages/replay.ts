// Stage: the nonce is unseen within the window and the timestamp above the sender's floor (409
// REPLAY_DETECTED), and it is remembered from now on; then the sender's persisted high-water
// mark must cover the timestamp before the request goes on (a disk write, rarely waited for;
// 503 REPLAY_STATE_UNAVAILABLE when it fails), so a restart cannot reopen it. The nonce is
// remembered first so that a copy arriving during that wait is refused. It runs after the
// signature and body checks, so forged requests never fill the cache or move a mark.
import type { Stage } from './mesh-request.js';

export const replay: Stage = (r, d) => d.admit(r.sig!.shardId, r.sig!.nonce, r.sig!.timestamp);
