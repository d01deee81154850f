import t from 'tap';
import { formatTraceParent, parseTraceParent, parseTraceState } from '../../../../proxy/observability/trace-context.js';

// Examples from the W3C Trace Context recommendation (§3.2.2.x, §3.3).
const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

t.test('a valid traceparent is taken, with its flags and tracestate', async (t) => {
  t.same(parseTraceParent(`00-${TRACE}-${SPAN}-01`, 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE'), { traceId: TRACE, spanId: SPAN, flags: 1, state: 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE' });
  t.same(parseTraceParent(`00-${TRACE}-${SPAN}-00`, undefined), { traceId: TRACE, spanId: SPAN, flags: 0, state: undefined });
  // A later version may add fields; a version-00 reader takes the first four (§3.2.4).
  t.same(parseTraceParent(`cc-${TRACE}-${SPAN}-01-what-the-future-holds`, undefined)?.traceId, TRACE);
});

t.test('a malformed traceparent restarts the trace (undefined), whatever is wrong with it', async (t) => {
  const bad: [string, unknown][] = [
    ['upper-case hex', `00-${TRACE.toUpperCase()}-${SPAN}-01`],
    ['all-zero trace id', `00-${'0'.repeat(32)}-${SPAN}-01`],
    ['all-zero parent id', `00-${TRACE}-${'0'.repeat(16)}-01`],
    ['version ff', `ff-${TRACE}-${SPAN}-01`],
    ['version 00 with a fifth field', `00-${TRACE}-${SPAN}-01-extra`],
    ['short trace id', `00-${TRACE.slice(1)}-${SPAN}-01`],
    ['short flags', `00-${TRACE}-${SPAN}-1`],
    ['not hex', `00-${TRACE.slice(0, 31)}g-${SPAN}-01`],
    ['empty', ''],
    ['two traceparent headers', [`00-${TRACE}-${SPAN}-01`, `00-${TRACE}-${SPAN}-01`]],
  ];
  for (const [why, value] of bad) t.equal(parseTraceParent(value as string, 'rojo=1'), undefined, why);
});

t.test('a tracestate is carried only when well-formed and bounded', async (t) => {
  t.equal(parseTraceState(['rojo=1', 'congo=2']), 'rojo=1,congo=2', 'several headers are one list');
  t.equal(parseTraceState('rojo=1 , ,congo=2'), 'rojo=1,congo=2', 'empty members and spaces around them are dropped');
  t.equal(parseTraceState('tenant@vendor=x'), 'tenant@vendor=x', 'multi-tenant keys');
  t.equal(parseTraceState('Rojo=1'), undefined, 'upper-case key');
  t.equal(parseTraceState('rojo'), undefined, 'no value');
  t.equal(parseTraceState('rojo=1,rojo=2'), undefined, 'a key twice');
  t.equal(parseTraceState('rojo=a=b'), undefined, 'an = in the value');
  t.equal(parseTraceState(Array.from({ length: 33 }, (_, i) => `k${i}=v`).join(',')), undefined, 'more than 32 members');
  t.equal(parseTraceState(`k=${'v'.repeat(520)}`), undefined, 'longer than 512 characters');
  t.equal(parseTraceState(''), undefined);
});

t.test('the traceparent sent on is version 00 with the sampled flag', async (t) => {
  t.equal(formatTraceParent(TRACE, SPAN, true), `00-${TRACE}-${SPAN}-01`);
  t.equal(formatTraceParent(TRACE, SPAN, false), `00-${TRACE}-${SPAN}-00`);
});
