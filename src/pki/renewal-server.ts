// `themis-pki serve`: the online issuing service of the cluster CA. One route, POST /v1/renew:
// a shard presents its current certificate over mTLS and a CSR for a new key, and gets back its
// same identity on the new key, valid for the service's lifetime (docs/pki.md "Automatic
// renewal"). The CA's root, CRLs and revocation records are read again for every request, so a
// revocation recorded with `themis-pki revoke` stops renewals at once, before any CRL is out.
import { X509Certificate } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { AuditSink } from '../audit/audit-log.js';
import { ThemisError, errorBody } from '../errors.js';
import type { Logger } from '../log.js';
import type { Clock, Random } from '../runtime.js';
import { CA_NAMES, appendIssued, caExists, loadCaCert, readState, readText, type PkiLayout } from './ca-store.js';
import { issuedRecord } from './commands.js';
import { BACKDATE_MS, issueLeaf, serialHex, type Issuer } from './issue.js';
import { certToPem } from './pem.js';
import { presentedChain } from './presented-chain.js';
import { decideRenewal, parseCsr } from './renewal-policy.js';
import { PeerVerifier } from './verify.js';

export const RENEW_PATH = '/v1/renew';
const MAX_CSR_BYTES = 16 * 1024;

/** Shortest lifetime `serve` issues (`--lifetime`); `--allow-short-lifetime` (tests, drills) lowers it to a minute. */
export const MIN_LIFETIME_MS = 3_600_000;
export const MIN_TEST_LIFETIME_MS = 60_000;

export interface RenewalServiceOptions {
  layout: PkiLayout;
  /**
   * During a root rotation (`--previous DIR`): the old generation's PKI folder. Its shards renew
   * here too, into this folder's generation: its root and CRLs are trusted for the presented
   * certificate, its revocation records count, and its cluster CA may have issued it.
   */
  previous?: PkiLayout;
  /** The cluster CA, opened once (key in memory or in a PKCS#11 token). */
  issuer: Issuer;
  /** This service's own certificate chain and key (PEM), e.g. from `themis-pki issue-server`. */
  tls: { certChain: string; key: string };
  lifetimeMs: number;
  clock: Clock;
  random: Random;
  audit: AuditSink;
  log: Logger;
}

/** What a PKI folder contributes to checking a presented certificate, read again per request. */
async function readGeneration(l: PkiLayout): Promise<{ root: string; crls: string[]; revoked: string[]; clusterCa: string }> {
  const present = (await Promise.all(CA_NAMES.map(async (ca) => ((await caExists(l, ca)) ? ca : undefined)))).filter((ca) => ca !== undefined);
  const [crls, state, root, cluster] = await Promise.all([
    Promise.all(present.map((ca) => readText(l.caCrl(ca), `${ca} CRL`))), readState(l, 'cluster'), readText(l.caCert('root'), 'root certificate'), loadCaCert(l, 'cluster'),
  ]);
  return { root, crls, revoked: state.revoked.map((r) => r.serial), clusterCa: Buffer.from(cluster.subjectName.toArrayBuffer()).toString('hex') };
}

export class RenewalService {
  private server: Server | undefined;
  issued = 0;
  refused = 0;

  constructor(private readonly o: RenewalServiceOptions) {}

  private layouts(): PkiLayout[] {
    return [this.o.layout, ...(this.o.previous ? [this.o.previous] : [])];
  }

  async listen(port: number, host: string): Promise<number> {
    // A root that cannot be read stops the service now, not at its first renewal.
    await Promise.all(this.layouts().map((l) => readText(l.caCert('root'), 'root certificate')));
    this.server = createServer(
      {
        cert: this.o.tls.certChain,
        key: this.o.tls.key,
        // No `ca`: the chain is verified in code (decideRenewal), so each refusal has a reason, and
        // OpenSSL's own check would make Node 24 drop the issuers from it (presented-chain.ts).
        requestCert: true,
        rejectUnauthorized: false,
        minVersion: 'TLSv1.3',
      },
      (req, res) => void this.handle(req, res),
    );
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 15_000;
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, host, () => resolve());
    });
    return (this.server.address() as { port: number }).port;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server?.closeAllConnections();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    try {
      if (path === '/healthz' && req.method === 'GET') return answer(res, 200, 'application/json', '{"ok":true}\n');
      if (path !== RENEW_PATH) throw new ThemisError('ROUTE_NOT_FOUND', `no route ${path}; renewals go to POST ${RENEW_PATH}`);
      if (req.method !== 'POST') throw new ThemisError('METHOD_NOT_ALLOWED', `${RENEW_PATH} takes POST`, { allow: 'POST' });
      const body = await readBody(req);
      const pem = await this.renew(req.socket as TLSSocket, body);
      answer(res, 200, 'application/pem-certificate-chain', pem);
    } catch (e) {
      const b = errorBody(e);
      if (!(e instanceof ThemisError)) this.o.log.warn({ err: e }, 'renewal failed unexpectedly');
      answer(res, b.status_code, 'application/json; charset=utf-8', JSON.stringify(b) + '\n');
    }
  }

  private async renew(socket: TLSSocket, body: Buffer): Promise<string> {
    const chain = presentedChain(socket);
    const claimed = chain.length > 0 ? claim(chain[0]!) : undefined;
    try {
      const csr = await parseCsr(body);
      const L = this.o.layout;
      const gens = await Promise.all(this.layouts().map((l) => readGeneration(l)));
      const verifier = new PeerVerifier({ root: gens.map((g) => g.root).join(''), crls: gens.flatMap((g) => g.crls), clock: this.o.clock });
      const grant = decideRenewal({
        chain, csr, verifier,
        revoked: new Set(gens.flatMap((g) => g.revoked)),
        clusterCas: new Set(gens.map((g) => g.clusterCa)),
      });
      const now = Math.floor(this.o.clock.now() / 1000) * 1000;
      const cert = await issueLeaf({
        profile: 'shard',
        commonName: grant.commonName,
        dns: grant.dns,
        ips: grant.ips,
        uris: grant.uris,
        identity: grant.identity,
        publicKey: await grant.publicKey.export(),
        issuer: this.o.issuer,
        validity: { notBefore: new Date(now - BACKDATE_MS), notAfter: new Date(now + this.o.lifetimeMs) },
        random: this.o.random,
      });
      // On disk before it is handed out: `themis-pki revoke` finds every serial the CA issued.
      await appendIssued(L, 'cluster', issuedRecord(cert, 'shard', grant.identity.shardId));
      this.issued++;
      this.o.audit.record({
        event: 'CERTIFICATE_ISSUED', command: 'serve', reason: 'renewal',
        peer: { shardId: grant.identity.shardId, cn: grant.peer.subject, serial: serialHex(cert) },
        renewed_serial: grant.peer.serial, not_after: cert.notAfter.toISOString(),
      });
      this.o.log.info({ shard: grant.identity.shardId, serial: serialHex(cert), renewed: grant.peer.serial }, 'certificate renewed');
      return certToPem(cert) + certToPem(this.o.issuer.cert);
    } catch (e) {
      if (e instanceof ThemisError) {
        this.refused++;
        this.o.audit.record({ event: 'CERTIFICATE_RENEWAL_REFUSED', command: 'serve', code: e.code, message: e.message, peer: claimed, ...(e.details ?? {}) });
        this.o.log.warn({ code: e.code, peer: claimed, err: e.message }, 'renewal refused');
      }
      throw e;
    }
  }
}

/** What the presented leaf says of itself, for the audit line of a refusal (unverified). */
function claim(der: Uint8Array): { cn?: string; serial?: string } {
  try {
    const c = new X509Certificate(der);
    return { cn: c.subject.replace(/\n/g, ', '), serial: BigInt('0x' + c.serialNumber).toString(16) };
  } catch {
    return {};
  }
}

function answer(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_CSR_BYTES) throw new ThemisError('PAYLOAD_TOO_LARGE', `a renewal request is at most ${MAX_CSR_BYTES} bytes`);
    parts.push(chunk as Buffer);
  }
  return Buffer.concat(parts);
}
