// Reads a stream to its end into one buffer, with 'data' and 'end' events rather than async
// iteration. An HTTP/2 stream whose answer arrived whole (END_STREAM) before anyone read it is
// already `closed`, its bytes still buffered. Since Node 24, end-of-stream — what `for await`,
// `stream.finished` and `pipeline` rely on — takes such a stream for one closed early and throws
// ERR_STREAM_PREMATURE_CLOSE, losing the answer; Node 20 read it. Events deliver it on both.
import type { Readable } from 'node:stream';

export class StreamReadError extends Error {
  constructor(
    message: string,
    readonly code: 'ANSWER_TOO_LARGE' | 'ERR_STREAM_PREMATURE_CLOSE',
  ) {
    super(message);
  }
}

/** The stream's bytes to its end; rejects on an error, on a close before the end, or past `limit` bytes (destroying it). */
export function readWhole(stream: Readable, limit = Infinity): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    if (stream.readableEnded) return resolve(Buffer.alloc(0));
    // A destroyed stream emits nothing more: it was cut (a reset), whatever it had buffered.
    if (stream.destroyed) return reject(new StreamReadError('the stream was destroyed before its end was read', 'ERR_STREAM_PREMATURE_CLOSE'));
    const chunks: Buffer[] = [];
    let size = 0;
    const settle = (err?: Error) => {
      stream.off('data', onData).off('end', onEnd).off('error', settle).off('close', onClose);
      if (err) reject(err);
      else resolve(Buffer.concat(chunks, size));
    };
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        stream.destroy();
        return settle(new StreamReadError(`answer larger than ${limit} bytes`, 'ANSWER_TOO_LARGE'));
      }
      chunks.push(c);
    };
    const onEnd = () => settle();
    // 'close' without 'end' from here on: cut while we read.
    const onClose = () => settle(new StreamReadError('the stream closed before its end', 'ERR_STREAM_PREMATURE_CLOSE'));
    stream.on('data', onData).once('end', onEnd).once('error', settle).once('close', onClose);
  });
}
