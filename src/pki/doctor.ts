// `themis-pki doctor`: every certificate and CRL under a PKI folder with the days it has left,
// judged against two thresholds (certificates, CRLs), for cron and CI. It reads files only;
// trust (signatures, revocation) is `themis-admin check`'s and the sidecars' job.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join, relative } from 'node:path';
import { parseCrl } from './crl.js';
import { PkiError } from './errors.js';
import { serialHex } from './issue.js';
import { parseCertDer, parsePem } from './pem.js';
import { x509 } from './x509.js';

const DAY = 86_400_000;

export interface DoctorItem {
  /** Path relative to the PKI folder: the first file a certificate was found in (sorted walk, chains last). */
  file: string;
  type: 'certificate' | 'crl';
  /** A certificate's subject; a CRL's issuer. */
  name: string;
  serial?: string;
  crlNumber?: string;
  ca?: boolean;
  /** notAfter of a certificate, nextUpdate of a CRL (null: a CRL without one never goes stale). */
  deadline: string | null;
  daysLeft: number | null;
  status: 'ok' | 'expiring' | 'expired';
}

export interface DoctorReport {
  dir: string;
  thresholds: { certificateDays: number; crlDays: number };
  items: DoctorItem[];
  /** Files that do not parse (keys are skipped, not listed); any makes the report fail. */
  unreadable: { file: string; problem: string }[];
  ok: boolean;
}

async function pemFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch((e: NodeJS.ErrnoException) => {
    throw new PkiError('NOT_FOUND', dir, `cannot read the PKI folder (${e.code})`);
  });
  for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await pemFiles(p)));
    else if (e.isFile() && /\.(pem|crt|crl)$/.test(e.name)) out.push(p);
  }
  return out;
}

function judge(deadline: Date | undefined, now: number, thresholdDays: number): Pick<DoctorItem, 'deadline' | 'daysLeft' | 'status'> {
  if (!deadline) return { deadline: null, daysLeft: null, status: 'ok' };
  const left = (deadline.getTime() - now) / DAY;
  return {
    deadline: deadline.toISOString(),
    daysLeft: Math.floor(left * 10) / 10,
    status: left <= 0 ? 'expired' : left < thresholdDays ? 'expiring' : 'ok',
  };
}

/** Walks `dir` (sorted), reading every .pem/.crt/.crl; a certificate met twice (chains) is listed once. */
export async function doctor(dir: string, now: number, certificateDays: number, crlDays: number): Promise<DoctorReport> {
  const items: DoctorItem[] = [];
  const unreadable: DoctorReport['unreadable'] = [];
  const seen = new Set<string>();
  // Chains last: a CA certificate is reported under its own cert.pem, not a leaf's chain.
  const files = await pemFiles(dir);
  const isChain = (p: string) => /chain\.pem$/.test(p);
  for (const path of [...files.filter((p) => !isChain(p)), ...files.filter(isChain)]) {
    const file = relative(dir, path);
    try {
      const blocks = parsePem(await fs.readFile(path, 'utf8'), file);
      if (blocks.every((b) => b.label.endsWith('PRIVATE KEY'))) continue;
      for (const b of blocks) {
        const id = createHash('sha256').update(b.der).digest('hex');
        if (seen.has(id)) continue;
        seen.add(id);
        if (b.label === 'CERTIFICATE') {
          const c = parseCertDer(b.der, file);
          const ca = c.getExtension(x509.BasicConstraintsExtension)?.ca === true;
          items.push({ file, type: 'certificate', name: c.subject, serial: serialHex(c), ca, ...judge(c.notAfter, now, certificateDays) });
        } else if (b.label === 'X509 CRL') {
          const crl = parseCrl(b.der, file);
          items.push({ file, type: 'crl', name: crl.issuer, crlNumber: crl.crlNumber?.toString(), ...judge(crl.nextUpdate, now, crlDays) });
        }
      }
    } catch (e) {
      unreadable.push({ file, problem: e instanceof PkiError ? e.problem : (e as Error).message });
    }
  }
  const ok = unreadable.length === 0 && items.every((i) => i.status === 'ok');
  return { dir, thresholds: { certificateDays, crlDays }, items, unreadable, ok };
}

export function renderDoctor(r: DoctorReport): string {
  const rows = r.items.map((i) => {
    const days = i.daysLeft === null ? 'never' : i.daysLeft.toFixed(1);
    const what = i.type === 'crl' ? `CRL #${i.crlNumber ?? '?'} of ${i.name}` : `${i.ca ? 'CA ' : ''}${i.name} (serial ${i.serial})`;
    const flag = i.status === 'ok' ? '' : `  ${i.status.toUpperCase()}`;
    return `${days.padStart(8)}  ${(i.deadline ?? '-').padEnd(24)}  ${i.file}  ${what}${flag}`;
  });
  const bad = r.items.filter((i) => i.status !== 'ok').length;
  const t = r.thresholds;
  const summary = bad === 0
    ? `ok: ${r.items.length} certificates and CRLs, none within ${t.certificateDays} days (certificates) or ${t.crlDays} days (CRLs) of its deadline`
    : `${bad} of ${r.items.length} expired or within ${t.certificateDays} days (certificates) or ${t.crlDays} days (CRLs) of the deadline: rotate or re-sign them`;
  const lines = [`${'days'.padStart(8)}  ${'not after / next update'.padEnd(24)}  file  what`, ...rows];
  for (const u of r.unreadable) lines.push(`unreadable: ${u.file}: ${u.problem}`);
  return [...lines, summary].join('\n') + '\n';
}
