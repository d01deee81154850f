// A directory's entries (files created, renamed or removed in it) survive a machine crash only
// once the directory itself is fsynced: fsyncing a file makes its contents durable, not its name.
import { closeSync, fsyncSync, openSync } from 'node:fs';

export function syncDir(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
