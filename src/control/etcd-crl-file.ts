// The file etcd reads with --client-crl-file. etcd 3.4 reads it at every new client connection,
// but parses only one CRL from it and compares nothing but serial numbers (it checks neither
// the issuer nor the signature). Our shards and operators come from different CAs, so no CA's
// own CRL can serve: this file is a serial list in CRL form. Its revoked serials are those of
// every CA's CRL in etcd that verifies against the root (crl-store.ts), added to those it listed
// before (it never shrinks: an unverifiable or older CRL put into etcd cannot undo a
// revocation); it is signed with a
// throwaway key under an issuer name that says what it is, and must never be trusted as a
// CA's CRL. It is written atomically (rename), so etcd never reads half of it.
import { webcrypto } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Etcd3 } from 'etcd3';
import { x509 } from '../pki/x509.js';
import { CrlTrust } from '../pki/crl-trust.js';
import type { Clock } from '../runtime.js';
import { readStoredCrls, verifiedCrls } from './crl-store.js';

export const ETCD_CRL_ISSUER = 'CN=themis-mesh revoked serials for etcd (merged; not a CA CRL), O=themis-mesh';

export interface RevokedSerial {
  serial: string;
  revokedAt: Date;
}

/** Every revoked serial in the verified CRLs etcd holds. */
export async function revokedSerialsInEtcd(etcd: Etcd3, cluster: string, rootPem: string, clock: Clock): Promise<RevokedSerial[]> {
  const crls = verifiedCrls(await readStoredCrls(etcd, cluster), new CrlTrust(rootPem, clock));
  const out = new Map<string, RevokedSerial>();
  for (const { value } of crls.values()) {
    for (const [serial, r] of value.crl.revoked) if (r.reason !== 'removeFromCRL') out.set(serial, { serial, revokedAt: r.date });
  }
  return [...out.values()].sort((a, b) => a.serial.localeCompare(b.serial));
}

/** The DER of a CRL listing `serials`, signed with a key made for it and thrown away. */
export async function etcdCrlDer(serials: readonly RevokedSerial[], now: Date): Promise<Buffer> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, false, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const crl = await x509.X509CrlGenerator.create({
    issuer: ETCD_CRL_ISSUER,
    thisUpdate: now,
    nextUpdate: new Date(now.getTime() + 365 * 86_400_000),
    signingKey: keys.privateKey,
    signingAlgorithm: alg,
    entries: serials.map((s) => ({ serialNumber: s.serial.length % 2 ? '0' + s.serial : s.serial, revocationDate: s.revokedAt })),
  });
  return Buffer.from(crl.rawData);
}

/** The serials a file written by writeEtcdCrlFile lists (none when there is no such file). */
export function readEtcdCrlFile(path: string): RevokedSerial[] {
  let der: Buffer;
  try {
    der = readFileSync(path);
  } catch {
    return [];
  }
  const crl = new x509.X509Crl(der);
  return crl.entries.map((e) => ({ serial: BigInt('0x' + e.serialNumber).toString(16), revokedAt: e.revocationDate }));
}

/**
 * Revocations are for good in our PKI (no certificate hold): the list only grows. A CRL in etcd
 * that no longer verifies, or an older one put back, must not take serials off it.
 */
export function unionSerials(a: readonly RevokedSerial[], b: readonly RevokedSerial[]): RevokedSerial[] {
  const out = new Map<string, RevokedSerial>();
  for (const s of [...a, ...b]) if (!out.has(s.serial)) out.set(s.serial, s);
  return [...out.values()].sort((x, y) => x.serial.localeCompare(y.serial));
}

/**
 * Keeps the file at `path` current: each refresh adds the serials etcd's verified CRLs revoke
 * to those the file lists already. Refreshes run one at a time (one asked for meanwhile runs
 * after); a failed write is tried again by the next refresh.
 */
export class EtcdCrlFollower {
  private written: string | undefined;
  private running: Promise<void> | undefined;
  private again = false;

  constructor(
    private readonly path: string,
    private readonly serialsNow: () => Promise<RevokedSerial[]>,
    private readonly onWrite: (count: number) => void = () => undefined,
    private readonly onError: (e: Error) => void = () => undefined,
  ) {}

  /** Runs a refresh, or marks one to run after the one in progress; resolves when done. */
  refresh(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        try {
          const serials = unionSerials(readEtcdCrlFile(this.path), await this.serialsNow());
          const list = serials.map((s) => s.serial).join(',');
          if (list !== this.written) {
            await writeEtcdCrlFile(this.path, serials, new Date());
            this.written = list;
            this.onWrite(serials.length);
          }
        } catch (e) {
          this.onError(e as Error);
        }
      } while (this.again);
    })().finally(() => (this.running = undefined));
    return this.running;
  }
}

/** Writes the file atomically; returns how many serials it lists. */
export async function writeEtcdCrlFile(path: string, serials: readonly RevokedSerial[], now: Date): Promise<number> {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, await etcdCrlDer(serials, now), { mode: 0o644 });
  renameSync(tmp, path);
  return serials.length;
}
