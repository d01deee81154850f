// Verifies an audit file's hash chain: every line must be JSON whose `prev` is the SHA-256
// of the line before it (the first line: the genesis hash, or `expectPrev` for a file that
// continues a rotated one). Reports the first line that breaks the chain and why.
import { readFileSync } from 'node:fs';
import { GENESIS, lineHash } from './audit-log.js';

export type ChainResult = { ok: true; lines: number; lastHash: string } | { ok: false; line: number; reason: string };

export function verifyChain(text: string, expectPrev: string = GENESIS): ChainResult {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  let prev = expectPrev;
  for (const [i, line] of lines.entries()) {
    let entry: { prev?: unknown; event?: unknown };
    try {
      entry = JSON.parse(line);
    } catch {
      return { ok: false, line: i + 1, reason: 'not a JSON line (edited or truncated)' };
    }
    if (typeof entry.prev !== 'string' || typeof entry.event !== 'string') return { ok: false, line: i + 1, reason: 'missing "prev" or "event"' };
    if (entry.prev !== prev) {
      return {
        ok: false,
        line: i + 1,
        reason:
          i === 0
            ? 'does not continue from the expected hash (the file does not start the chain)'
            : `its "prev" is not the hash of line ${i}: line ${i} was edited, or lines were removed or reordered between them`,
      };
    }
    prev = lineHash(line);
  }
  return { ok: true, lines: lines.length, lastHash: prev };
}

export function verifyChainFile(file: string, expectPrev?: string): ChainResult {
  return verifyChain(readFileSync(file, 'utf8'), expectPrev);
}
