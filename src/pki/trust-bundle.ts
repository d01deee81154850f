// A trust bundle: the roots trusted at once, as one PEM file of CERTIFICATE blocks (a single
// root is a bundle of one). Two roots are trusted together only during a root rotation
// (docs/pki.md "Rotating the root"). Beside the roots it may name this cluster's cluster CAs:
// during a rotation the new generation's cluster CA issues shards too, and a sidecar lets only
// its own cluster CA's certificates act as shards unless the bundle names another
// (peer-identity.ts). Every CA in it must carry its own subject name: chains are built and CRLs
// are held by the issuer's name. A bundle breaking a rule is refused as a whole.
import { Buffer } from 'node:buffer';
import { kindClaimOf } from './ca-kind.js';
import { CA_NAMES, PkiLayout, caExists, loadCaCert, readText, type CaName } from './ca-store.js';
import { invalid } from './errors.js';
import { bad, certToPem, certsFromPem } from './pem.js';
import { x509 } from './x509.js';

export interface TrustBundle {
  /** DER of every root (self-issued CA certificate), in file order, duplicates dropped. */
  roots: Uint8Array[];
  /** Hex DER names of the cluster CAs the bundle names: they may issue shards of this cluster. */
  clusterCas: string[];
}

const hexName = (n: x509.Name | { toArrayBuffer(): ArrayBuffer }) => Buffer.from(n.toArrayBuffer()).toString('hex');

/** Parses a trust bundle (PEM); one root's DER passes through unread (the caller decodes it). Throws PkiError. */
export function parseTrustBundle(input: string | Uint8Array, field: string): TrustBundle {
  if (typeof input !== 'string') return { roots: [input], clusterCas: [] };
  const seen = new Map<string, string>(); // name → base64 DER
  const out: TrustBundle = { roots: [], clusterCas: [] };
  for (const cert of certsFromPem(input, field)) {
    const der = new Uint8Array(cert.rawData);
    const name = hexName(cert.subjectName);
    const same = seen.get(name);
    if (same === Buffer.from(der).toString('base64')) continue; // the same certificate listed twice
    if (same) throw bad(field, `holds two CA certificates named "${cert.subject}"; each CA of a trust bundle needs its own name (give the new generation another --cn)`);
    const bc = cert.getExtension(x509.BasicConstraintsExtension);
    if (!bc?.ca) throw bad(field, `"${cert.subject}" is not a CA certificate, so it cannot be a trusted root`);
    seen.set(name, Buffer.from(der).toString('base64'));
    if (name === hexName(cert.issuerName)) out.roots.push(der);
    else if (kindClaimOf(cert).kind === 'cluster') out.clusterCas.push(name);
    else throw bad(field, `"${cert.subject}" is neither a root nor a cluster CA; a trust bundle holds roots and this cluster's cluster CAs only`);
  }
  if (out.roots.length === 0) throw bad(field, 'holds no root (self-issued CA certificate)');
  return out;
}

/** The roots of a bundle (parseTrustBundle). */
export function trustBundleDer(input: string | Uint8Array, field: string): Uint8Array[] {
  return parseTrustBundle(input, field).roots;
}

export interface BundledPki {
  dir: string;
  root: string; // subject
  cas: { ca: CaName; subject: string }[];
}

/**
 * The trust bundle and CRL bundle of one or more PKI folders (themis-pki trust-bundle): every
 * root and cluster CA, and every CA's current CRL. Refuses folders whose CAs share a name — across folders too,
 * since chains and CRLs are matched by the issuer's name — so a new root generation must carry
 * new names (init-root / create-intermediate --cn).
 */
export async function buildTrustBundle(dirs: readonly string[]): Promise<{ bundlePem: string; crlsPem: string; pkis: BundledPki[] }> {
  const names = new Map<string, string>();
  const pkis: BundledPki[] = [];
  let rootsPem = '';
  let crlsPem = '';
  let clusterPem = '';
  for (const dir of dirs) {
    const layout = new PkiLayout(dir);
    const pki: BundledPki = { dir: layout.dir, root: '', cas: [] };
    for (const ca of CA_NAMES) {
      if (ca !== 'root' && !(await caExists(layout, ca))) continue;
      const cert = await loadCaCert(layout, ca);
      const key = Buffer.from(cert.subjectName.toArrayBuffer()).toString('hex');
      const where = `${layout.caCert(ca)}`;
      const clash = names.get(key);
      if (clash) throw invalid(where, `is named "${cert.subject}" like ${clash}; each CA trusted at once needs its own name (make the new generation with --cn)`);
      names.set(key, where);
      if (ca === 'root') {
        pki.root = cert.subject;
        rootsPem += certToPem(cert);
      }
      if (ca === 'cluster') clusterPem += certToPem(cert);
      pki.cas.push({ ca, subject: cert.subject });
      crlsPem += (await readText(layout.caCrl(ca), `${ca} CRL`)).trimEnd() + '\n';
    }
    pkis.push(pki);
  }
  const bundlePem = rootsPem + clusterPem;
  parseTrustBundle(bundlePem, 'bundle'); // the same rules a sidecar applies when it loads the file
  return { bundlePem, crlsPem, pkis };
}
