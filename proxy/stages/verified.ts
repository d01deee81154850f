// Stage: marks a shard peer's request as verified (SIGNATURE_VERIFIED in the audit trail,
// aggregated per peer) once the signature, body and nonce checks before it have passed.
import type { Stage } from './mesh-request.js';

export const verified: Stage = (r, d) => d.verified(r.peer);
