// Stage: the signed timestamp lies within the replay window around now (401).
import type { Stage } from './mesh-request.js';

export const timestamp: Stage = (r, d) => d.replay.checkTimestamp(r.sig!.timestamp);
