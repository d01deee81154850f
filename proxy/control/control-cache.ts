// The disk caches of what the sidecar took from etcd (the signed topology, the CRLs): written
// atomically (temp file, then rename), read back as a hint that is verified again like any
// value from etcd. A cache that cannot be written or read is logged and otherwise ignored.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { ConfigError } from '../../src/config/validate.js';
import { writeProblem } from '../../src/config/writable.js';
import type { Logger } from '../../src/log.js';

/**
 * Start-up check that `file` can be cached as writeCache does (a temp file beside it, renamed
 * over it); a ConfigError naming `field` otherwise (the sidecar exits 78).
 */
export function probeCacheFile(file: string, field: string): void {
  const problem = writeProblem(file);
  if (problem) {
    throw new ConfigError(field, `cannot write the cache ${file} (${problem}); write a path in the sidecar's state directory, e.g. /var/lib/themis/sidecar/${field === 'etcd.crlCache' ? 'crl-cache.json' : 'topology-cache.json'}`);
  }
}

/** The cached JSON value, or undefined when there is none or it does not parse. */
export function readCache(file: string, what: string, log: Logger): unknown {
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    log.warn({ file, err: (e as Error).message }, `${what} cache unreadable; ignoring it`);
    return undefined;
  }
}

export function writeCache(file: string, value: unknown, what: string, log: Logger): void {
  try {
    // Per process: a sidecar's workers follow etcd too and may write the same cache at once.
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(value), { mode: 0o600 });
    renameSync(tmp, file);
  } catch (e) {
    log.warn({ err: (e as Error).message, file }, `cannot cache the ${what} on disk`);
  }
}
