// W3C Trace Context (https://www.w3.org/TR/trace-context/): parsing an incoming traceparent and
// tracestate, and formatting the ones the sidecar sends on. A malformed traceparent restarts the
// trace (a new trace id; the tracestate goes with it), as the recommendation says; it is never a refusal.

/** A valid incoming parent: the caller's trace id, its span id and flags, and its vendors' state. */
export interface TraceParent {
  readonly traceId: string;
  readonly spanId: string;
  /** Bit 0: sampled. */
  readonly flags: number;
  /** The tracestate list as received, when it was well-formed; dropped otherwise. */
  readonly state: string | undefined;
}

export const TRACEPARENT = 'traceparent';
export const TRACESTATE = 'tracestate';

const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);
const PARENT_RE = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
// A list member: key=value (§3.3.1); simple keys and multi-tenant keys (tenant@system).
const MEMBER_RE = /^(?:[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13}|[a-z][_0-9a-z\-*/]{0,255})=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;
/** The recommendation lets a participant drop a tracestate longer than this rather than truncate it. */
export const MAX_TRACESTATE = 512;
const MAX_MEMBERS = 32;

/** The incoming traceparent, or undefined when absent or malformed (a new trace starts). */
export function parseTraceParent(value: string | string[] | undefined, state: string | string[] | undefined): TraceParent | undefined {
  // Two traceparent headers cannot both be the parent: malformed.
  if (typeof value !== 'string') return undefined;
  const m = PARENT_RE.exec(value);
  if (!m) return undefined;
  const [, version, traceId, spanId, flags, rest] = m as unknown as [string, string, string, string, string, string | undefined];
  // Version ff is forbidden; version 00 has exactly four fields. A later version may append
  // fields, which a version-00 reader ignores (§3.2.4).
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (traceId === ZERO_TRACE || spanId === ZERO_SPAN) return undefined;
  return { traceId, spanId, flags: parseInt(flags, 16), state: parseTraceState(state) };
}

/** The tracestate to carry on, or undefined when absent, malformed or too long (dropped whole). */
export function parseTraceState(value: string | string[] | undefined): string | undefined {
  // Several tracestate headers combine into one list (§3.3.1.1).
  const joined = Array.isArray(value) ? value.join(',') : value;
  if (joined === undefined || joined.length > MAX_TRACESTATE) return undefined;
  const members = joined.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (members.length === 0 || members.length > MAX_MEMBERS) return undefined;
  const keys = new Set<string>();
  for (const m of members) {
    if (!MEMBER_RE.test(m)) return undefined;
    const key = m.slice(0, m.indexOf('='));
    if (keys.has(key)) return undefined;
    keys.add(key);
  }
  return members.join(',');
}

/** The version-00 traceparent naming `spanId` as the parent of whatever receives it. */
export function formatTraceParent(traceId: string, spanId: string, sampled: boolean): string {
  return `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`;
}
