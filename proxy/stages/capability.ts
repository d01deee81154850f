// Capability stage: the operation's capability must be in the peer certificate's list and
// within what its kind of certificate may hold at all (ALLOWED_CAPABILITIES, the same table
// themis-pki issues by): clients get read/write at most, operators no data-path capability.
import { ThemisError } from '../../src/errors.js';
import { ALLOWED_CAPABILITIES } from '../../src/pki/profiles.js';
import type { MeshPeer } from '../peer-identity.js';
import type { Capability } from '../operations.js';
import type { Stage } from './mesh-request.js';

const CEILING: Record<MeshPeer['kind'], readonly string[]> = ALLOWED_CAPABILITIES;

export function requireCapability(peer: MeshPeer, needed: Capability): void {
  const caps = peer.identity.capabilities as readonly string[];
  if (!caps.includes(needed) || !CEILING[peer.kind].includes(needed)) {
    throw new ThemisError('CAPABILITY_DENIED', `certificate ${peer.serial} lacks the "${needed}" capability this operation needs`, {
      needed,
    });
  }
}

/** Stage: the operation's capability (403 CAPABILITY_DENIED). */
export const capability: Stage = (r) => requireCapability(r.peer, r.op.capability);
