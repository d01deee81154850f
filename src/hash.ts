// XXH64 with seed 0, as ThemisDB's C++ router computes it. The wasm module is instantiated
// once at import (top-level await), so every call afterwards is synchronous.
import xxhash from 'xxhash-wasm';

const hasher = await xxhash();

/** XXH64(utf8(text), seed 0) as an unsigned 64-bit bigint. */
export function xxh64(text: string): bigint {
  return hasher.h64(text, 0n);
}

export const TOKEN_MAX = 0xffff_ffff_ffff_ffffn;

/** 16 lower-case hex digits, zero-padded: how tokens appear in JSON, logs and the CLI. */
export function tokenHex(token: bigint): string {
  return '0x' + token.toString(16).padStart(16, '0');
}

/** Parses a token written as 0x-hex or decimal; returns undefined unless it fits in 64 bits. */
export function parseToken(text: string): bigint | undefined {
  const t = text.trim();
  if (!/^(0x[0-9a-fA-F]{1,16}|\d{1,20})$/.test(t)) return undefined;
  const v = BigInt(t);
  return v <= TOKEN_MAX ? v : undefined;
}
