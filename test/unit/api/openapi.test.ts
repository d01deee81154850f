// The OpenAPI document: current (docs/openapi.json is what the generator writes), valid (a
// standard validator, Redocly CLI's lint with its recommended rules), and in step with the SDK:
// every route in the spec has its route in the table and an SDK method, every error code of the
// spec is one the client's error class knows.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../../support/cli.js';
import { openApiText } from '../../../scripts/openapi.js';
import { ROUTES } from '../../../src/api/routes.js';
import { ERRORS } from '../../../src/errors.js';
import { SDK_METHODS } from '../../../src/client/routes.js';
import { ThemisClient } from '../../../src/client/client.js';
import { ThemisClientError, isKnownCode } from '../../../src/client/errors.js';

const committed = readFileSync(join(ROOT, 'docs/openapi.json'), 'utf8');
const spec = JSON.parse(committed) as { paths: Record<string, Record<string, { operationId: string; responses: Record<string, unknown> }>>; components: { schemas: { Error: { properties: { code: { enum: string[] } } } } } };

/** Redocly CLI lint (no telemetry, no update check): its exit status and output. */
function lint(file: string): { status: number | null; out: string } {
  const r = spawnSync(join(ROOT, 'node_modules/.bin/redocly'), ['lint', file], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' },
  });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

t.test('docs/openapi.json is what the generator writes (npm run openapi)', async (t) => {
  t.equal(committed, openApiText());
});

t.test('Redocly CLI lint passes it, and fails a broken copy', async (t) => {
  const ok = lint('docs/openapi.json');
  t.equal(ok.status, 0, ok.out.slice(-2000));
  const dir = mkdtempSync(join(tmpdir(), 'themis-openapi-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const broken = JSON.parse(committed);
  delete broken.paths['/health'].get.responses['200'].description;
  broken.paths['/query'].post.requestBody.content['application/json'].schema.properties.table = { type: 'text' };
  writeFileSync(join(dir, 'broken.json'), JSON.stringify(broken));
  const bad = lint(join(dir, 'broken.json'));
  t.not(bad.status, 0, 'the validator is not a rubber stamp');
  t.match(bad.out, /description/);
});

t.test('every route in the spec is a route of the table with an SDK method, and the reverse', async (t) => {
  const seen = new Set<string>();
  for (const [path, methods] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const route = ROUTES.find((r) => r.id === op.operationId);
      t.ok(route, `${method} ${path}: operationId ${op.operationId} is a route id`);
      t.same([route?.method, route?.path], [method.toUpperCase(), path], `${op.operationId}: same method and path`);
      const name = SDK_METHODS[op.operationId as keyof typeof SDK_METHODS];
      t.type((ThemisClient.prototype as unknown as Record<string, unknown>)[name], 'function', `${op.operationId} → ThemisClient.${name}()`);
      seen.add(op.operationId);
    }
  }
  t.same([...seen].sort(), ROUTES.map((r) => r.id).sort(), 'every route of the table is in the spec');
});

t.test('every error code of the spec is one ThemisClientError knows, with the table\'s status', async (t) => {
  const codes = spec.components.schemas.Error.properties.code.enum;
  t.same([...codes].sort(), Object.keys(ERRORS).sort(), 'the spec lists exactly the table\'s codes');
  for (const code of codes) {
    t.ok(isKnownCode(code), code);
    const e = ThemisClientError.fromAnswer(ERRORS[code as keyof typeof ERRORS].status, JSON.stringify({ error: true, code, message: 'm', status_code: 0 }));
    t.equal(e.code, code);
  }
  for (const [path, methods] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      for (const status of Object.keys(op.responses).filter((s) => s >= '400')) {
        t.ok(Object.values(ERRORS).some((e) => String(e.status) === status), `${method} ${path} ${status} is a status of the table`);
      }
    }
  }
});
