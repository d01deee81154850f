// This sidecar's TLS material, loaded from the files its config names: certificate chain,
// private key (made a KeyObject once), trusted roots (a trust bundle) and the CRL of every CA. Reloaded on
// SIGHUP or when the files change; a bad set of files is refused as a whole.
import { readFileSync } from 'node:fs';
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { ConfigError } from '../src/config/validate.js';
import type { SidecarConfig } from '../src/config/sidecar.js';
import { PeerVerifier, type Purpose } from '../src/pki/verify.js';
import { parseTrustBundle } from '../src/pki/trust-bundle.js';
import { crlToPem, parsePem, toPem } from '../src/pki/pem.js';
import { x509 } from '../src/pki/x509.js';
import { serialHex } from '../src/pki/issue.js';
import { latestPerIssuer, parseCrls, type ParsedCrl } from '../src/pki/crl.js';
import type { ThemisIdentity } from '../src/pki/identity-extension.js';
import type { Clock } from '../src/runtime.js';

export interface TlsMaterial {
  /** PEM: leaf then intermediate — what we present. */
  readonly certChain: string;
  /** Unencrypted PKCS#8 PEM, in memory only (Node's TLS options take PEM). */
  readonly keyPem: string;
  readonly key: KeyObject;
  readonly ca: string;
  readonly crls: readonly string[];
  readonly serial: string;
  readonly identity: ThemisIdentity;
  readonly notAfter: Date;
  /** Hex DER name of the CA that issued our certificate: the cluster CA. */
  readonly issuerName: string;
  /**
   * The CAs whose certificates may act as shards (peer-identity.ts): our own cluster CA, and the
   * cluster CAs tls.ca names — during a root rotation, the other generation's (trust-bundle.ts).
   * (The role is bound to the CA's kind separately: an operator or client CA never qualifies.)
   */
  readonly shardIssuers: ReadonlySet<string>;
  /** Serials (hex) revoked by any CRL in force. */
  readonly revoked: ReadonlySet<string>;
  /** Earliest nextUpdate of the CRLs (ms), or Infinity when none sets one. */
  readonly crlNextUpdate: number;
  /** The CRL in force per issuer (hex DER name): highest number among files and etcd. */
  readonly crlsByIssuer: ReadonlyMap<string, ParsedCrl>;
  /**
   * Set when a CRL in force (file or etcd) revokes this sidecar's own certificate: the
   * material is still applied, so everyone else's revocations are enforced; at start-up the
   * sidecar refuses to run with it.
   */
  readonly ownRevoked: string | undefined;
  /** Verifies presented chains against this root and these CRLs. */
  readonly verifier: PeerVerifier;
}

function read(path: string, field: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(field, `cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/**
 * Loads and cross-checks the files; throws ConfigError naming the field at fault. `extraCrls`
 * are CRLs already verified elsewhere (from etcd); per issuer the highest CRL number wins.
 */
export function loadTlsMaterial(tls: SidecarConfig['tls'], shardId: string, clock: Clock, extraCrls: readonly ParsedCrl[] = []): TlsMaterial {
  const certChain = read(tls.cert, 'tls.cert');
  const keyText = read(tls.key, 'tls.key');
  const ca = read(tls.ca, 'tls.ca');
  const crls = tls.crls.map((p, i) => read(p, `tls.crls[${i}]`));
  const passphrase = tls.keyPassphraseFile ? read(tls.keyPassphraseFile, 'tls.keyPassphraseFile').replace(/\r?\n$/, '') : undefined;
  let key: KeyObject;
  try {
    key = createPrivateKey(passphrase === undefined ? keyText : { key: keyText, passphrase });
  } catch (e) {
    throw new ConfigError('tls.key', `${tls.key} does not open (${(e as Error).message}); check the file and tls.keyPassphraseFile`);
  }
  let chainDer: Uint8Array[];
  try {
    chainDer = parsePem(certChain, tls.cert).filter((b) => b.label === 'CERTIFICATE').map((b) => new Uint8Array(b.der));
  } catch (e) {
    throw new ConfigError('tls.cert', (e as Error).message);
  }
  if (chainDer.length < 2) {
    throw new ConfigError('tls.cert', `${tls.cert} must hold this shard's certificate followed by the cluster CA certificate (the chain file themis-pki writes)`);
  }
  // Each CRL is parsed once; per issuer the highest number (file or etcd) is the one in force.
  let inForce: Map<string, ParsedCrl>;
  let verifier: PeerVerifier;
  let clusterCas: string[];
  try {
    clusterCas = parseTrustBundle(ca, tls.ca).clusterCas;
    inForce = latestPerIssuer([...crls.flatMap((c, i) => parseCrls(c, tls.crls[i]!)), ...extraCrls]);
    verifier = new PeerVerifier({ root: ca, crls: [...inForce.values()], clock });
  } catch (e) {
    throw new ConfigError('tls.ca / tls.crls', (e as Error).message);
  }
  // The chain itself must be sound; whether a CRL (from a file or etcd) revokes it is a state
  // the sidecar reports (ownRevoked) while it goes on enforcing everyone else's revocations.
  // Only a revoked chain is verified a second time, without the CRLs, to learn the rest.
  const checked = verifier.verify(chainDer, 'serverAuth');
  const ownRevoked = !checked.ok && checked.reason === 'revoked' ? `${checked.reason}: ${checked.message}` : undefined;
  const own = ownRevoked ? verifier.verify(chainDer, 'serverAuth', { revocation: false }) : checked;
  if (!own.ok) {
    throw new ConfigError('tls.cert', `this shard's own certificate is not usable: ${own.reason}: ${own.message}`);
  }
  if (own.peer.identity.shardId !== shardId) {
    throw new ConfigError('shardId', `"${shardId}" but the certificate in tls.cert is for "${own.peer.identity.shardId || '(no shard)'}"`);
  }
  if (!new X509Certificate(Buffer.from(chainDer[0]!)).checkPrivateKey(key)) {
    throw new ConfigError('tls.key', `${tls.key} is not the private key of the certificate in ${tls.cert}`);
  }
  const parsed = [...inForce.values()];
  return Object.freeze({
    // Re-encoded from what was parsed: Node's TLS takes only well-formed PEM (no text between blocks).
    certChain: chainDer.map((d) => toPem('CERTIFICATE', d)).join(''),
    keyPem: key.export({ type: 'pkcs8', format: 'pem' }) as string,
    key,
    ca,
    crls: Object.freeze(parsed.map((c) => crlToPem(c.der))),
    serial: own.peer.serial,
    identity: own.peer.identity,
    notAfter: own.peer.notAfter,
    issuerName: own.peer.issuerName,
    shardIssuers: new Set([own.peer.issuerName, ...clusterCas]),
    revoked: new Set(parsed.flatMap((p) => [...p.revoked.keys()])),
    crlNextUpdate: Math.min(...parsed.map((p) => p.nextUpdate?.getTime() ?? Infinity)),
    crlsByIssuer: inForce,
    ownRevoked,
    verifier,
  });
}

/**
 * What becomes of a live session when the TLS material changes, judged by the peer's chain under
 * the new material: 'keep' if it still verifies; 'drain' (GOAWAY: streams in flight finish, new
 * requests open a new session) if its issuer is merely no longer trusted — a root removed from
 * the bundle at the end of a rotation, whose sessions were admitted while it was trusted; 'cut'
 * (destroyed now) for every other refusal: revoked, CA revoked, expired. A drained session that
 * still has streams open after DRAIN_UNTRUSTED_MS is cut.
 */
export type SessionVerdict = 'keep' | 'drain' | 'cut';
/** How long a drained session may take to finish its streams before it is cut anyway. */
export const DRAIN_UNTRUSTED_MS = 10_000;
export function sessionVerdict(m: TlsMaterial, chain: ReadonlyArray<Uint8Array>, purpose: Purpose): SessionVerdict {
  const v = m.verifier.verify(chain, purpose);
  return v.ok ? 'keep' : v.reason === 'unknown_issuer' ? 'drain' : 'cut';
}

/** Subject, serial and notAfter (ms) of every root certificate in tls.ca: the trust anchors (not the cluster CAs it names). */
export function trustAnchors(caPem: string): { subject: string; serial: string; notAfter: number }[] {
  return parseTrustBundle(caPem, 'tls.ca').roots.map((der) => new x509.X509Certificate(der)).map((c) => ({ subject: c.subject, serial: serialHex(c), notAfter: c.notAfter.getTime() }));
}
