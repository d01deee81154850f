// Allocation-free search over sorted unsigned 64-bit tokens. Tokens are kept as two
// Uint32Arrays (high and low words); a bigint probe is split through a shared scratch
// buffer, so a lookup allocates nothing beyond the caller's bigint.
import { endianness } from 'node:os';

const scratch64 = new BigUint64Array(1);
const scratch32 = new Uint32Array(scratch64.buffer);
const LO = endianness() === 'LE' ? 0 : 1;
const HI = 1 - LO;

export class SortedTokens {
  private readonly hi: Uint32Array;
  private readonly lo: Uint32Array;
  readonly length: number;

  /** `tokens` must be sorted ascending. */
  constructor(tokens: readonly bigint[]) {
    this.length = tokens.length;
    this.hi = new Uint32Array(tokens.length);
    this.lo = new Uint32Array(tokens.length);
    for (let i = 0; i < tokens.length; i++) {
      scratch64[0] = tokens[i]!;
      this.hi[i] = scratch32[HI]!;
      this.lo[i] = scratch32[LO]!;
      if (i > 0 && tokens[i]! < tokens[i - 1]!) throw new Error('SortedTokens: tokens are not sorted');
    }
  }

  /** Index of the first token ≥ `token`, or `length` when every token is smaller. */
  lowerBound(token: bigint): number {
    scratch64[0] = token;
    const th = scratch32[HI]!;
    const tl = scratch32[LO]!;
    const hi = this.hi;
    const lo = this.lo;
    let a = 0;
    let b = this.length;
    while (a < b) {
      const m = (a + b) >>> 1;
      const mh = hi[m]!;
      if (mh < th || (mh === th && lo[m]! < tl)) a = m + 1;
      else b = m;
    }
    return a;
  }
}
