// Stage: the six x-themis-* headers are present and well-formed (400 SIGNATURE_HEADERS_INVALID).
import { parseSignedHeaders } from '../../src/signing/canonical.js';
import type { Stage } from './mesh-request.js';

export const signedHeaders: Stage = (r) => {
  r.sig = parseSignedHeaders(r.headers);
};
