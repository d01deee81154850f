// Stage: the signature verifies over the canonical string with the key of the TLS peer's
// certificate, decoded once per session (401 SIGNATURE_INVALID). The body hash it covers is
// checked once the body is read (the body stage). When `signing.threadpool` says so (always, or
// under load with "auto") the check runs on libuv's thread pool and the request waits for it;
// the order of the stages is the same.
import { ThemisError } from '../../src/errors.js';
import { canonicalString } from '../../src/signing/canonical.js';
import { verifySignature, verifySignatureAsync } from '../../src/signing/sign.js';
import type { Stage } from './mesh-request.js';

const invalid = () => new ThemisError('SIGNATURE_INVALID', 'the signature does not verify over the canonical string with the peer certificate key');

export const signature: Stage = (r, d) => {
  const canonical = canonicalString(r.method, r.url, r.sig!);
  if (d.offloadSignature()) {
    return verifySignatureAsync(canonical, r.sig!.signature, r.peer.publicKey).then((ok) => {
      if (!ok) throw invalid();
    });
  }
  if (!verifySignature(canonical, r.sig!.signature, r.peer.publicKey)) throw invalid();
};
