// Automatic renewal of this sidecar's own certificate (tls.renewal): at atPercent ± jitterPercent
// of its lifetime, a new key pair and a CSR for the same identity go to `themis-pki serve` over
// mTLS with the current certificate; the answer is checked (same identity, our new key, a chain
// our trust verifies), written over tls.cert and tls.key, and put in force through the usual
// rotation path (Trust.apply). A failed attempt is retried with back-off while the old
// certificate keeps serving until it expires; metrics and alerts say so long before.
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import type { SidecarConfig } from '../src/config/sidecar.js';
import type { RenewalConfig } from '../src/config/renewal.js';
import { ConfigError } from '../src/config/validate.js';
import { writeProblem } from '../src/config/writable.js';
import { writeFileDurably } from '../src/durable-write.js';
import type { Logger } from '../src/log.js';
import type { SidecarMetrics } from '../src/metrics/sidecar-metrics.js';
import { THEMIS_IDENTITY_OID, decodeIdentity, encodeIdentity } from '../src/pki/identity-extension.js';
import { BACKDATE_MS } from '../src/pki/issue.js';
import { exportPrivateKeyPem, generateKeyPair, keyTypeOf, signingAlgorithm } from '../src/pki/keys.js';
import { toPem } from '../src/pki/pem.js';
import { identityChanges } from '../src/pki/renewal-policy.js';
import { RENEW_PATH } from '../src/pki/renewal-server.js';
import { subtle, x509 } from '../src/pki/x509.js';
import type { Clock, Random } from '../src/runtime.js';
import type { Trust } from './trust.js';

export interface RenewerDeps {
  cfg: SidecarConfig;
  renewal: RenewalConfig;
  trust: Trust;
  clock: Clock;
  random: Random;
  metrics: SidecarMetrics;
  log: Logger;
}

/** When the certificate was issued: its notBefore, less the 5 minutes themis-pki back-dates by. */
export function issuedAt(notBefore: number, notAfter: number): number {
  return notAfter - notBefore > BACKDATE_MS ? notBefore + BACKDATE_MS : notBefore;
}

/** The instant to renew at: atPercent ± jitterPercent (uniform) of the lifetime after issue. */
export function renewalInstant(notBefore: number, notAfter: number, atPercent: number, jitterPercent: number, u: number): number {
  const start = issuedAt(notBefore, notAfter);
  const share = (atPercent + (2 * u - 1) * jitterPercent) / 100;
  return start + (notAfter - start) * share;
}

/** A refusal from the service (4xx): retried with back-off like a failure, but counted apart. */
class Refused extends Error {}

export class CertificateRenewer {
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  private stopped = false;
  private started = false;
  private running: Promise<void> | undefined;
  private readonly gauges;

  /** Throws ConfigError (exit 78) when the files a renewal replaces cannot be written. */
  constructor(private readonly d: RenewerDeps) {
    for (const [file, field] of [[d.cfg.tls.key, 'tls.key'], [d.cfg.tls.cert, 'tls.cert']] as const) {
      const problem = writeProblem(file);
      if (problem) throw new ConfigError(field, `tls.renewal replaces ${file} with each renewed certificate, but that folder cannot be written (${problem}); keep the certificate and key in the sidecar's state directory, e.g. /var/lib/themis/sidecar/tls/`);
    }
    this.gauges = d.metrics.renewal(d.cfg.shardId, () => this.remaining());
    // A certificate put in place by hand (an operator's rotation, SIGHUP) sets a new schedule.
    d.trust.onChange((next, previous) => {
      if (next.serial !== previous.serial && !this.running && this.started && !this.stopped) this.scheduleFromCertificate();
    });
  }

  private remaining(): number {
    const m = this.d.trust.material;
    const start = issuedAt(notBeforeOf(this.d.trust), m.notAfter.getTime());
    return Math.max(0, Math.min(1, (m.notAfter.getTime() - this.d.clock.now()) / (m.notAfter.getTime() - start)));
  }

  start(): void {
    this.started = true;
    this.scheduleFromCertificate();
  }

  stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    return this.running ?? Promise.resolve();
  }

  /** Renews now (tests, `themis-admin`-style drills); resolves when the attempt is over. */
  renewNow(): Promise<void> {
    clearTimeout(this.timer);
    return this.attempt();
  }

  private scheduleFromCertificate(): void {
    const m = this.d.trust.material;
    const at = renewalInstant(notBeforeOf(this.d.trust), m.notAfter.getTime(), this.d.renewal.atPercent, this.d.renewal.jitterPercent, this.d.random.bytes(4).readUInt32BE(0) / 2 ** 32);
    this.schedule(at, 'renewal due');
  }

  private schedule(at: number, why: string): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    const delay = Math.max(0, at - this.d.clock.now());
    this.gauges.next.set({ shard_id: this.d.cfg.shardId }, Math.round(at / 1000));
    this.d.log.debug({ at: new Date(at).toISOString(), why }, 'certificate renewal scheduled');
    // setTimeout holds at most 2^31-1 ms (~24.8 days): a longer wait is taken in steps.
    this.timer = setTimeout(() => (delay > 2 ** 31 - 1 ? this.schedule(at, why) : void this.attempt()), Math.min(delay, 2 ** 31 - 1));
    this.timer.unref();
  }

  private attempt(): Promise<void> {
    this.running ??= this.renew().finally(() => (this.running = undefined));
    return this.running;
  }

  private async renew(): Promise<void> {
    const shard = this.d.cfg.shardId;
    try {
      await this.renewOnce();
      this.failures = 0;
      this.gauges.failures.set({ shard_id: shard }, 0);
      this.gauges.renewals.inc({ shard_id: shard, result: 'renewed' });
      this.scheduleFromCertificate();
    } catch (e) {
      this.failures++;
      this.gauges.failures.set({ shard_id: shard }, this.failures);
      this.gauges.renewals.inc({ shard_id: shard, result: e instanceof Refused ? 'refused' : 'failed' });
      const r = this.d.renewal;
      const backoff = Math.min(r.retryMaxMs, r.retryMinMs * 2 ** Math.min(this.failures - 1, 30));
      const wait = backoff / 2 + (backoff / 2) * (this.d.random.bytes(4).readUInt32BE(0) / 2 ** 32);
      const notAfter = this.d.trust.material.notAfter;
      this.d.log.error({ err: (e as Error).message, failures: this.failures, retry_in_ms: Math.round(wait), expires: notAfter.toISOString() }, 'certificate renewal failed; still serving on the current certificate');
      this.schedule(this.d.clock.now() + wait, 'retry');
    }
  }

  private async renewOnce(): Promise<void> {
    const { cfg, renewal, trust } = this.d;
    const held = trust.material;
    const keys = await generateKeyPair(keyTypeOf(held.key, 'tls.key'));
    const cn = /CN=([^,\n]+)/.exec(new x509.X509Certificate(firstPem(held.certChain)).subject)?.[1];
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      ...(cn ? { name: `CN=${cn}` } : {}),
      keys,
      signingAlgorithm: signingAlgorithm(keys.privateKey),
      extensions: [new x509.Extension(THEMIS_IDENTITY_OID, false, encodeIdentity(held.identity))],
    });
    const answer = await post(renewal, readFileSync(renewal.ca ?? cfg.tls.ca, 'utf8'), held.certChain, held.keyPem, csr.toString('pem'));
    if (answer.status >= 400 && answer.status < 500) throw new Refused(`the renewal service refused (${answer.status}): ${answer.body.slice(0, 500)}`);
    if (answer.status !== 200) throw new Error(`the renewal service answered ${answer.status}: ${answer.body.slice(0, 500)}`);
    const certs = x509.PemConverter.decode(answer.body);
    if (certs.length < 2) throw new Error('the renewal service answered without a chain (leaf and cluster CA)');
    const leaf = new x509.X509Certificate(certs[0]!);
    // What we put in force is checked here, not taken on trust from the service.
    const spki = Buffer.from(await subtle.exportKey('spki', keys.publicKey));
    if (!Buffer.from(leaf.publicKey.rawData).equals(spki)) throw new Error('the renewed certificate is not for the key this sidecar generated');
    const ext = leaf.getExtension(THEMIS_IDENTITY_OID);
    const changed = ext ? identityChanges(held.identity, decodeIdentity(new Uint8Array(ext.value))) : ['identity extension'];
    if (changed.length > 0) throw new Error(`the renewed certificate changes ${changed.join(', ')}; not put in force`);
    const chain = certs.map((c) => new Uint8Array(c));
    const v = held.verifier.verify(chain, 'serverAuth');
    if (!v.ok) throw new Error(`the renewed certificate does not verify under this sidecar's trust: ${v.message}`);
    const passphrase = cfg.tls.keyPassphraseFile ? readFileSync(cfg.tls.keyPassphraseFile, 'utf8').replace(/\r?\n$/, '') : undefined;
    const keyPem = await exportPrivateKeyPem(keys.privateKey, passphrase);
    const chainPem = certs.map((c) => toPem('CERTIFICATE', c)).join('');
    // The new key first, then the certificate: each renamed over the old file, its folder fsynced.
    await writeFileDurably(cfg.tls.key, keyPem);
    await writeFileDurably(cfg.tls.cert, chainPem);
    if (!trust.apply('certificate renewed')) throw new Error('the renewed files were written but did not load; see the TLS reload error');
    this.d.log.info({ serial: trust.material.serial, previous: held.serial, not_after: leaf.notAfter.toISOString() }, 'certificate renewed');
  }
}

function notBeforeOf(trust: Trust): number {
  return new x509.X509Certificate(firstPem(trust.material.certChain)).notBefore.getTime();
}

function firstPem(chain: string): string {
  const end = chain.indexOf('-----END CERTIFICATE-----');
  return chain.slice(0, end + '-----END CERTIFICATE-----'.length);
}

function post(r: RenewalConfig, ca: string, cert: string, key: string, csrPem: string): Promise<{ status: number; body: string }> {
  const u = new URL(RENEW_PATH, r.url);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: u.hostname.replace(/^\[|\]$/g, ''), port: u.port || 443, path: u.pathname, method: 'POST', ca, cert, key, minVersion: 'TLSv1.3', timeout: 15_000, headers: { 'content-type': 'application/pkcs10' } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          if (body.length < 64 * 1024) body += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('the renewal service did not answer within 15 s')));
    req.on('error', reject);
    req.end(csrPem);
  });
}
