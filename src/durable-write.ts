// Replacing a file so that a machine crash leaves the old content or the new, never a mix or
// nothing: a temporary file beside it, fsynced, renamed over it, then the folder fsynced (the
// rename is durable only then). The replay state and a renewed certificate and key use it.
import { open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fsyncPath } from './fsync-path.js';

export async function writeFileDurably(file: string, text: string, mode = 0o600): Promise<void> {
  const tmp = `${file}.tmp`;
  const fh = await open(tmp, 'w', mode);
  try {
    // open() applies the mode only to a file it creates: a temporary file left by a crash keeps
    // its own, perhaps wider, mode, which rename() would then pass on to a key.
    await fh.chmod(mode);
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
  fsyncPath(dirname(file));
}
