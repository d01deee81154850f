// This sidecar's trust, in one place: its TLS material (certificate, key, root, CRLs from files
// and from etcd), the request signer made from it, the stale-CRL watchdog, and reloads. Every
// reload that takes effect is one change event; the wiring (sidecar.ts) makes the listeners,
// the peer sessions and the metrics follow it, and cuts sessions that are no longer valid.
import { watchFile, unwatchFile } from 'node:fs';
import type { Etcd3 } from 'etcd3';
import type { SidecarConfig } from '../src/config/sidecar.js';
import { ConfigError } from '../src/config/validate.js';
import { RequestSigner } from '../src/signing/sign.js';
import type { SidecarRuntime } from './runtime.js';
import { EtcdCrlSource } from './control/etcd-crl-source.js';
import { CrlWatchdog } from './control/crl-health.js';
import { loadTlsMaterial, type TlsMaterial } from './tls-material.js';
import type { ParsedCrl } from '../src/pki/crl.js';

export type TrustChange = (next: TlsMaterial, previous: TlsMaterial, why: string) => void;

/** CRLs enforced beside the files: etcd's (EtcdCrlSource), or a worker's copy of its control process's (cluster/mirrored-crls.ts). */
export interface CrlFeed {
  crls(): ParsedCrl[];
  /** The roots changed (tls.ca reloaded). */
  retrust(rootPem: string): void;
  close(): void;
}

export class Trust {
  private current: TlsMaterial;
  private signerNow: RequestSigner;
  private readonly listeners: TrustChange[] = [];
  /** Applies before anyone listened (CRLs from etcd during start-up): told to the first listener, so they are audited. */
  private early: { previous: TlsMaterial; why: string[] } | undefined;
  crlSource: EtcdCrlSource | undefined;
  /** Where the CRLs beside the files come from: crlSource, or a worker's mirror. */
  private feed: CrlFeed | undefined;
  private readonly watched: string[] = [];
  readonly watchdog: CrlWatchdog;

  /** Loads the TLS files; throws ConfigError when the sidecar's own certificate is unusable. */
  static load(cfg: SidecarConfig, rt: SidecarRuntime): Trust {
    const material = loadTlsMaterial(cfg.tls, cfg.shardId, rt.clock);
    if (material.ownRevoked) throw new ConfigError('tls.cert', `this shard's own certificate is not usable: ${material.ownRevoked}`);
    return new Trust(cfg, rt, material);
  }

  private constructor(
    private readonly cfg: SidecarConfig,
    private readonly rt: SidecarRuntime,
    material: TlsMaterial,
  ) {
    this.current = material;
    this.signerNow = this.makeSigner();
    this.watchdog = new CrlWatchdog(() => this.current.crlsByIssuer.values(), rt.clock, rt.log.child({ component: 'crl' }));
  }

  /**
   * Takes the CRLs published in etcd (or their cache) into force, and every newer one from now
   * on. Throws ConfigError when one of them revokes this sidecar's own certificate.
   */
  async followEtcd(etcd: Etcd3): Promise<void> {
    const source = await EtcdCrlSource.open({
      etcd,
      cluster: this.cfg.cluster,
      rootPem: this.current.ca,
      clock: this.rt.clock,
      held: (k) => this.current.crlsByIssuer.get(k),
      cacheFile: this.cfg.etcd!.crlCache,
      log: this.rt.log.child({ component: 'crl' }),
    });
    this.take(source);
    this.crlSource = source;
    source.onApply((name, crl) => this.apply(`CRL number ${crl.crl.crlNumber} of the ${name} CA from etcd`));
  }

  /**
   * A worker: the CRLs its control process accepted from etcd, in force from now on; `apply` after
   * each change. Throws ConfigError when one of them revokes this sidecar's own certificate.
   */
  followMirror(feed: CrlFeed): void {
    this.take(feed);
  }

  private take(feed: CrlFeed): void {
    try {
      const material = loadTlsMaterial(this.cfg.tls, this.cfg.shardId, this.rt.clock, feed.crls());
      if (material.ownRevoked) {
        throw new ConfigError('tls.cert', `this shard's certificate is refused by a CRL published in etcd (${material.ownRevoked}); issue a new certificate`);
      }
      this.current = material;
      this.signerNow = this.makeSigner();
    } catch (e) {
      feed.close();
      throw e;
    }
    this.feed = feed;
  }

  /** The CRLs in force beside the files (those a worker is to enforce too). */
  fedCrls(): ParsedCrl[] {
    return this.feed?.crls() ?? [];
  }

  get material(): TlsMaterial {
    return this.current;
  }

  /** Whether a request is signed on libuv's thread pool (signing.threadpool); the sidecar sets it. */
  offload: () => boolean = () => false;

  /** Signs outgoing mesh requests with the current certificate. */
  get signer(): RequestSigner {
    return this.signerNow;
  }

  private makeSigner(): RequestSigner {
    return new RequestSigner(this.current.key, this.cfg.shardId, this.current.serial, this.rt.clock, this.rt.random, () => this.offload());
  }

  onChange(listener: TrustChange): void {
    this.listeners.push(listener);
    if (this.early) listener(this.current, this.early.previous, this.early.why.join('; '));
    this.early = undefined;
  }

  /** Reloads when a certificate, key, root or CRL file changes (config `watchFiles`). */
  start(): void {
    this.watchdog.start();
    if (!this.cfg.watchFiles) return;
    const t = this.cfg.tls;
    for (const f of [t.cert, t.key, t.ca, ...t.crls]) {
      watchFile(f, { interval: 1000, persistent: false }, () => this.apply('file changed'));
      this.watched.push(f);
    }
  }

  /**
   * Loads the TLS files plus the CRLs from etcd and puts them in force; listeners follow. A bad
   * set of files changes nothing (false).
   */
  apply(why: string): boolean {
    let next: TlsMaterial;
    try {
      next = loadTlsMaterial(this.cfg.tls, this.cfg.shardId, this.rt.clock, this.feed?.crls() ?? []);
    } catch (e) {
      this.rt.log.error({ why, err: (e as Error).message }, 'TLS reload refused; keeping the current certificates');
      return false;
    }
    // A file touched but unchanged (or a renewal already applied, seen again by the watcher): nothing to follow.
    if (sameMaterial(next, this.current)) return true;
    const previous = this.current;
    this.current = next;
    this.signerNow = this.makeSigner();
    // New roots (a root rotation): etcd's CRLs are judged against them, and read again.
    if (next.ca !== previous.ca) this.feed?.retrust(next.ca);
    if (this.listeners.length === 0) {
      this.early ??= { previous, why: [] };
      this.early.why.push(why);
    }
    for (const l of this.listeners) l(next, previous, why);
    this.watchdog.check();
    return true;
  }

  close(): void {
    for (const f of this.watched) unwatchFile(f);
    this.watchdog.stop();
    this.feed?.close();
  }
}

function sameMaterial(a: TlsMaterial, b: TlsMaterial): boolean {
  if (a.certChain !== b.certChain || a.keyPem !== b.keyPem || a.ca !== b.ca || a.crls.join('') !== b.crls.join('')) return false;
  if (a.crlsByIssuer.size !== b.crlsByIssuer.size) return false;
  for (const [issuer, crl] of a.crlsByIssuer) if (b.crlsByIssuer.get(issuer)?.crlNumber !== crl.crlNumber) return false;
  return true;
}
