// One error class for every code, from the server's table (src/errors.ts): each server code comes
// back from an answer with its status and retryability; the client-only codes do not clash.
import t from 'tap';
import { ERRORS, errorBody, ThemisError, type ErrorCode } from '../../../src/errors.js';
import { CLIENT_ERRORS, ThemisClientError, isKnownCode } from '../../../src/client/errors.js';

t.test('every server code becomes a ThemisClientError with the table\'s status and retryability', async (t) => {
  for (const code of Object.keys(ERRORS) as ErrorCode[]) {
    const body = errorBody(new ThemisError(code, `m-${code}`, code === 'SHARDS_UNAVAILABLE' ? { missing_shards: ['shard-002'] } : { extra: 1 }));
    const e = ThemisClientError.fromAnswer(ERRORS[code].status, JSON.stringify(body));
    t.equal(e.code, code);
    t.equal(e.status, ERRORS[code].status, `${code} status`);
    t.equal(e.retryable, ERRORS[code].retryable, `${code} retryable`);
    t.equal(e.message, `m-${code}`);
    if (code === 'SHARDS_UNAVAILABLE') t.same(e.missingShards, ['shard-002']);
    else t.same(e.details, { extra: 1 });
  }
});

t.test('client-only codes are distinct from the server\'s', async (t) => {
  for (const code of Object.keys(CLIENT_ERRORS)) t.notOk(Object.hasOwn(ERRORS, code), `${code} is not a server code`);
  t.ok(isKnownCode('TIMEOUT') && isKnownCode('NOT_OWNER') && !isKnownCode('NOPE'));
});

t.test('answers that are not our error shape are BAD_RESPONSE, never retried', async (t) => {
  for (const [status, text] of [[408, 'Request Timeout'], [503, '{"code":"SOMETHING_NEW","message":"x"}'], [500, '']] as const) {
    const e = ThemisClientError.fromAnswer(status, text);
    t.equal(e.code, 'BAD_RESPONSE');
    t.equal(e.status, status);
    t.equal(e.retryable, false);
  }
});
