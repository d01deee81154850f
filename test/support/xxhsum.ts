// Independent XXH64 reference: Debian's xxhsum (`printf %s TEXT | xxhsum -H1`).
import { execFileSync } from 'node:child_process';

export function xxhsum64(text: string): bigint {
  const out = execFileSync('xxhsum', ['-H1', '-'], { input: Buffer.from(text, 'utf8') }).toString();
  const m = /^([0-9a-f]{16})\b/.exec(out.trim());
  if (!m) throw new Error(`unexpected xxhsum output: ${out}`);
  return BigInt('0x' + m[1]);
}
