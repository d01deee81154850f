// `themis-admin crl publish|show`: distributing CRLs through etcd. Sidecars watch `crl/` and
// apply a CRL only if its issuer signed it and its number is higher than the one they hold;
// publish refuses anything they would refuse, so the operator hears about it first.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { connectEtcd } from '../control/etcd.js';
import { CrlPublishError, caOfSlot, crlValue, publishCrl, readStoredCrls } from '../control/crl-store.js';
import { CA_NAMES, type CaName } from '../pki/ca-store.js';
import { CrlTrust } from '../pki/crl-trust.js';
import { keyFromFlags } from './admin-key.js';
import { systemClock } from '../runtime.js';
import { parseFlags, requireFlag, readFlagFile, etcdCall, etcdFlag, UsageError, fromContext } from './cli-common.js';

export const CRL_USAGE = `themis-admin crl publish --ca root|cluster|operator|client --pki DIR [--file CRL.pem] [--next]
        [--trust TRUST.pem] --etcd https://HOST:2379[,…] --cert CHAIN.pem --key KEY.pem
        [--key-passphrase-file FILE] --cluster NAME
  Puts the CA's signed CRL (default DIR/{ca}/crl.pem, as 'themis-pki crl' writes it) and the
  CA's certificate into /themis/{cluster}/crl/{ca}, and refreshes crl/revoked. Refused unless
  the CA signed it and its CRL number is higher than the published one. --ca always names the
  CA here and must be given: a context's ca (the root certificate) does not stand in for it.
  During a root rotation: --next publishes the new PKI's CRL under crl/next-{ca}, and --trust
  (the trust bundle, default DIR/root/cert.pem) is what the CRL and etcd's certificate must
  chain to (docs/pki.md "Rotating the root").
themis-admin crl show --root ROOT.pem --etcd https://HOST:2379 --cert CHAIN.pem --key KEY.pem
        [--key-passphrase-file FILE] --cluster NAME [--json]
  Lists the CRLs in etcd, each verified as a sidecar would, with their revoked serials.`;

const ETCD_FLAGS = {
  etcd: { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
  'key-passphrase-file': { type: 'string' },
  cluster: { type: 'string' },
} as const;

export async function crlCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === 'publish') return publish(rest);
  if (sub === 'show') return show(rest);
  throw new UsageError(`unknown crl command "${sub ?? ''}"; use publish or show`);
}

/** The etcd client identity: a certificate chain and its (possibly encrypted) key. */
async function etcdClient(values: { etcd?: string; cert?: string; key?: string; 'key-passphrase-file'?: string }, caPem: string) {
  const endpoints = etcdFlag(values.etcd);
  const certPem = readFlagFile(requireFlag(values.cert, 'cert', 'pki/operators/admin/chain.pem'), 'cert');
  const keyPath = requireFlag(values.key, 'key', 'pki/operators/admin/key.pem');
  const { pem } = await keyFromFlags(keyPath, 'key', values['key-passphrase-file']);
  return connectEtcd({ endpoints, certPem, keyPem: pem, caPem });
}

async function publish(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, { ca: { type: 'string' }, pki: { type: 'string' }, file: { type: 'string' }, next: { type: 'boolean' }, trust: { type: 'string' }, ...ETCD_FLAGS });
  // Here --ca names the CA whose CRL to publish; the context's ca (the root certificate) is no CA name.
  const ca = requireFlag(fromContext(values, 'ca') ? undefined : values.ca, 'ca', 'cluster (the CA whose CRL to publish: root, cluster, operator or client; the context\'s ca, a root certificate, does not apply here)');
  if (!(CA_NAMES as readonly string[]).includes(ca)) throw new UsageError(`--ca must be one of ${CA_NAMES.join(', ')}, got "${ca}"`);
  const pki = requireFlag(values.pki, 'pki', 'pki');
  if (!existsSync(join(pki, 'root', 'cert.pem'))) throw new UsageError(`--pki ${pki} holds no root/cert.pem; point it at the folder themis-pki init-root made`);
  const cluster = requireFlag(values.cluster, 'cluster', 'cluster-prod');
  const rootPem = values.trust ? readFlagFile(values.trust, 'trust') : readFlagFile(join(pki, 'root', 'cert.pem'), 'pki');
  const crlPem = readFlagFile(values.file ?? join(pki, ca, 'crl.pem'), values.file ? 'file' : 'pki');
  const value = crlValue(ca as CaName, crlPem, readFlagFile(join(pki, ca, 'cert.pem'), 'pki'));
  const slot = values.next ? `next-${ca}` : ca;
  const trust = new CrlTrust(rootPem, systemClock);
  const etcd = await etcdClient(values, rootPem);
  try {
    const r = await etcdCall(publishCrl(etcd, cluster, slot, value, trust, new Date(systemClock.now())), CrlPublishError);
    const next = r.crl.crl.nextUpdate ? `, next update ${r.crl.crl.nextUpdate.toISOString()}` : '';
    process.stdout.write(
      `published CRL number ${r.crl.crl.crlNumber} of the ${ca} CA (${r.crl.crl.revoked.size} revoked${next}) as crl/${slot}` +
        `${r.previous !== undefined ? `, replacing number ${r.previous}` : ''}; crl/revoked lists ${r.revokedTotal} serials\n`,
    );
  } finally {
    etcd.close();
  }
}

async function show(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, { root: { type: 'string' }, json: { type: 'boolean' }, ...ETCD_FLAGS });
  const rootPem = readFlagFile(requireFlag(values.root, 'root', 'pki/root/cert.pem'), 'root');
  const cluster = requireFlag(values.cluster, 'cluster', 'cluster-prod');
  const etcd = await etcdClient(values, rootPem);
  const trust = new CrlTrust(rootPem, systemClock);
  try {
    const stored = await etcdCall(readStoredCrls(etcd, cluster));
    const now = systemClock.now();
    const rows = stored.map((s) => {
      const c = trust.check(s.value, () => undefined);
      if (!c.ok) return { ca: s.name, status: `REFUSED (${c.reason}): ${c.message}` };
      const crl = c.value.crl;
      const stale = crl.nextUpdate !== undefined && crl.nextUpdate.getTime() < now;
      const misplaced = c.value.issuerKind !== caOfSlot(s.name);
      return {
        ca: s.name,
        status: misplaced ? `MISPLACED (wrong_issuer): the CRL of ${c.value.issuerKind ?? 'a CA of no kind'}, not of the ${s.name} CA` : stale ? 'STALE (past nextUpdate)' : 'valid',
        issuer: crl.issuer,
        crl_number: String(crl.crlNumber),
        this_update: crl.thisUpdate.toISOString(),
        next_update: crl.nextUpdate?.toISOString() ?? null,
        revoked: [...crl.revoked].map(([serial, r]) => ({ serial, reason: r.reason, revoked_at: r.date.toISOString() })),
      };
    });
    if (values.json) {
      process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
    } else {
      if (rows.length === 0) process.stdout.write(`no CRLs published for cluster ${cluster}\n`);
      for (const r of rows) {
        if (!r.revoked) {
          process.stdout.write(`${r.ca}: ${r.status}\n`);
          continue;
        }
        process.stdout.write(`${r.ca}: ${r.status}; number ${r.crl_number}, next update ${r.next_update ?? 'none'}, ${r.revoked.length} revoked\n`);
        for (const v of r.revoked) process.stdout.write(`  ${v.serial}  ${v.reason}  ${v.revoked_at}\n`);
      }
    }
    if (rows.some((r) => r.status !== 'valid')) process.exitCode = 1;
  } finally {
    etcd.close();
  }
}
