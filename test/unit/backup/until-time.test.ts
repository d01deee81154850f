// restore --until: which texts are a sequence number, which an RFC 3339 time (and which instant),
// and the refusals of malformed and future times. Expected instants are written out by hand.
import t from 'tap';
import { parseRfc3339, parseUntil } from '../../../src/backup/until-time.js';

const NOW = Date.UTC(2026, 11, 6, 14, 0, 0); // 2026-12-06T14:00:00Z

t.test('digits are a sequence number', async (t) => {
  t.same(parseUntil('0', NOW), { seq: 0 });
  t.same(parseUntil('1873', NOW), { seq: 1873 });
});

t.test('RFC 3339 times name one instant, whatever their offset', async (t) => {
  t.equal(parseRfc3339('2026-12-06T13:02:00Z'), 1796562120000);
  t.equal(parseRfc3339('2026-12-06T14:02:00+01:00'), 1796562120000, 'an offset east of UTC');
  t.equal(parseRfc3339('2026-12-06T08:32:00-04:30'), 1796562120000, 'an offset west of UTC, with minutes');
  t.equal(parseRfc3339('2026-12-06 13:02:00z'), 1796562120000, 'a space and a lower-case z, as RFC 3339 allows');
  t.equal(parseRfc3339('2026-12-06T13:02:00.25Z'), 1796562120250, 'fractions are milliseconds');
  t.equal(parseRfc3339('2026-12-06T13:02:00.123999Z'), 1796562120123, 'digits finer than a millisecond are cut off (commit times are whole ms)');
  t.equal(parseRfc3339('2024-02-29T00:00:00Z'), 1709164800000, 'a leap day');
  t.same(parseUntil('2026-12-06T13:02:00Z', NOW), { timeMs: 1796562120000, text: '2026-12-06T13:02:00Z' });
});

t.test('malformed times are refused with RESTORE_UNTIL_MALFORMED', async (t) => {
  for (const bad of ['', 'yesterday', '2026-12-06T13:02:00', '2026-12-06', '2026-12-06T13:02Z', '1e3', '-5', '12.5', '2026-13-01T00:00:00Z', '2026-02-29T00:00:00Z', '2026-12-06T24:00:00Z',
    '2026-12-06T13:60:00Z', '2026-12-06T13:02:60Z', '2026-12-06T13:02:00+24:00', '2026-12-06T13:02:00+0100', '99999999999999999']) {
    t.throws(() => parseUntil(bad, NOW), { name: 'BackupRefused', code: 'RESTORE_UNTIL_MALFORMED' }, JSON.stringify(bad));
  }
});

t.test('a time later than now is refused with RESTORE_UNTIL_FUTURE; now itself is not', async (t) => {
  t.throws(() => parseUntil('2026-12-06T14:00:00.001Z', NOW), { name: 'BackupRefused', code: 'RESTORE_UNTIL_FUTURE' });
  t.throws(() => parseUntil('2026-12-06T15:30:00+01:00', NOW), { name: 'BackupRefused', code: 'RESTORE_UNTIL_FUTURE' }, 'later once the offset is applied');
  t.same(parseUntil('2026-12-06T14:00:00Z', NOW), { timeMs: NOW, text: '2026-12-06T14:00:00Z' });
  t.same(parseUntil('2026-12-06T14:30:00+01:00', NOW), { timeMs: NOW - 30 * 60_000, text: '2026-12-06T14:30:00+01:00' }, 'earlier once the offset is applied');
});
