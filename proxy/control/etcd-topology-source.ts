// The signed topology from etcd: watched, verified (operator chain, CRLs, capabilities, newer
// epoch, every registered shard's certified range) and applied atomically; every refusal is reported. The
// last verified topology is kept on disk, so a sidecar restarted while etcd is down serves
// from it; while etcd is unreachable the sidecar keeps routing by what it has.
import type { Etcd3 } from 'etcd3';
import { ConfigError } from '../../src/config/validate.js';
import { answerWithin, etcdKeys } from '../../src/control/etcd-keys.js';
import { KeepWatching } from '../../src/control/watch.js';
import { readSignedTopology } from '../../src/control/topology-store.js';
import { registeredCertifiedRanges, type CertifiedRange } from '../../src/control/certified-ranges.js';
import type { Logger } from '../../src/log.js';
import type { PeerVerifier } from '../../src/pki/verify.js';
import { verifySignedTopology, type SignedTopology, type TopologySigner } from '../../src/topology/signed.js';
import type { Topology } from '../../src/topology/topology.js';
import type { ChangeListener, RejectListener, TopologySource } from './topology-source.js';
import { readCache, writeCache } from './control-cache.js';

export interface EtcdTopologyOptions {
  etcd: Etcd3;
  cluster: string;
  verifier: () => PeerVerifier;
  /** This shard and the token range its certificate allows. */
  self: { shardId: string; start: bigint; end: bigint };
  cacheFile: string;
  log: Logger;
  /**
   * For a start without a cached topology: the lowest epoch to accept (the one other shards
   * serve, src/control/epoch-floor.ts), so that a replayed older topology is not applied.
   */
  floor?: () => Promise<number | undefined>;
}

export class EtcdTopologySource implements TopologySource {
  private topology!: Topology;
  private readonly changeListeners: ChangeListener[] = [];
  private readonly rejectListeners: RejectListener[] = [];
  private watcher: KeepWatching | undefined;
  private readonly key: string;
  private lastSeen = '';
  /** A value verified ahead of its publish (prepare), with the topology it was verified against. */
  private prepared: { raw: string; base: Topology; signed: unknown; topology: Topology; signer: TopologySigner } | undefined;
  /** Other shards' certified ranges as last read from their registrations (used when a read fails). */
  private knownRanges: ReadonlyMap<string, CertifiedRange> = new Map();
  /** The exact document in force, to tell a re-read of it from a conflicting one. */
  private currentDocument = '';
  private currentSigner: TopologySigner | undefined;
  /** Refusals before anyone listened (during open): handed to the first listener, so they are audited. */
  private early: Parameters<RejectListener>[] | undefined = [];
  /** Without a topology yet: the epoch the others serve (undefined: unknown). */
  private floor: number | undefined;
  private lastRefusal: string | undefined;
  private refreshing: Promise<void> | undefined;
  private nextRefresh: Promise<void> | undefined;

  private constructor(private readonly o: EtcdTopologyOptions) {
    this.key = etcdKeys(o.cluster).topology;
  }

  /** Loads the cached topology and/or etcd's; throws ConfigError when neither yields one. */
  static async open(o: EtcdTopologyOptions): Promise<EtcdTopologySource> {
    const s = new EtcdTopologySource(o);
    const cached = readCache(o.cacheFile, 'topology', o.log);
    if (cached !== undefined) {
      const v = await s.verify(cached, undefined, false);
      if (v.ok) {
        s.topology = v.topology;
        s.currentSigner = v.signer;
        s.currentDocument = (cached as SignedTopology).document;
      } else o.log.warn({ file: o.cacheFile, reason: v.reason, err: v.message }, 'cached topology no longer verifies; ignoring it');
    }
    try {
      if (!s.topology && o.floor) s.floor = await answerWithin(o.floor(), 2000).catch(() => undefined);
      await answerWithin(s.readNow());
    } catch (e) {
      o.log.warn({ err: (e as Error).message }, 'etcd unreachable at start; serving from the cached topology');
    }
    if (!s.topology) {
      const why = s.lastRefusal ? ` (refused: ${s.lastRefusal})` : '';
      throw new ConfigError('etcd', `no verified topology: etcd has none that verifies${why} and there is no usable cache at ${o.cacheFile}; publish one with themis-admin topology publish`);
    }
    s.watch();
    return s;
  }

  /**
   * Verifies a topology value: this shard's own certified range always, and every other shard's
   * from its registered certificate when etcd answers (at start from the cache, only its own).
   */
  private async verify(signed: unknown, current: Topology | undefined, peers = true) {
    const { shardId, start, end } = this.o.self;
    const verifier = this.o.verifier();
    let others = this.knownRanges;
    if (peers) {
      try {
        others = this.knownRanges = await answerWithin(registeredCertifiedRanges(this.o.etcd, this.o.cluster, verifier), 2000);
      } catch (e) {
        this.o.log.warn({ err: (e as Error).message, known: others.size }, 'cannot read the shards\' certificates; checking the certified ranges last read');
      }
    }
    return verifySignedTopology(signed, {
      verifier,
      current,
      cluster: this.o.cluster,
      certifiedRange: (id) => (id === shardId ? { start, end } : others.get(id)),
    });
  }

  private watch(): void {
    this.watcher = new KeepWatching({
      build: () => this.o.etcd.watch().key(this.key),
      onPut: (kv) => void this.consider(kv.value.toString('utf8')),
      resync: () => void this.readNow().catch(() => undefined),
      what: 'topology',
      log: this.o.log,
    });
  }

  private async readNow(): Promise<void> {
    const stored = await readSignedTopology(this.o.etcd, this.key);
    if (stored) await this.consider(stored.raw);
  }

  /** Verifies one value of the topology key and applies it if it is valid and newer. */
  private async consider(text: string): Promise<void> {
    if (text === this.lastSeen) return;
    this.lastSeen = text;
    // Verified by `prepare` against the topology still in force: applied without verifying again
    // (whether the watch or the publisher's own offer brings it first).
    const p = this.prepared;
    if (p && p.raw === text && p.base === this.topology) return this.apply(p.signed, p.topology, p.signer);
    let signed: unknown;
    try {
      signed = JSON.parse(text);
    } catch {
      return this.reject('malformed: not JSON');
    }
    // Judged against the topology in force when the verdict comes: another value applied while
    // this one was being verified (its base changed) means verifying again.
    let base: Topology;
    let v: Awaited<ReturnType<EtcdTopologySource['verify']>>;
    do {
      base = this.topology;
      v = await this.verify(signed, base);
    } while (this.topology !== base);
    if (!v.ok) {
      if (v.reason === 'not_newer' && (signed as SignedTopology).document === this.currentDocument) return; // the one in force
      return this.reject(`${v.reason}: ${v.message}`, v.signer);
    }
    if (!this.topology && this.floor !== undefined && v.topology.epoch < this.floor) {
      return this.reject(`below_floor: epoch ${v.topology.epoch} is older than epoch ${this.floor}, which other shards serve (a replayed topology?); waiting for a newer one`, v.signer);
    }
    this.apply(signed, v.topology, v.signer);
  }

  private apply(signed: unknown, topology: Topology, signer: TopologySigner): void {
    const prev = this.topology;
    this.topology = topology;
    this.currentSigner = signer;
    this.currentDocument = (signed as SignedTopology).document;
    this.prepared = undefined;
    writeCache(this.o.cacheFile, signed, 'topology', this.o.log);
    this.o.log.info({ epoch: topology.epoch, signer }, 'signed topology applied');
    if (prev) for (const l of this.changeListeners) l(topology, prev, signer);
  }

  private reject(reason: string, signer?: TopologySigner): void {
    this.lastRefusal = reason;
    this.o.log.warn({ reason, signer }, 'topology from etcd refused; keeping the current one');
    if (this.early) this.early.push([reason, undefined, signer]);
    for (const l of this.rejectListeners) l(reason, undefined, signer);
  }

  current(): Topology {
    return this.topology;
  }

  signer(): TopologySigner | undefined {
    return this.currentSigner;
  }

  /** Verifies `raw` against the topology in force now, for an `offer` of it soon after (a cutover prepares before its hold). */
  async prepare(raw: string): Promise<void> {
    const base = this.topology;
    let signed: unknown;
    try {
      signed = JSON.parse(raw);
    } catch {
      return;
    }
    const v = await this.verify(signed, base);
    this.prepared = v.ok ? { raw, base, signed, topology: v.topology, signer: v.signer } : undefined;
  }

  offer(raw: string): Promise<void> {
    return this.consider(raw);
  }

  /**
   * Reads the key again, verifying its value even if it was seen before. Many requests may ask
   * at once (each 421 does): a call joins the read that starts next, never one already under way
   * (it may have read before the value the caller waits for), so reads run one at a time.
   */
  refresh(): Promise<void> {
    if (!this.refreshing) {
      this.refreshing = this.readAgain().finally(() => (this.refreshing = undefined));
      return this.refreshing;
    }
    this.nextRefresh ??= this.refreshing.then(() => {
      this.nextRefresh = undefined;
      return this.refresh();
    });
    return this.nextRefresh;
  }

  private async readAgain(): Promise<void> {
    this.lastSeen = '';
    await this.readNow().catch((e: Error) => this.o.log.warn({ err: e.message }, 'topology refresh from etcd failed'));
  }

  onChange(listener: ChangeListener): void {
    this.changeListeners.push(listener);
  }

  onReject(listener: RejectListener): void {
    this.rejectListeners.push(listener);
    for (const args of this.early ?? []) listener(...args);
    this.early = undefined;
  }

  close(): void {
    this.watcher?.close();
  }
}
