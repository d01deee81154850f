// A trust bundle: the roots trusted at once, as one PEM file of CERTIFICATE blocks (a single
// root is a bundle of one). Two roots are trusted together only during a root rotation
// (docs/pki.md "Rotating the root"). Every root must carry its own subject name: chains are
// built and CRLs are held by the issuer's name, so two roots of one name could vouch for each
// other's intermediates' CRLs. A bundle breaking that is refused as a whole.
import { CA_NAMES, PkiLayout, caExists, loadCaCert, readText, type CaName } from './ca-store.js';
import { invalid } from './errors.js';
import { bad, certToPem, certsFromPem } from './pem.js';
import { x509 } from './x509.js';

/**
 * The DER of every root in a bundle, in file order, duplicates dropped; one root's DER passes
 * through unread (the caller decodes it). Throws PkiError.
 */
export function trustBundleDer(input: string | Uint8Array, field: string): Uint8Array[] {
  if (typeof input !== 'string') return [input];
  const seen = new Map<string, { subject: string; der: Uint8Array; fp: string }>();
  const out: Uint8Array[] = [];
  for (const cert of certsFromPem(input, field)) {
    const der = new Uint8Array(cert.rawData);
    const name = Buffer.from(cert.subjectName.toArrayBuffer()).toString('hex');
    const fp = Buffer.from(der).toString('base64');
    const same = seen.get(name);
    if (same?.fp === fp) continue; // the same root listed twice
    if (same) throw bad(field, `holds two roots named "${cert.subject}"; each root of a trust bundle needs its own name (give the new root another --cn)`);
    const bc = cert.getExtension(x509.BasicConstraintsExtension);
    if (!bc?.ca) throw bad(field, `"${cert.subject}" is not a CA certificate, so it cannot be a trusted root`);
    seen.set(name, { subject: cert.subject, der, fp });
    out.push(der);
  }
  return out;
}

export interface BundledPki {
  dir: string;
  root: string; // subject
  cas: { ca: CaName; subject: string }[];
}

/**
 * The trust bundle and CRL bundle of one or more PKI folders (themis-pki trust-bundle): every
 * root, and every CA's current CRL. Refuses folders whose CAs share a name — across folders too,
 * since chains and CRLs are matched by the issuer's name — so a new root generation must carry
 * new names (init-root / create-intermediate --cn).
 */
export async function buildTrustBundle(dirs: readonly string[]): Promise<{ rootsPem: string; crlsPem: string; pkis: BundledPki[] }> {
  const names = new Map<string, string>();
  const pkis: BundledPki[] = [];
  let rootsPem = '';
  let crlsPem = '';
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
      pki.cas.push({ ca, subject: cert.subject });
      crlsPem += (await readText(layout.caCrl(ca), `${ca} CRL`)).trimEnd() + '\n';
    }
    pkis.push(pki);
  }
  trustBundleDer(rootsPem, 'bundle'); // the same rules a sidecar applies when it loads the file
  return { rootsPem, crlsPem, pkis };
}
