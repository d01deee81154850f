// The console's static files (proxy/console/static/: the page, its script, style and icon), read
// once at start-up: a missing file is a start-up error naming admin.console, not a 500 later.
import { readFileSync } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../../src/config/validate.js';

const here = dirname(fileURLToPath(import.meta.url));
/** proxy/console/static in the repository, from the sources or from dist/proxy/console. */
export const STATIC_DIR = join(here, here.endsWith(`${sep}dist${sep}proxy${sep}console`) ? '../../../proxy/console/static' : 'static');

export interface ConsoleAsset {
  readonly type: string;
  readonly body: Buffer;
}

const FILES: Record<string, string> = {
  'console.html': 'text/html; charset=utf-8',
  'console.js': 'text/javascript; charset=utf-8',
  'console.css': 'text/css; charset=utf-8',
  'favicon.svg': 'image/svg+xml',
};

export function loadConsoleAssets(dir = STATIC_DIR): ReadonlyMap<string, ConsoleAsset> {
  return new Map(Object.entries(FILES).map(([name, type]) => {
    try {
      return [name, Object.freeze({ type, body: readFileSync(join(dir, name)) })];
    } catch (e) {
      throw new ConfigError('admin.console', `cannot read the console's ${join(dir, name)} (${(e as NodeJS.ErrnoException).code ?? 'error'}); install the whole release (proxy/console/static beside dist/), or set admin.console to false`);
    }
  }));
}
