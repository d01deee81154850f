// Reading a request body (HTTP/1.1 or HTTP/2) under a hard byte cap: a declared or streamed
// size over the cap is refused with 413 as soon as it is known; the rest is never buffered.
// An HTTP/2 stream may carry its listener's limits too (body-limits.ts): a deadline (408) and
// a byte budget shared with every other body in flight (503), its bytes held until it closes.
import type { IncomingMessage } from 'node:http';
import { constants as http2constants, type Http2ServerRequest, type ServerHttp2Stream } from 'node:http2';
import { ThemisError } from './errors.js';
import { bodyLimitsOf, bodyTimedOut } from './body-limits.js';

type Req = IncomingMessage | Http2ServerRequest;
/** A compatibility-API request, or a stream from the core HTTP/2 API (its declared length is passed apart). */
type Source = Req | ServerHttp2Stream;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * After a 413 the rest of the body is read and thrown away (never held), so that the client,
 * which is usually still sending, can read the answer and keep its connection. Past another
 * `budget` bytes the node stops listening: it closes the HTTP/1.1 connection once the answer is
 * out, or cancels the HTTP/2 stream (RST_STREAM CANCEL).
 */
function discardRest(req: Source, budget: number): void {
  let discarded = 0;
  const onData = (chunk: Buffer): void => {
    discarded += chunk.length;
    if (discarded > budget) {
      req.off('data', onData);
      req.pause();
      if ('respond' in req) req.close(http2constants.NGHTTP2_CANCEL);
      else if ('stream' in req) req.stream.close(http2constants.NGHTTP2_CANCEL);
      else req.socket.destroySoon();
    }
  };
  req.on('data', onData);
  req.resume();
}

function tooLarge(limit: number): ThemisError {
  return new ThemisError('PAYLOAD_TOO_LARGE', `request body exceeds ${limit} bytes`, { limit_bytes: limit });
}

/**
 * Reads the whole body as bytes, or throws PAYLOAD_TOO_LARGE once it passes `limit`. An
 * HTTP/2 stream has no headers of its own: pass the content-length its request declared.
 */
export function readBody(req: Source, limit: number, declared = 'headers' in req ? req.headers['content-length'] : undefined): Promise<Buffer> {
  if (declared !== undefined && Number(declared) > limit) {
    discardRest(req, limit);
    return Promise.reject(tooLarge(limit));
  }
  const limits = bodyLimitsOf(req);
  // A late body is not read at all: its listener resets the stream once the answer is out.
  if (limits?.expired) return Promise.reject(bodyTimedOut(limits));
  // A stream closed already cannot give its bytes back at close, and holds no more than its window.
  const stream = 'stream' in req ? req.stream : req;
  const budget = (stream as { closed?: boolean }).closed ? undefined : limits?.budget;
  /** Bytes of the budget this body holds: its declared length at once, then whatever arrives beyond it. */
  let held = 0;
  const release = (): void => {
    budget?.give(held);
    held = 0;
  };
  if (budget) {
    const n = Number(declared ?? 0);
    // Taken before any of it arrives, so bodies that cannot all fit are refused at once.
    if (!budget.take(Number.isSafeInteger(n) && n > 0 ? n : 0)) {
      discardRest(req, limit);
      return Promise.reject(budget.exceeded());
    }
    held = Number.isSafeInteger(n) && n > 0 ? n : 0;
    // The bytes stay held while the request is served (they are forwarded from memory).
    stream.once('close', release);
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (err: Error | null, value?: Buffer): void => {
      if (done) return;
      done = true;
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
      if (limits) limits.onExpire = undefined;
      if (err) {
        chunks.length = 0;
        release();
        reject(err);
      } else resolve(value!);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        finish(tooLarge(limit));
        discardRest(req, limit);
        return;
      }
      if (budget && size > held) {
        if (!budget.take(size - held)) {
          finish(budget.exceeded());
          discardRest(req, limit);
          return;
        }
        held = size;
      }
      chunks.push(chunk);
    };
    if (limits) limits.onExpire = () => finish(bodyTimedOut(limits));
    const onEnd = (): void => {
      // HTTP/1.1's parser enforces content-length itself; an HTTP/2 stream reset mid-body can
      // still emit 'end', so a declared length is checked here.
      if (declared !== undefined && Number(declared) !== size) {
        finish(new ThemisError('INVALID_BODY', `request body ended after ${size} of ${declared} declared bytes`));
        return;
      }
      finish(null, Buffer.concat(chunks, size));
    };
    const onError = (err: Error): void => finish(err);
    // The client reset or went away: there is no one left to answer, and nothing to log above debug.
    const onClose = (): void => finish(new ThemisError('INVALID_BODY', 'the client closed the stream before the body ended'));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

/** Parses bytes as JSON; INVALID_JSON for bytes that are not UTF-8 JSON text. */
export function parseJson(bytes: Buffer): unknown {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new ThemisError('INVALID_JSON', 'request body is not valid UTF-8; send JSON text in UTF-8');
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    const detail = (err as Error).message.slice(0, 120);
    throw new ThemisError('INVALID_JSON', `request body is not valid JSON (${detail})`);
  }
}

/** Parses bytes that must hold a JSON object; `code` names the error for a non-object. */
export function parseJsonObject(bytes: Buffer, code: 'INVALID_BODY' | 'INVALID_QUERY' | 'INVALID_AQL'): Record<string, unknown> {
  const value = parseJson(bytes);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ThemisError(code, 'request body must be a JSON object');
  }
  return value as Record<string, unknown>;
}

/** Reads a body that must be a JSON object; `code` names the error for a non-object. */
export async function readJsonObject(req: Req, limit: number, code: 'INVALID_BODY' | 'INVALID_QUERY'): Promise<Record<string, unknown>> {
  return parseJsonObject(await readBody(req, limit), code);
}
