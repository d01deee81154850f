// Stage: the body is read under the size cap (413; 400 when it ends short of its declared
// length) and, when the request is signed, matches the signed x-themis-content-sha256 (401).
import { ThemisError } from '../../src/errors.js';
import { readBody } from '../../src/http-body.js';
import { sha256Hex } from '../../src/signing/sign.js';
import type { Stage } from './mesh-request.js';

export const body: Stage = async (r, d) => {
  r.body = await readBody(r.source as Parameters<typeof readBody>[0], d.maxBodyBytes, r.headers['content-length']);
  if (r.sig && sha256Hex(r.body) !== r.sig.contentSha256) {
    throw new ThemisError('SIGNATURE_INVALID', 'the body does not match the signed x-themis-content-sha256');
  }
};
