// Writes docs/openapi.json, the OpenAPI 3.1 description of the app API, from the route and error
// tables (src/api/openapi.ts). `npm run openapi`; test/unit/api/openapi.test.ts fails while the
// committed file differs from what this writes.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildOpenApi } from '../src/api/openapi.js';

/** The package root: the nearest folder above with a package.json (from scripts/ or dist/scripts/). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir + '/';
}
const root = packageRoot();

export function openApiText(): string {
  const { version } = JSON.parse(readFileSync(root + 'package.json', 'utf8')) as { version: string };
  return JSON.stringify(buildOpenApi(version), null, 2) + '\n';
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(root + 'docs/openapi.json', openApiText());
  console.log('wrote docs/openapi.json');
}
