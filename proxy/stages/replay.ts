// Stage: the nonce is unseen within the window (409 REPLAY_DETECTED), and remembered from now
// on. It runs after the signature and body checks, so forged requests never fill the cache.
import type { Stage } from './mesh-request.js';

export const replay: Stage = (r, d) => d.replay.checkAndRemember(r.sig!.shardId, r.sig!.nonce, r.sig!.timestamp);
