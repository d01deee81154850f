// Streaming digests of backup files: SHA-256 and size of every file, XXH64 (seed 0, as
// `xxhsum -H1` prints it) of the data file, all in one read.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import xxhash from 'xxhash-wasm';

const hasher = await xxhash();

export interface FileDigest {
  bytes: number;
  sha256: string;
}

/** Feeds bytes to SHA-256 and XXH64 at once. */
export class DigestSink {
  private readonly sha = createHash('sha256');
  private readonly xxh = hasher.create64(0n);
  bytes = 0;

  update(chunk: Buffer): void {
    this.sha.update(chunk);
    this.xxh.update(chunk);
    this.bytes += chunk.length;
  }

  digest(): FileDigest & { xxh64: string } {
    return { bytes: this.bytes, sha256: this.sha.digest('hex'), xxh64: this.xxh.digest().toString(16).padStart(16, '0') };
  }
}

/** Both digests of a file on disk. */
export async function digestFile(path: string): Promise<FileDigest & { xxh64: string }> {
  const sink = new DigestSink();
  for await (const chunk of createReadStream(path)) sink.update(chunk as Buffer);
  return sink.digest();
}
