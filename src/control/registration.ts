// A sidecar's registration in etcd (the seed's PKI shard discovery): its certificate and mesh
// endpoint, and an `alive` key on a lease that it keeps alive — the key disappears a few
// seconds after the sidecar dies. Re-registers by itself when etcd comes back.
import type { Etcd3, Lease } from 'etcd3';
import type { Logger } from '../log.js';
import { etcdKeys } from './etcd-keys.js';

export interface RegistrationInfo {
  cluster: string;
  shardId: string;
  certPem: string;
  serial: string;
  notBefore: string;
  notAfter: string;
  capabilities: readonly string[];
  endpoint: { host: string; port: number; datacenter: string };
}

export class Registration {
  private lease: Lease | undefined;
  private stopped = false;
  private retry: NodeJS.Timeout | undefined;

  constructor(
    private readonly etcd: Etcd3,
    private info: RegistrationInfo,
    private readonly log: Logger,
    /** Told whether etcd answers: each keepalive, registration and failure. */
    private readonly onConnectivity: (connected: boolean) => void = () => undefined,
    private readonly ttlSeconds = 5,
  ) {}

  /** Registers now if etcd answers; otherwise keeps trying in the background. Never throws. */
  async start(): Promise<boolean> {
    try {
      await this.register();
      return true;
    } catch (e) {
      this.onConnectivity(false);
      this.log.warn({ err: (e as Error).message }, 'etcd registration failed; retrying');
      this.schedule();
      return false;
    }
  }

  private schedule(): void {
    if (this.stopped || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      void this.start();
    }, 2000);
    this.retry.unref();
  }

  private async register(): Promise<void> {
    if (this.stopped) return;
    const k = etcdKeys(this.info.cluster);
    const i = this.info;
    await this.etcd
      .put(k.shardCertificate(i.shardId))
      .value(JSON.stringify({ cert_pem: i.certPem, serial_number: i.serial, not_before: i.notBefore, not_after: i.notAfter, capabilities: i.capabilities }));
    await this.etcd.put(k.shardEndpoint(i.shardId)).value(JSON.stringify(i.endpoint));
    const lease = this.etcd.lease(this.ttlSeconds, { autoKeepAlive: true });
    lease.on('keepaliveSucceeded', () => this.onConnectivity(true));
    lease.on('keepaliveFailed', () => this.onConnectivity(false));
    lease.on('lost', () => {
      this.onConnectivity(false);
      if (this.lease !== lease) return;
      this.lease = undefined;
      this.log.warn('etcd lease lost; registering again');
      this.schedule();
    });
    await lease.put(k.shardAlive(i.shardId)).value(JSON.stringify({ since: new Date().toISOString(), pid: process.pid }));
    if (this.stopped) {
      // stop() ran while this registration was in flight: take it back at once.
      await lease.revoke().catch(() => undefined);
      return;
    }
    this.lease = lease;
    this.onConnectivity(true);
    this.log.info({ shard: i.shardId }, 'registered in etcd');
  }

  /**
   * The sidecar's certificate changed (rotation): the registration now names the new one, at
   * once when registered (else at the next registration). Without this, etcd kept the old
   * certificate and `themis-admin shards` called a rotated shard revoked once the old one was.
   */
  async updateCertificate(cert: Pick<RegistrationInfo, 'certPem' | 'serial' | 'notBefore' | 'notAfter' | 'capabilities'>): Promise<void> {
    this.info = { ...this.info, ...cert };
    if (!this.lease || this.stopped) return;
    const i = this.info;
    await this.etcd
      .put(etcdKeys(i.cluster).shardCertificate(i.shardId))
      .value(JSON.stringify({ cert_pem: i.certPem, serial_number: i.serial, not_before: i.notBefore, not_after: i.notAfter, capabilities: i.capabilities }))
      .then(() => this.log.info({ shard: i.shardId, serial: i.serial }, 'registered the rotated certificate in etcd'))
      .catch((e: Error) => {
        // etcd is away: the next registration (after the lease is lost) writes it.
        this.log.warn({ err: e.message }, 'could not register the rotated certificate in etcd yet');
      });
  }

  /** Puts a status value under `key` on this registration's lease (gone when the sidecar is); never throws. */
  async report(key: string, value: unknown): Promise<void> {
    await this.lease?.put(key).value(JSON.stringify(value)).catch((e: Error) => this.log.debug({ err: e.message }, 'status report to etcd failed'));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    const lease = this.lease;
    this.lease = undefined;
    await lease?.revoke().catch(() => undefined);
  }
}
