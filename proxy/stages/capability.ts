// Capability stage: the operation's capability must be in the peer certificate's list.
// Client-certificate apps get read/write at most, whatever else their certificate lists.
import { ThemisError } from '../../src/errors.js';
import type { MeshPeer } from '../peer-identity.js';
import type { Capability } from '../operations.js';

const CLIENT_MAX: readonly Capability[] = ['read', 'write'];

export function requireCapability(peer: MeshPeer, needed: Capability): void {
  const caps = peer.identity.capabilities as readonly string[];
  const allowed = caps.includes(needed) && (peer.kind !== 'client' || CLIENT_MAX.includes(needed));
  if (!allowed) {
    throw new ThemisError('CAPABILITY_DENIED', `certificate ${peer.serial} lacks the "${needed}" capability this operation needs`, {
      needed,
    });
  }
}
