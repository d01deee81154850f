// tls.renewal: where and when a sidecar renews its own certificate (themis-pki serve).
// Validated at start-up like the rest of the config; every error names the field.
import { resolve } from 'node:path';
import { ConfigError, asObject, int, rejectUnknown, str } from './validate.js';

export interface RenewalConfig {
  /** The renewal service, e.g. https://10.0.0.5:7443 (the /v1/renew path is added). */
  readonly url: string;
  /** The root that signs the service's certificate (default: tls.ca). */
  readonly ca: string | undefined;
  /** Renew once this share of the lifetime has passed (percent, default 50)… */
  readonly atPercent: number;
  /** …plus or minus this much (percent of the lifetime, default 10): sidecars do not all renew at once. */
  readonly jitterPercent: number;
  /** Retry after a failed renewal: from retryMinMs, doubling, up to retryMaxMs. */
  readonly retryMinMs: number;
  readonly retryMaxMs: number;
}

export function renewalConfig(raw: unknown, baseDir: string): RenewalConfig | undefined {
  if (raw === undefined) return undefined;
  const o = asObject(raw, 'tls.renewal');
  rejectUnknown(o, ['url', 'ca', 'atPercent', 'jitterPercent', 'retryMinMs', 'retryMaxMs'], 'tls.renewal');
  const url = str(o, 'url', 'tls.renewal');
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ConfigError('tls.renewal.url', `"${url}" is not a URL; write e.g. https://127.0.0.1:7443`);
  }
  if (u.protocol !== 'https:' || u.pathname !== '/' || u.search || u.username) {
    throw new ConfigError('tls.renewal.url', `"${url}" must be https://HOST:PORT of themis-pki serve, with no path`);
  }
  const atPercent = int(o, 'atPercent', 'tls.renewal', 50, 10, 90);
  const jitterPercent = int(o, 'jitterPercent', 'tls.renewal', 10, 0, 20);
  if (atPercent + jitterPercent > 95 || atPercent - jitterPercent < 5) {
    throw new ConfigError('tls.renewal.jitterPercent', `atPercent ± jitterPercent must stay within 5…95 % of the lifetime (got ${atPercent} ± ${jitterPercent})`);
  }
  const retryMinMs = int(o, 'retryMinMs', 'tls.renewal', 1000, 100, 3_600_000);
  const retryMaxMs = int(o, 'retryMaxMs', 'tls.renewal', 300_000, retryMinMs, 86_400_000);
  return Object.freeze({ url: u.origin, ca: o.ca === undefined ? undefined : resolve(baseDir, str(o, 'ca', 'tls.renewal')), atPercent, jitterPercent, retryMinMs, retryMaxMs });
}
