// Stage: the signed sender is the TLS peer — same shard id, same certificate serial (401).
import { ThemisError } from '../../src/errors.js';
import type { Stage } from './mesh-request.js';

export const identity: Stage = (r) => {
  const sig = r.sig!;
  if (sig.shardId !== r.peer.identity.shardId) {
    throw new ThemisError('IDENTITY_MISMATCH', `x-themis-shard-id "${sig.shardId}" is not the TLS peer's shard "${r.peer.identity.shardId}"`);
  }
  if (sig.certSerial !== r.peer.serial) {
    throw new ThemisError('IDENTITY_MISMATCH', `x-themis-cert-serial ${sig.certSerial} is not the TLS peer's certificate serial`);
  }
};
