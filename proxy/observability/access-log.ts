// The access log: one JSON line per request on the app and mesh ports, through its own pino
// instance (never the diagnostic log on stderr), to stdout or a file that the host rotates
// (SIGHUP reopens it). The schema is documented in docs/observability.md; no body, signature or
// key material is ever part of a line.
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { pino, type Logger } from 'pino';
import type { AccessLogConfig } from '../../src/config/observability.js';
import { ConfigError } from '../../src/config/validate.js';

/** One line. Field names are the documented schema: change them only with the docs. */
export interface AccessEntry {
  /** Arrival, ISO 8601 with milliseconds (UTC). */
  time: string;
  /** The shard id of the sidecar that writes the line. */
  sidecar: string;
  listener: 'app' | 'mesh';
  method: string;
  /** Path with query string, as received (cut at 1024 characters). */
  path: string;
  /** 0 when no answer was sent (the client went away first). */
  status: number;
  /** The sidecar's own error code, when it answered with an error; null otherwise. */
  code: string | null;
  duration_ms: number;
  /** Time spent waiting for upstream answers (storage node, peer sidecars), summed over retries. */
  upstream_ms: number;
  /** The request body's declared length (content-length); null when it had none. */
  bytes_in: number | null;
  bytes_out: number;
  /** x-themis-shard of the answer: the shard that served it ("-": the sidecar itself). */
  shard: string | null;
  /** x-themis-topology-epoch of the answer. */
  epoch: number | null;
  /** The TLS client's identity (mesh port, and app.tls); null on plaintext. */
  peer: { kind: string; shard_id: string | null; serial: string } | null;
  retries: number;
  trace_id: string;
  span_id: string;
}

export interface AccessLog {
  /** Whether a request with this answer is written (off, on, sampled). */
  wants(status: number): boolean;
  write(e: AccessEntry): void;
  /** Reopens the file (after logrotate moved it); nothing for stdout. */
  reopen(): void;
  close(): void;
}

export const NO_ACCESS_LOG: AccessLog = Object.freeze({ wants: () => false, write: () => undefined, reopen: () => undefined, close: () => undefined });

/**
 * `draw`: a uniform number in [0, 1), for sampling; `onError`: a write that failed (disk full,
 * the folder removed), which must never take the sidecar down. A file that cannot be opened at
 * start is a ConfigError naming accessLog.file.
 */
export function createAccessLog(cfg: AccessLogConfig, draw: () => number, onError: (err: Error) => void = () => undefined): AccessLog {
  if (cfg.mode === 'off') return NO_ACCESS_LOG;
  if (cfg.file) {
    try {
      mkdirSync(dirname(cfg.file), { recursive: true });
      closeSync(openSync(cfg.file, 'a'));
    } catch (e) {
      throw new ConfigError('accessLog.file', `cannot append to ${cfg.file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); write a path the sidecar may write, e.g. /var/log/themis/access.log, or leave it out for stdout`);
    }
  }
  const dest = pino.destination(cfg.file ? { dest: cfg.file, append: true, mkdir: true, sync: false } : { fd: 1, sync: false });
  dest.on('error', onError);
  // No level, pid, hostname or msg: the line is the entry, after "type":"access" (which tells
  // it from other lines on a shared stdout or journal).
  const log: Logger = pino({ base: null, timestamp: false, formatters: { level: () => ({ type: 'access' }) } }, dest);
  const rate = cfg.rate;
  return {
    // sampled: a fraction of requests, and every server-side failure, which an operator always wants.
    wants: (status) => rate >= 1 || status >= 500 || status === 0 || (rate > 0 && draw() < rate),
    write: (e) => log.info(e),
    reopen: () => dest.reopen(),
    // Written out, then closed, once the file is open (end() waits for that).
    close: () => void dest.end(),
  };
}
