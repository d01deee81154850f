// Stage: the signature verifies over the canonical string with the key of the TLS peer's
// certificate, decoded once per session (401 SIGNATURE_INVALID). The body hash it covers is
// checked once the body is read (the body stage).
import { ThemisError } from '../../src/errors.js';
import { canonicalString } from '../../src/signing/canonical.js';
import { verifySignature } from '../../src/signing/sign.js';
import type { Stage } from './mesh-request.js';

export const signature: Stage = (r) => {
  if (!verifySignature(canonicalString(r.method, r.url, r.sig!), r.sig!.signature, r.peer.publicKey)) {
    throw new ThemisError('SIGNATURE_INVALID', 'the signature does not verify over the canonical string with the peer certificate key');
  }
};
