import t from 'tap';
import { RetryBudget, backoffMs, retryPolicy } from '../../../src/client/retry.js';

t.test('the budget allows at most reserve + ratio × requests retries', async (t) => {
  for (const [ratio, reserve] of [[0.2, 10], [0.1, 3], [0.5, 0], [0, 2]] as const) {
    const b = new RetryBudget({ ratio, reserve });
    let granted = 0;
    // Every call fails and asks for up to three retries.
    for (let i = 0; i < 200; i++) {
      b.onRequest();
      for (let r = 0; r < 3 && b.tryRetry(); r++) granted++;
    }
    t.ok(granted <= reserve + ratio * 200, `ratio ${ratio}, reserve ${reserve}: ${granted} retries`);
    t.ok(granted >= Math.floor(reserve + ratio * 200) - 1, `… and the budget is usable: ${granted}`);
    t.equal(b.stats.retries, granted);
  }
});

t.test('a quiet spell cannot bank retries past the reserve', async (t) => {
  const b = new RetryBudget({ ratio: 0.2, reserve: 4 });
  for (let i = 0; i < 1000; i++) b.onRequest();
  let granted = 0;
  while (b.tryRetry()) granted++;
  t.equal(granted, 4);
  t.equal(b.stats.refused, 1);
});

t.test('backoff: full jitter under an exponential ceiling, capped', async (t) => {
  const p = retryPolicy({ baseDelayMs: 50, maxDelayMs: 1000 });
  t.same([1, 2, 3, 4, 5, 6, 10].map((n) => backoffMs(p, n, () => 0.999999)), [49, 99, 199, 399, 799, 999, 999]);
  t.equal(backoffMs(p, 3, () => 0), 0);
});

t.test('bad settings are refused, naming the field', async (t) => {
  t.throws(() => retryPolicy({ maxAttempts: 0 }), /retry.maxAttempts/);
  t.throws(() => retryPolicy({ baseDelayMs: 10, maxDelayMs: 5 }), /retry.baseDelayMs/);
  t.throws(() => new RetryBudget({ ratio: 2 }), /ratio/);
  t.throws(() => new RetryBudget({ reserve: -1 }), /reserve/);
});
