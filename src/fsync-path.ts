// fsync by path: a file's contents, or a directory's entries (files created, renamed or removed
// in it). A name survives a machine crash only once its directory is fsynced too.
import { closeSync, fsyncSync, openSync } from 'node:fs';

export function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
