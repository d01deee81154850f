import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../support/root.js';
import { ERRORS, ThemisError, errorBody } from '../../src/errors.js';

t.test('every error code has a 4xx/5xx status and is documented in docs/errors.md', async (t) => {
  const doc = readFileSync(join(ROOT, 'docs/errors.md'), 'utf8');
  for (const [code, def] of Object.entries(ERRORS)) {
    t.ok(def.status >= 400 && def.status < 600, `${code} has an error status`);
    t.match(doc, new RegExp('`' + code + '`'), `${code} is documented`);
  }
});

t.test('errorBody gives the ThemisDB shape plus the stable code', async (t) => {
  t.same(errorBody(new ThemisError('INVALID_KEY', 'bad key')), {
    error: true,
    message: 'bad key',
    status_code: 400,
    code: 'INVALID_KEY',
  });
  t.same(errorBody(new Error('secret detail')), {
    error: true,
    message: 'internal error',
    status_code: 500,
    code: 'INTERNAL',
  });
});
