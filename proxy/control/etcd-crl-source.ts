// CRLs from etcd: the four `crl/{ca}` keys are watched and every value is checked (issuer
// signature, CRL number higher than the one in force) before the sidecar applies it; refusals
// are reported once per value and change nothing. Accepted CRLs are cached on disk, so a
// sidecar restarted while etcd is down still enforces every revocation it has seen.
import type { Etcd3 } from 'etcd3';
import { answerWithin, etcdKeys } from '../../src/control/etcd-keys.js';
import { KeepWatching } from '../../src/control/watch.js';
import { CRL_NAMES, MAX_CRL_VALUE_BYTES, readStoredCrls } from '../../src/control/crl-store.js';
import { CrlTrust, type TrustedCrl } from '../../src/pki/crl-trust.js';
import { newerCrl, type ParsedCrl } from '../../src/pki/crl.js';
import type { Logger } from '../../src/log.js';
import type { Clock } from '../../src/runtime.js';
import { readCache, writeCache } from './control-cache.js';

export interface EtcdCrlOptions {
  etcd: Etcd3;
  cluster: string;
  rootPem: string;
  clock: Clock;
  /** The CRL in force per issuer (from files and earlier etcd values). */
  held: (issuerKey: string) => ParsedCrl | undefined;
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
  private trust: CrlTrust;
  private readonly prefix: string;
  /** The newest etcd revision considered per key: an older snapshot never counts again. */
  private readonly revisions = new Map<string, bigint>();
  /** Refused values already reported (a re-read of the same value is not a new event). */
  private readonly reported = new Set<string>();
  private watcher: KeepWatching | undefined;
  private closed = false;
  /** Refusals made while nobody listened yet (at start), handed to each listener as it comes. */
  private readonly earlyRejections: CrlRejection[] = [];
  /** Bumped on every CRL accepted; the sidecar compares it with the one its material used. */
  generation = 0;

  private constructor(private readonly o: EtcdCrlOptions) {
    this.trust = new CrlTrust(o.rootPem, o.clock);
    this.prefix = etcdKeys(o.cluster).crl('');
  }

  /** Loads the disk cache, then what etcd holds (if it answers within 3 s), then watches. */
  static async open(o: EtcdCrlOptions): Promise<EtcdCrlSource> {
    const s = new EtcdCrlSource(o);
    for (const { name, value } of s.readCache()) s.consider(name, value, undefined, false);
    try {
      const stored = await answerWithin(readStoredCrls(o.etcd, o.cluster));
      for (const v of stored) s.consider(v.name, v.value, BigInt(v.revision), false);
    } catch (e) {
      o.log.warn({ err: (e as Error).message }, 'CRLs not read from etcd at start; enforcing the cached ones');
    }
    s.persist();
    s.watch();
    return s;
  }

  /** The accepted CRLs. */
  crls(): ParsedCrl[] {
    return [...this.accepted.values()].map((a) => a.crl.crl);
  }

  onApply(l: (name: string, crl: TrustedCrl) => void): void {
    this.applyListeners.push(l);
  }

  /** Also hears the refusals made at start (open), before any listener was there: a rolled-back etcd is audited at once. */
  onReject(l: (r: CrlRejection) => void): void {
    this.rejectListeners.push(l);
    for (const r of this.earlyRejections) l(r);
  }

  /**
   * The sidecar's trust bundle changed (tls.ca reloaded, e.g. a root rotation): CRLs are checked
   * against the new roots from now on, and what etcd holds is read again, so CRLs refused under
   * the old bundle (the new generation's, published first) are taken now. Throws PkiError on a
   * bad bundle (the caller has already loaded it).
   */
  retrust(rootPem: string): void {
    this.trust = new CrlTrust(rootPem, this.o.clock);
    void this.readAll();
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
  }

  /** The CRL in force for an issuer: the sidecar's, or the one accepted here if newer. */
  private held(issuerKey: string): ParsedCrl | undefined {
    const theirs = this.o.held(issuerKey);
    const mine = this.accepted.get(issuerKey)?.crl.crl;
    return mine ? newerCrl(mine, theirs) : theirs;
  }

  /**
   * Checks one value; applies it if it verifies and is newer. Never throws: whatever anyone
   * wrote into etcd, the worst outcome is a refusal.
   */
  private consider(name: string, value: string, revision: bigint | undefined, notify: boolean): void {
    if (this.closed || name === 'revoked') return; // crl/revoked is derived, for people
    // A value at or below a revision already considered is an older read of the key (a resync
    // racing the watch): not reported again. It is still checked, and taken when its CRL is newer:
    // after etcd is restored from a snapshot its revisions start again from the snapshot's, and a
    // CRL published then must not wait for them to pass the old ones.
    let stale = false;
    if (revision !== undefined) {
      const seen = this.revisions.get(name);
      stale = seen !== undefined && revision <= seen;
      if (seen !== undefined && revision < seen) this.o.log.warn({ ca: name, revision: String(revision), seen: String(seen) }, 'etcd\'s revision of this CRL key went back: etcd was restored from a snapshot or rolled back; its CRLs are taken only when newer than those in force');
      this.revisions.set(name, revision);
    }
    try {
      if (!(CRL_NAMES as readonly string[]).includes(name)) return this.refuse(name, value, 'malformed', `crl/${name} is not one of crl/${CRL_NAMES.join(', crl/')}`);
      if (value.length > MAX_CRL_VALUE_BYTES) return this.refuse(name, value, 'malformed', `the value is larger than ${MAX_CRL_VALUE_BYTES} bytes`);
      const c = this.trust.check(value, (k) => this.held(k), (serial, rootKey) => this.held(rootKey)?.revoked.has(serial) ?? false);
      if (!c.ok) {
        if (c.duplicate || stale) return; // the CRL already in force, or an older read, again
        return this.refuse(name, value, c.reason, c.message);
      }
      this.accepted.set(c.value.issuerKey, { name, crl: c.value });
      this.generation++;
      if (!notify) return;
      this.persist();
      for (const l of this.applyListeners) l(name, c.value);
    } catch (e) {
      this.o.log.error({ ca: name, err: (e as Error).message }, 'unexpected error while checking a CRL from etcd; nothing changes');
    }
  }

  private refuse(name: string, value: string, reason: string, message: string): void {
    const key = `${name}\n${value}`;
    if (this.reported.has(key)) return;
    if (this.reported.size > 1000) this.reported.clear();
    this.reported.add(key);
    this.o.log.warn({ ca: name, reason, err: message }, 'CRL from etcd refused; nothing changes');
    if (this.rejectListeners.length === 0 && this.earlyRejections.length < 16) this.earlyRejections.push({ name, reason, message });
    for (const l of this.rejectListeners) l({ name, reason, message });
  }

  private watch(): void {
    this.watcher = new KeepWatching({
      build: () => this.o.etcd.watch().prefix(this.prefix),
      onPut: (kv) => this.consider(kv.key.toString('utf8').slice(this.prefix.length), kv.value.toString('utf8'), BigInt(kv.mod_revision), true),
      resync: () => void this.readAll(),
      what: 'CRL',
      log: this.o.log,
    });
  }

  private async readAll(): Promise<void> {
    try {
      for (const v of await readStoredCrls(this.o.etcd, this.o.cluster)) this.consider(v.name, v.value, BigInt(v.revision), true);
    } catch (e) {
      this.o.log.warn({ err: (e as Error).message }, 'reading the CRLs from etcd failed; the watch retries');
    }
  }

  /** Cached values are checked again like any other: the file is only a hint. */
  private readCache(): { name: string; value: string }[] {
    const crls = (readCache(this.o.cacheFile, 'CRL', this.o.log) as { crls?: unknown } | null | undefined)?.crls;
    if (!Array.isArray(crls)) return [];
    return crls.filter((e): e is { name: string; value: string } => typeof e?.name === 'string' && typeof e?.value === 'string');
  }

  private persist(): void {
    const crls = [...this.accepted.values()].map((a) => ({ name: a.name, value: a.crl.published }));
    writeCache(this.o.cacheFile, { crls }, 'CRLs', this.o.log);
  }
}
