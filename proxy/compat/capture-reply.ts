// A Reply that keeps the answer instead of sending it: how the AQL translation runs the mesh's
// own query paths (scatter-gather, a routed entity read) and reshapes what they answer. The
// answer is held whole, up to a byte limit; a refusal rejects with its error, and an answer cut
// short (a shard lost mid-stream) rejects with SHARDS_UNAVAILABLE.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { Writable } from 'node:stream';
import { ThemisError } from '../../src/errors.js';
import type { Reply } from '../respond.js';
import { readAnswer } from '../upstream.js';

export interface Captured {
  status: number;
  /** The mesh's headers of the answer (who served it, at which epoch), as the path set them. */
  headers: OutgoingHttpHeaders | IncomingHttpHeaders;
  body: Buffer;
}

export function captureReply(limit: number, tooLarge: () => ThemisError): { reply: Reply; answer: Promise<Captured> } {
  let resolve!: (c: Captured) => void;
  let reject!: (e: unknown) => void;
  const answer = new Promise<Captured>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const reply: Reply = {
    json(status, body, headers = {}) {
      resolve({ status, headers, body: Buffer.from(JSON.stringify(body)) });
    },
    error(err) {
      reject(err);
    },
    upstream(up, headers) {
      readAnswer(up, limit).then(
        (body) => (up.complete() ? resolve({ status: up.status, headers, body }) : reject(new ThemisError('UPSTREAM_PROTOCOL_ERROR', 'the answer broke off before its end'))),
        (e: Error) => reject(/larger than/.test(e.message) ? tooLarge() : new ThemisError('UPSTREAM_PROTOCOL_ERROR', `the answer broke off: ${e.message}`)),
      );
    },
    begin(status, headers) {
      const chunks: Buffer[] = [];
      let size = 0;
      return new Writable({
        write(chunk: Buffer, _enc, done) {
          size += chunk.length;
          if (size > limit) return done(tooLarge());
          chunks.push(Buffer.from(chunk));
          done();
        },
        final(done) {
          resolve({ status, headers, body: Buffer.concat(chunks, size) });
          done();
        },
        destroy(err, done) {
          // A scatter-gather ends a stream it cannot complete by destroying it.
          reject(err ?? new ThemisError('SHARDS_UNAVAILABLE', 'a shard failed while the answer was being merged'));
          done(null);
        },
      }).on('error', () => undefined);
    },
  };
  return { reply, answer };
}
