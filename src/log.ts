// The root pino logger. Components take `log.child({ component })`; never log keys,
// signatures or bodies. Level from THEMIS_LOG_LEVEL (default info); output to stderr.
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(name: string, level = process.env.THEMIS_LOG_LEVEL ?? 'info'): Logger {
  return pino({ name, level, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: false }));
}

/** A logger that drops everything; for tests and library callers that pass none. */
export const silentLogger: Logger = pino({ level: 'silent' });
