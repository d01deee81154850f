// Hand-written validators for program configs. Every failure names the field path and
// says what to write instead; programs print it and exit at start-up.

export class ConfigError extends Error {
  constructor(
    readonly field: string,
    readonly problem: string,
  ) {
    super(`config: ${field}: ${problem}`);
    this.name = 'ConfigError';
  }
}

export type Raw = Record<string, unknown>;

export function asObject(v: unknown, field: string): Raw {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw new ConfigError(field, `expected an object, got ${describe(v)}`);
  }
  return v as Raw;
}

/** Rejects keys the program does not know, so typos do not pass silently. */
export function rejectUnknown(obj: Raw, known: readonly string[], prefix: string): void {
  for (const k of Object.keys(obj)) {
    if (!known.includes(k)) {
      throw new ConfigError(join(prefix, k), `unknown setting; known settings are: ${known.join(', ')}`);
    }
  }
}

export function str(obj: Raw, key: string, prefix: string, dflt?: string): string {
  const v = obj[key];
  if (v === undefined) {
    if (dflt !== undefined) return dflt;
    throw new ConfigError(join(prefix, key), 'is required; write a non-empty string');
  }
  if (typeof v !== 'string' || v.length === 0) {
    throw new ConfigError(join(prefix, key), `expected a non-empty string, got ${describe(v)}`);
  }
  return v;
}

export function int(obj: Raw, key: string, prefix: string, dflt: number, min: number, max: number): number {
  let v = obj[key];
  if (v === undefined) return dflt;
  if (typeof v === 'string' && /^-?\d+$/.test(v)) v = Number(v);
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new ConfigError(join(prefix, key), `expected an integer from ${min} to ${max}, got ${describe(obj[key])}`);
  }
  return v;
}

export function bool(obj: Raw, key: string, prefix: string, dflt: boolean): boolean {
  const v = obj[key];
  if (v === undefined) return dflt;
  if (v === true || v === 'true') return true;
  if (v === false || v === 'false') return false;
  throw new ConfigError(join(prefix, key), `expected true or false, got ${describe(v)}`);
}

export function join(prefix: string, key: string): string {
  return prefix ? `${prefix}.${key}` : key;
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v);
  return `${typeof v} ${JSON.stringify(v)}`;
}

/** True for 127.0.0.0/8, ::1 and "localhost"; the only binds allowed without an explicit opt-in. */
export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost' || host === '::1' || host === '[::1]') return true;
  const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  return m !== null && m.slice(1).every((o) => Number(o) <= 255);
}
