// Query-string parameters of the GET routes (/changefeed, /entities scan): strict decimal
// integers, no repeats, no unknown names — each failure is INVALID_PARAMETER naming the parameter.
import { ThemisError } from '../src/errors.js';

export function badParam(message: string): ThemisError {
  return new ThemisError('INVALID_PARAMETER', message);
}

/** Refuses names outside `known`, so a misspelt parameter is not silently ignored. */
export function rejectUnknownParams(q: URLSearchParams, known: readonly string[]): void {
  for (const name of q.keys()) {
    if (!known.includes(name)) throw badParam(`unknown parameter "${name.slice(0, 64)}"; known parameters are ${known.join(', ')}`);
  }
}

/** The value of a parameter given at most once; undefined when absent. */
export function singleParam(q: URLSearchParams, name: string): string | undefined {
  const all = q.getAll(name);
  if (all.length > 1) throw badParam(`${name} is given ${all.length} times; give it once`);
  return all[0];
}

/** A decimal integer parameter (digits only, no sign or exponent) in [min, max], or `dflt` when absent. */
export function intParam(q: URLSearchParams, name: string, dflt: number, min: number, max: number): number {
  const text = singleParam(q, name);
  if (text === undefined) return dflt;
  const n = /^\d{1,16}$/.test(text) ? Number(text) : NaN;
  if (!(n >= min && n <= max)) {
    throw badParam(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(text.slice(0, 32))}`);
  }
  return n;
}
