// The validated, frozen configuration of the storage node (`themis-storage`), read from
// CLI flags and an optional JSON file (`--config`); flags win over the file.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, asObject, bool, int, isLoopbackHost, rejectUnknown, str, type Raw } from './validate.js';

export interface StorageConfig {
  /** Address to listen on; loopback unless allowNonLoopback. */
  readonly host: string;
  /** TCP port; 0 picks a free one (tests). */
  readonly port: number;
  /** Absolute path of the LevelDB directory (created when missing). */
  readonly dataDir: string;
  /** Largest accepted `blob`, in UTF-8 bytes. */
  readonly maxBlobBytes: number;
  /** Largest request body read at all: 2 × maxBlobBytes + 64 KiB (JSON escaping can double a blob). */
  readonly maxBodyBytes: number;
  /** Opt-in to listen on a non-loopback address. */
  readonly allowNonLoopback: boolean;
  /** Upper bound for `long_poll_ms` on GET /changefeed; larger requests are capped to it. */
  readonly maxLongPollMs: number;
  /** Change-log retention (storage-node/retention.ts): keep at least this age… */
  readonly feedRetainMs: number;
  /** …or this many records, whichever keeps more, */
  readonly feedRetainRecords: number;
  /** …and more for registered followers, but never more records than this (protects the disk). */
  readonly feedMaxRecords: number;
  /** How often the background trimmer runs. */
  readonly feedTrimIntervalMs: number;
  /** A follower registration not refreshed for this long no longer holds the log. */
  readonly feedFollowerTtlMs: number;
  /** Default heartbeat of GET /changefeed/stream. */
  readonly sseHeartbeatMs: number;
}

const FEED_FIELDS = ['feedRetainMs', 'feedRetainRecords', 'feedMaxRecords', 'feedTrimIntervalMs', 'feedFollowerTtlMs', 'sseHeartbeatMs'] as const;

export const STORAGE_DEFAULTS = Object.freeze({
  host: '127.0.0.1',
  port: 8765,
  maxBlobBytes: 16 * 1024 * 1024,
  allowNonLoopback: false,
  maxLongPollMs: 30_000,
  feedRetainMs: 24 * 3600_000,
  feedRetainRecords: 100_000,
  feedMaxRecords: 10_000_000,
  feedTrimIntervalMs: 1000,
  feedFollowerTtlMs: 3600_000,
  sseHeartbeatMs: 15_000,
});

const KNOWN = ['host', 'port', 'dataDir', 'maxBlobBytes', 'allowNonLoopback', 'maxLongPollMs', ...FEED_FIELDS] as const;
const MAX_BLOB_LIMIT = 256 * 1024 * 1024;
const MAX_RECORDS = 1e12;
const BODY_SLACK = 64 * 1024;

/** Validates a raw settings object (file contents merged with flags) into a frozen config. */
export function validateStorageConfig(input: unknown): StorageConfig {
  const raw = asObject(input, 'config');
  rejectUnknown(raw, KNOWN, '');
  const host = hostOf(raw);
  const allowNonLoopback = bool(raw, 'allowNonLoopback', '', STORAGE_DEFAULTS.allowNonLoopback);
  if (!allowNonLoopback && !isLoopbackHost(host)) {
    throw new ConfigError(
      'host',
      `refusing to listen on non-loopback address "${host}": the storage node speaks plaintext HTTP ` +
        'and has no authentication, so only the local sidecar may reach it (the sidecar is what faces ' +
        'the network); write 127.0.0.1 (the default), or set allowNonLoopback (--allow-non-loopback) ' +
        'if something else already protects this address',
    );
  }
  const maxBlobBytes = int(raw, 'maxBlobBytes', '', STORAGE_DEFAULTS.maxBlobBytes, 1, MAX_BLOB_LIMIT);
  const feed = feedSettings(raw);
  return Object.freeze({
    host,
    port: int(raw, 'port', '', STORAGE_DEFAULTS.port, 0, 65535),
    dataDir: resolve(str(raw, 'dataDir', '')),
    maxBlobBytes,
    maxBodyBytes: 2 * maxBlobBytes + BODY_SLACK,
    allowNonLoopback,
    maxLongPollMs: int(raw, 'maxLongPollMs', '', STORAGE_DEFAULTS.maxLongPollMs, 0, 300_000),
    ...feed,
  });
}

/** The change-log retention settings; the hard cap may not be below the record count kept. */
function feedSettings(raw: Raw) {
  const d = STORAGE_DEFAULTS;
  const feedRetainRecords = int(raw, 'feedRetainRecords', '', d.feedRetainRecords, 0, MAX_RECORDS);
  const feedMaxRecords = int(raw, 'feedMaxRecords', '', d.feedMaxRecords, 1, MAX_RECORDS);
  if (feedMaxRecords < feedRetainRecords) {
    throw new ConfigError('feedMaxRecords', `the hard cap (${feedMaxRecords} records) is below feedRetainRecords (${feedRetainRecords}); raise feedMaxRecords or lower feedRetainRecords`);
  }
  return {
    feedRetainMs: int(raw, 'feedRetainMs', '', d.feedRetainMs, 0, 365 * 24 * 3600_000),
    feedRetainRecords,
    feedMaxRecords,
    feedTrimIntervalMs: int(raw, 'feedTrimIntervalMs', '', d.feedTrimIntervalMs, 10, 3600_000),
    feedFollowerTtlMs: int(raw, 'feedFollowerTtlMs', '', d.feedFollowerTtlMs, 1000, 30 * 24 * 3600_000),
    sseHeartbeatMs: int(raw, 'sseHeartbeatMs', '', d.sseHeartbeatMs, 100, 300_000),
  };
}

function hostOf(raw: Raw): string {
  let host = str(raw, 'host', '', STORAGE_DEFAULTS.host);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (host !== 'localhost' && isIP(host) === 0) {
    throw new ConfigError('host', `expected an IP address or "localhost", got ${JSON.stringify(host.slice(0, 64))}; write e.g. 127.0.0.1`);
  }
  return host;
}

export const STORAGE_USAGE = `usage: themis-storage --data-dir DIR [options]
  --data-dir DIR          LevelDB directory (required; created when missing)
  --host ADDR             listen address (default 127.0.0.1; loopback only unless --allow-non-loopback)
  --port N                TCP port (default 8765; 0 = any free port)
  --max-blob-bytes N      largest blob in UTF-8 bytes (default 16777216)
  --max-long-poll-ms N    cap for long_poll_ms on GET /changefeed (default 30000)
  --feed-retain-ms N      keep change records at least this long (default 86400000 = 24 h)
  --feed-retain-records N …or at least this many, whichever keeps more (default 100000)
  --feed-max-records N    hard cap, even for registered followers (default 10000000)
  --feed-trim-interval-ms N  background trimming period (default 1000)
  --feed-follower-ttl-ms N   a follower registration expires unless refreshed (default 3600000)
  --sse-heartbeat-ms N    heartbeat of GET /changefeed/stream (default 15000)
  --allow-non-loopback    permit a non-loopback --host (plaintext, no authentication!)
  --config FILE.json      settings file: {"host", "port", "dataDir", "maxBlobBytes", "allowNonLoopback", "maxLongPollMs", "feedRetainMs", …}
  --help                  print this text`;

/** Flag name → config field. */
const FLAGS = {
  host: 'host',
  port: 'port',
  'data-dir': 'dataDir',
  'max-blob-bytes': 'maxBlobBytes',
  'max-long-poll-ms': 'maxLongPollMs',
  'feed-retain-ms': 'feedRetainMs',
  'feed-retain-records': 'feedRetainRecords',
  'feed-max-records': 'feedMaxRecords',
  'feed-trim-interval-ms': 'feedTrimIntervalMs',
  'feed-follower-ttl-ms': 'feedFollowerTtlMs',
  'sse-heartbeat-ms': 'sseHeartbeatMs',
} as const;

/**
 * Parses argv (without node and script) into a config; `null` means --help was asked for.
 * Throws ConfigError naming the field (and the flag) on any bad value.
 */
export function parseStorageArgs(argv: readonly string[]): StorageConfig | null {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        ...Object.fromEntries(Object.keys(FLAGS).map((f) => [f, { type: 'string' as const }])),
        'allow-non-loopback': { type: 'boolean' },
        config: { type: 'string' },
        help: { type: 'boolean' },
      },
    });
  } catch (err) {
    throw new ConfigError('arguments', `${(err as Error).message}; see --help`);
  }
  const v = parsed.values as Record<string, string | boolean | undefined>;
  if (v.help === true) return null;
  const raw: Raw = typeof v.config === 'string' ? readConfigFile(v.config) : {};
  for (const [flag, field] of Object.entries(FLAGS)) {
    if (typeof v[flag] === 'string') raw[field] = v[flag];
  }
  if (v['allow-non-loopback'] === true) raw.allowNonLoopback = true;
  return validateStorageConfig(raw);
}

function readConfigFile(path: string): Raw {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('config', `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'}); write the path of a JSON file`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ConfigError('config', `${path} is not valid JSON (${(err as Error).message}); write a JSON object`);
  }
  return { ...asObject(value, 'config') };
}
