// Whether a file can be written as the sidecar writes its caches and state (a temp file beside
// it, renamed over it): a probe at start-up and in `themis-admin check`, so a path the service
// cannot write shows at once, not after a restart during an etcd outage.
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The error code (EACCES, ENOENT, …) when `file` cannot be written, else undefined. */
export function writeProblem(file: string): string | undefined {
  const probe = `${file}.probe-${process.pid}`;
  try {
    writeFileSync(probe, '', { mode: 0o600 });
    rmSync(probe, { force: true });
    return undefined;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? (e as Error).message;
  }
}

/** For a folder the service creates when missing: the folder if it exists, else its parent. */
export function folderWriteProblem(dir: string): string | undefined {
  return writeProblem(join(existsSync(dir) ? dir : dirname(dir), '.themis'));
}
