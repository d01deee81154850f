// `themis-pki serve`: flags, the cluster CA opened once, the renewal service started until
// SIGTERM/SIGINT. The service itself is src/pki/renewal-server.ts.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AuditLog } from '../audit/audit-log.js';
import { PkiLayout, loadCaCert, loadIssuer, leafFiles } from '../pki/ca-store.js';
import type { PkiContext } from '../pki/commands.js';
import { invalid } from '../pki/errors.js';
import { MIN_LIFETIME_MS, MIN_TEST_LIFETIME_MS, RenewalService } from '../pki/renewal-server.js';
import { createLogger } from '../log.js';
import { parseFlags, type Options } from './cli-common.js';

export const SERVE_FLAGS = {
  listen: { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  lifetime: { type: 'string' },
  'allow-short-lifetime': { type: 'boolean' },
  audit: { type: 'string' },
  'ca-key': { type: 'string' },
  previous: { type: 'string' },
} as const satisfies Options;

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "24h", "90m", "3600s", "2d" → ms, within [floor, 30 days]. */
export function parseLifetime(text: string | undefined, floorMs: number): number {
  if (text === undefined) return 24 * 3_600_000;
  const m = /^(\d{1,7})([smhd])$/.exec(text.trim());
  if (!m) throw invalid('--lifetime', `"${text}" must be a number and a unit: s, m, h or d (e.g. 24h)`);
  const ms = Number(m[1]) * UNIT_MS[m[2]!]!;
  if (ms < floorMs) throw invalid('--lifetime', `${text} is shorter than ${floorMs / 60_000} min${floorMs === MIN_LIFETIME_MS ? ' (--allow-short-lifetime lowers the floor to 1 min, for tests and drills)' : ''}`);
  if (ms > 30 * 86_400_000) throw invalid('--lifetime', `${text} is longer than 30 days; long-lived certificates are issued by an operator (issue-shard)`);
  return ms;
}

/** host:port on a literal address (the service is on the PKI host; bind loopback or a private address). */
export function parseListen(text: string | undefined): { host: string; port: number } {
  const t = text ?? '127.0.0.1:7443';
  const m = /^(\[[0-9a-fA-F:]+\]|[0-9.]+):(\d{1,5})$/.exec(t);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw invalid('--listen', `"${t}" must be ADDRESS:PORT, e.g. 127.0.0.1:7443`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

export async function cmdServe(argv: string[], ctxOf: (f: Record<string, unknown>) => PkiContext, passphrase: (f: Record<string, unknown>) => Promise<string | undefined>, common: Options): Promise<void> {
  const { values: f } = parseFlags(argv, { ...common, ...SERVE_FLAGS });
  const ctx = ctxOf(f);
  const L = ctx.layout;
  const lifetimeMs = parseLifetime(f.lifetime as string | undefined, f['allow-short-lifetime'] === true ? MIN_TEST_LIFETIME_MS : MIN_LIFETIME_MS);
  const { host, port } = parseListen(f.listen as string | undefined);
  const own = leafFiles(L.leafDir('server', 'renewal'));
  const read = (path: string, flag: string) => {
    try {
      return readFileSync(path, 'utf8');
    } catch (e) {
      throw invalid(flag, `cannot read ${path} (${(e as NodeJS.ErrnoException).code}); issue the service's certificate: themis-pki issue-server --name renewal --ip ${host}`);
    }
  };
  const certChain = read((f['tls-cert'] as string | undefined) ?? own.chain, '--tls-cert');
  const key = read((f['tls-key'] as string | undefined) ?? own.key, '--tls-key');
  await loadCaCert(L, 'cluster');
  const issuer = await loadIssuer(L, 'cluster', await passphrase(f), f['ca-key'] as string | undefined, ctx.pkcs11Pin);
  const log = createLogger('themis-pki-serve');
  const auditFile = (f.audit as string | undefined) ?? join(L.dir, 'serve-audit.log');
  const audit = new AuditLog({ file: auditFile, source: 'themis-pki-serve', clock: ctx.clock, onWriteError: (e) => log.error({ err: e.message }, 'audit trail not written') });
  const previous = f.previous === undefined ? undefined : new PkiLayout(f.previous as string);
  if (previous) await loadCaCert(previous, 'cluster');
  const service = new RenewalService({ layout: L, ...(previous ? { previous } : {}), issuer, tls: { certChain, key }, lifetimeMs, clock: ctx.clock, random: ctx.random, audit, log });
  const bound = await service.listen(port, host);
  log.info({ listen: `${host}:${bound}`, lifetime_s: lifetimeMs / 1000, audit: auditFile }, 'renewal service listening');
  process.stdout.write(`themis-pki serve: listening on https://${host.includes(':') ? `[${host}]` : host}:${bound}/v1/renew (lifetime ${lifetimeMs / 1000} s)\n`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  await service.close();
  audit.close();
}
