// CRLs from etcd: every `crl/{ca}` value is watched and checked (issuer signature, CRL number
// higher than the one in force) before the sidecar applies it; refusals are reported and change
// nothing. Accepted CRLs are cached on disk, so a sidecar restarted while etcd is down still
// enforces every revocation it has seen.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Etcd3, Watcher } from 'etcd3';
import { etcdKeys } from '../src/control/etcd.js';
import { readStoredCrls } from '../src/control/crl-store.js';
import { CrlTrust, type HeldCrl, type TrustedCrl } from '../src/pki/crl-trust.js';
import type { Logger } from '../src/log.js';
import type { Clock } from '../src/runtime.js';

export interface EtcdCrlOptions {
  etcd: Etcd3;
  cluster: string;
  rootPem: string;
  clock: Clock;
  /** The CRL in force per issuer (from files and earlier etcd values). */
  held: (issuerKey: string) => HeldCrl | undefined;
  cacheFile: string;
  log: Logger;
}

export interface CrlRejection {
  name: string;
  reason: string;
  message: string;
}

export class EtcdCrlSource {
  /** Accepted values by issuer key, with the etcd name they came under. */
  private readonly accepted = new Map<string, { name: string; crl: TrustedCrl }>();
  private readonly applyListeners: ((name: string, crl: TrustedCrl) => void)[] = [];
  private readonly rejectListeners: ((r: CrlRejection) => void)[] = [];
  private readonly trust: CrlTrust;
  private readonly prefix: string;
  private readonly revokedKey: string;
  private watcher: Watcher | undefined;
  private closed = false;

  private constructor(private readonly o: EtcdCrlOptions) {
    this.trust = new CrlTrust(o.rootPem, o.clock);
    this.prefix = etcdKeys(o.cluster).crl('');
    this.revokedKey = etcdKeys(o.cluster).revoked;
  }

  /** Loads the disk cache, then what etcd holds (if it answers within 3 s), then watches. */
  static async open(o: EtcdCrlOptions): Promise<EtcdCrlSource> {
    const s = new EtcdCrlSource(o);
    for (const { name, value } of s.readCache()) s.consider(name, value, false);
    try {
      const stored = await Promise.race([
        readStoredCrls(o.etcd, o.cluster),
        new Promise<never>((_, rej) => setTimeout(() => rej(new Error('etcd did not answer within 3 s')), 3000).unref()),
      ]);
      for (const v of stored) s.consider(v.name, v.value, false);
    } catch (e) {
      o.log.warn({ err: (e as Error).message }, 'etcd unreachable at start; enforcing the cached CRLs');
    }
    s.persist();
    s.watch();
    return s;
  }

  /** The accepted CRLs, `X509 CRL` PEM each. */
  crls(): string[] {
    return [...this.accepted.values()].map((a) => a.crl.crlPem);
  }

  onApply(l: (name: string, crl: TrustedCrl) => void): void {
    this.applyListeners.push(l);
  }

  onReject(l: (r: CrlRejection) => void): void {
    this.rejectListeners.push(l);
  }

  close(): void {
    this.closed = true;
    void this.watcher?.cancel();
  }

  private held(issuerKey: string): HeldCrl | undefined {
    const mine = this.accepted.get(issuerKey)?.crl.crl;
    const theirs = this.o.held(issuerKey);
    if (!mine) return theirs;
    if (!theirs || (mine.crlNumber ?? -1n) >= (theirs.number ?? -1n)) return { number: mine.crlNumber, der: mine.der };
    return theirs;
  }

  /** Checks one value; applies it if it verifies and is newer. Returns whether it was taken. */
  private consider(name: string, value: string, notify: boolean): boolean {
    const c = this.trust.check(value, (k) => this.held(k));
    if (!c.ok) {
      if (c.duplicate) return false; // the CRL already in force, read again
      this.o.log.warn({ ca: name, reason: c.reason, err: c.message }, 'CRL from etcd refused; nothing changes');
      for (const l of this.rejectListeners) l({ name, reason: c.reason, message: c.message });
      return false;
    }
    this.accepted.set(c.value.issuerKey, { name, crl: c.value });
    if (notify) {
      this.persist();
      for (const l of this.applyListeners) l(name, c.value);
    }
    return true;
  }

  private watch(): void {
    if (this.closed) return;
    void this.o.etcd
      .watch()
      .prefix(this.prefix)
      .create()
      .then((w) => {
        if (this.closed) return void w.cancel();
        this.watcher = w;
        w.on('put', (kv) => {
          const key = kv.key.toString('utf8');
          if (key !== this.revokedKey) this.consider(key.slice(this.prefix.length), kv.value.toString('utf8'), true);
        });
        w.on('error', (err) => this.o.log.warn({ err: err.message }, 'CRL watch error; etcd3 reconnects'));
        // A watch only sees what happens after it is (re)established: read the CRLs again
        // each time, so one published while etcd was out of reach is not missed.
        w.on('connected', () => void this.readAll());
        void this.readAll();
      })
      .catch((e: Error) => {
        this.o.log.warn({ err: e.message }, 'cannot watch the CRLs yet; retrying');
        setTimeout(() => this.watch(), 2000).unref();
      });
  }

  /** Cached values are checked again like any other: the file is only a hint. */
  private async readAll(): Promise<void> {
    try {
      for (const v of await readStoredCrls(this.o.etcd, this.o.cluster)) this.consider(v.name, v.value, true);
    } catch (e) {
      this.o.log.warn({ err: (e as Error).message }, 'reading the CRLs from etcd failed; the watch retries');
    }
  }

  private readCache(): { name: string; value: string }[] {
    if (!existsSync(this.o.cacheFile)) return [];
    try {
      const parsed = JSON.parse(readFileSync(this.o.cacheFile, 'utf8')) as { crls?: unknown };
      if (!Array.isArray(parsed.crls)) return [];
      return parsed.crls.filter((e): e is { name: string; value: string } => typeof e?.name === 'string' && typeof e?.value === 'string');
    } catch (e) {
      this.o.log.warn({ file: this.o.cacheFile, err: (e as Error).message }, 'CRL cache unreadable; ignoring it');
      return [];
    }
  }

  private persist(): void {
    const crls = [...this.accepted.values()].map((a) => ({ name: a.name, value: a.crl.published }));
    try {
      writeFileSync(this.o.cacheFile + '.tmp', JSON.stringify({ crls }), { mode: 0o600 });
      renameSync(this.o.cacheFile + '.tmp', this.o.cacheFile);
    } catch (e) {
      this.o.log.warn({ err: (e as Error).message, file: this.o.cacheFile }, 'cannot cache the CRLs on disk');
    }
  }
}
