// `app.socket`: the app API on a Unix-domain socket as well as (or instead of) loopback TCP.
// On a shared host, loopback TCP is open to every local user and daemon; a socket file is
// open only to those its owner, group and mode let in (e.g. a `themis-apps` group).
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { ConfigError, asObject, join, rejectUnknown, str, type Raw } from './validate.js';

export interface AppSocket {
  /** Absolute path of the socket file. */
  readonly path: string;
  /** Permission bits of the socket file, e.g. 0o660. */
  readonly mode: number;
  /** The user and group to give the file, by name or number (undefined: the sidecar's own); names are looked up at start. */
  readonly owner: string | number | undefined;
  readonly group: string | number | undefined;
}

/** The id of `name` in an /etc/passwd- or /etc/group-style file (name:x:id:…), or undefined. */
function idIn(file: string, name: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const [n, , id] = line.split(':');
    if (n === name && id !== undefined && /^\d+$/.test(id)) return Number(id);
  }
  return undefined;
}

/** A user or group as written: a name (looked up at start) or a number. */
function account(o: Raw, key: string, prefix: string, what: string): string | number | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return v;
  if (typeof v !== 'string' || !/^[a-z_][a-z0-9_-]{0,31}\$?$/.test(v)) throw new ConfigError(join(prefix, key), `expected a ${what} name or number, got ${JSON.stringify(v)}`);
  return v;
}

/**
 * The numeric ids of the socket's owner and group, looked up in /etc/passwd and /etc/group
 * (at start, so a config can be checked on another host); an unknown name is a ConfigError.
 */
export function socketIds(s: AppSocket, prefix = 'app.socket'): { uid?: number; gid?: number } {
  const lookup = (v: string | number | undefined, key: string, file: string, what: string, hint: string): number | undefined => {
    if (v === undefined || typeof v === 'number') return v;
    const id = idIn(file, v);
    if (id === undefined) throw new ConfigError(join(prefix, key), `no ${what} "${v}" on this host (${file}); ${hint}`);
    return id;
  };
  const uid = lookup(s.owner, 'owner', '/etc/passwd', 'user', 'create it or name another');
  const gid = lookup(s.group, 'group', '/etc/group', 'group', 'create it (groupadd --system themis-apps) and add the app users to it, or name another');
  return { ...(uid !== undefined ? { uid } : {}), ...(gid !== undefined ? { gid } : {}) };
}

export function appSocket(app: Raw, baseDir: string, prefix = 'app'): AppSocket | undefined {
  if (app.socket === undefined) return undefined;
  const o = asObject(app.socket, join(prefix, 'socket'));
  const at = join(prefix, 'socket');
  rejectUnknown(o, ['path', 'mode', 'owner', 'group'], at);
  const path = str(o, 'path', at);
  if (!path) throw new ConfigError(join(at, 'path'), 'write the socket file\'s path, e.g. /run/themis/app.sock');
  const modeText = str(o, 'mode', at, '0660');
  if (!/^0?[0-7]{3}$/.test(modeText)) throw new ConfigError(join(at, 'mode'), `expected octal permission bits such as "0660", got ${JSON.stringify(modeText)}`);
  const mode = parseInt(modeText, 8);
  if (mode & 0o007) throw new ConfigError(join(at, 'mode'), `${modeText} lets every local user in, which is what the socket is for keeping out; write e.g. "0660" and name a group`);
  return Object.freeze({
    path: isAbsolute(path) ? path : resolve(baseDir, path),
    mode,
    owner: account(o, 'owner', at, 'user'),
    group: account(o, 'group', at, 'group'),
  });
}
