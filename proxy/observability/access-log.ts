// The access log: one JSON line per request on the app and mesh ports, through its own pino
// instance (never the diagnostic log on stderr), to stdout or a file that the host rotates
// (SIGHUP reopens it). The schema is documented in docs/observability.md; no body, signature or
// key material is ever part of a line.
import { mkdirSync, openSync } from 'node:fs';
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
  /** The worker that served it (docs/sidecar.md "Workers"); null when the sidecar is one process. */
  worker: number | null;
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
  /** Writes out what is queued (waiting at most `ms`), then closes the file. */
  close(ms?: number): Promise<void>;
}

export const NO_ACCESS_LOG: AccessLog = Object.freeze({ wants: () => false, write: () => undefined, reopen: () => undefined, close: () => Promise.resolve() });

/**
 * `draw`: a uniform number in [0, 1), for sampling; `onError`: a write that failed (disk full,
 * the folder removed), which must never take the sidecar down. A file that cannot be opened at
 * start is a ConfigError naming accessLog.file.
 */
export function createAccessLog(cfg: AccessLogConfig, draw: () => number, onError: (err: Error) => void = () => undefined): AccessLog {
  if (cfg.mode === 'off') return NO_ACCESS_LOG;
  // The file is opened here, synchronously, and handed over as a descriptor: the writer is ready
  // at once (pino's exit hook never meets a stream still opening), and a file that cannot be
  // opened at start is a start-up error naming the field.
  const open = (): number => {
    mkdirSync(dirname(cfg.file!), { recursive: true });
    return openSync(cfg.file!, 'a');
  };
  let fd = 1;
  if (cfg.file) {
    try {
      fd = open();
    } catch (e) {
      throw new ConfigError('accessLog.file', `cannot append to ${cfg.file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); write a path the sidecar may write, e.g. /var/log/themis/access.log, or leave it out for stdout`);
    }
  }
  const writer = (to: number) => {
    const dest = pino.destination({ fd: to, sync: false });
    dest.on('error', onError);
    // No level, pid, hostname or msg: the line is the entry, after "type":"access" (which tells
    // it from other lines on a shared stdout or journal).
    return { dest, log: pino({ base: null, timestamp: false, formatters: { level: () => ({ type: 'access' }) } }, dest) as Logger };
  };
  let w = writer(fd);
  /**
   * Writes out what is queued and closes the file (stdout stays open), waiting at most `ms`; then
   * whatever could not be written is dropped. Never flushSync(): sonic-boom 4.2 retries a failed
   * synchronous write forever unless the error is EAGAIN, so a full disk would hang the stop.
   * Once closed or dropped the writer counts as destroyed, which pino's exit hook skips.
   */
  const retire = (old: typeof w, ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        safely(() => old.dest.destroy());
        resolve();
      }, ms);
      old.dest.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      safely(() => old.dest.end());
    });
  const rate = cfg.rate;
  /** A log line must never throw into the request path. */
  const safely = (f: () => void) => {
    try {
      f();
    } catch (e) {
      onError(e as Error);
    }
  };
  return {
    // sampled: a fraction of requests, and every server-side failure, which an operator always wants.
    wants: (status) => rate >= 1 || status >= 500 || status === 0 || (rate > 0 && draw() < rate),
    write: (e) => safely(() => w.log.info(e)),
    // A file of the same name, opened first: if that fails, lines keep going where they went.
    reopen: () =>
      safely(() => {
        if (!cfg.file) return;
        const old = w;
        w = writer(open());
        void retire(old, 5000);
      }),
    close: (ms = 1000) => retire(w, ms),
  };
}
