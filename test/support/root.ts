// The repository's root: the nearest folder above this file that holds a package.json. The tests
// run compiled (dist/test/, what `npm test` runs) or as TypeScript (test/, e.g. `npx tap
// test/unit/x.test.ts`); both find the same root, so paths to programs and docs hold in both.
import { existsSync } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  const here = fileURLToPath(import.meta.url);
  for (let dir = dirname(here); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir + sep;
    if (dirname(dir) === dir) throw new Error(`no package.json in any folder above ${here}`);
  }
}

/** With a trailing separator. */
export const ROOT = findRoot();
