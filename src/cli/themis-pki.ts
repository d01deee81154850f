#!/usr/bin/env node
// `themis-pki`: the operator's certificate tool. Flags are parsed and checked here, passphrases
// sourced, then src/pki/commands.ts does the work; every file written is printed (or --json).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AuditLog, type AuditEntry } from '../audit/audit-log.js';
import { PkiLayout, caKeyInToken, loadCaCert, type CaName } from '../pki/ca-store.js';
import { CA_KINDS, ISSUER_OF, type CaKind, type LeafProfile } from '../pki/ca-kind.js';
import {
  createIntermediate, recertifyIntermediate, recertifyRoot, initRoot, issue, revoke, writeCrl,
  type CommandResult, type NewKeyInToken, type PkiContext,
} from '../pki/commands.js';
import { closeTokens, pkcs11Pin } from '../pki/pkcs11.js';
import { parseReason } from '../pki/crl.js';
import { invalid } from '../pki/errors.js';
import { parseCapabilities, parseTokenRange } from '../pki/identity-extension.js';
import { doctor, renderDoctor } from '../pki/doctor.js';
import { inspectFile, renderText } from '../pki/inspect.js';
import { normalizeSerial } from '../pki/issue.js';
import { parseKeyType } from '../pki/keys.js';
import { PASSPHRASE_ENV, requirePassphrase } from '../pki/passphrase.js';
import {
  ALLOWED_CAPABILITIES, DEFAULT_SHARD_CAPABILITIES, clientProfile, operatorProfile, serverProfile, shardProfile,
  type LeafProfileParams,
} from '../pki/profiles.js';
import { shown, writeFiles, type PlannedFile } from '../pki/write-plan.js';
import { buildTrustBundle } from '../pki/trust-bundle.js';
import { systemClock, systemRandom } from '../runtime.js';
import { cmdServe } from './pki-serve.js';
import { intFlag, parseFlags, requireFlag, runCommands, UsageError, type Options } from './cli-common.js';

const USAGE = `usage: themis-pki <command> [flags]     (docs/pki.md has the full reference)

  init-root            [--key-type T] [--days 7300] [--crl-days 365] [--cn NAME]
                       [--pkcs11 MODULE --token LABEL [--key-label L]]   (key generated in the token)
  create-intermediate  --kind cluster|operator|client [--key-type T] [--days 1825] [--crl-days 30]
                       [--cn NAME] [--root-key FILE] [--new-passphrase-file FILE]
                       [--pkcs11 MODULE --token LABEL [--key-label L]]
  recertify-intermediate --kind cluster|operator|client [--days 1825] [--root-key FILE]
                       (same name and key, now bound to its kind: for PKIs made before 0.2; and
                       break-glass after an expired root, with a new validity)
  recertify-root       [--days 7300] [--root-key FILE]   break-glass for an expired root: same key
                       and name, new validity; rewrites every intermediate's chain.pem
  issue-shard          --id shard-001 --cluster NAME --dc NAME --token-range START:END
                       [--dns NAME]… [--ip ADDR]… [--capabilities read,write,replicate] [--role primary|replica]
  issue-operator       --name NAME --capabilities rebalance,add_shard,… [--dc NAME]
  issue-client         --name NAME --capabilities read,write [--dc NAME]
  issue-server         [--name etcd] --dns NAME… | --ip ADDR…      (etcd's server certificate)
     every issue-*:    [--key-type T] [--days 365] [--out DIR] [--ca-key FILE]
                       [--encrypt-key] [--key-passphrase-file FILE]
  revoke               --serial HEX [--reason keyCompromise|superseded|…]
  crl                  --ca root|cluster|operator|client [--days N] [--ca-key FILE]
  inspect              FILE…
  serve                [--listen 127.0.0.1:7443] [--lifetime 24h] [--tls-cert FILE --tls-key FILE]
                       [--audit FILE] [--ca-key FILE] [--previous OLD-PKI-DIR]
                       the cluster CA's online renewal service
                       (shards renew their own certificate over mTLS; docs/pki.md "Automatic renewal")
  trust-bundle         --pki DIR [--pki DIR2] --out TRUST.pem [--crls-out CRLS.pem]
                       the roots and cluster CAs of one or two PKI folders as one tls.ca file (root
                       rotation), and every CA's CRL as one file; refused if two CAs share a name
  doctor               [--warn-days 30] [--crl-warn-days 7]   every certificate and CRL in --dir with
                       the days it has left; exit 3 if any is expired, under its threshold or unreadable

common flags: --dir DIR (default $THEMIS_PKI_DIR or ./pki)  --json  --force (overwrite existing files)
PKCS#11 user PIN (a CA key in a token): --pin-file FILE, else the systemd credential themis-pkcs11-pin
key types: ecdsa-p256 (default), rsa2048, rsa3072, rsa4096
CA key passphrase: --passphrase-file FILE, else $${PASSPHRASE_ENV.ca}, else a prompt on a terminal
new intermediate key: --new-passphrase-file FILE, else $${PASSPHRASE_ENV.newCa}, else a prompt
leaf key (--encrypt-key): --key-passphrase-file FILE, else $${PASSPHRASE_ENV.leafKey}, else a prompt
`;

const COMMON = {
  dir: { type: 'string' },
  json: { type: 'boolean' },
  force: { type: 'boolean' },
  'passphrase-file': { type: 'string' },
  'pin-file': { type: 'string' },
  pin: { type: 'string' }, // declared only to refuse it with a clear message
} as const satisfies Options;

/** Where init-root / create-intermediate generate the new key instead: a PKCS#11 token. */
const TOKEN = { pkcs11: { type: 'string' }, token: { type: 'string' }, 'key-label': { type: 'string' } } as const satisfies Options;

const LEAF = {
  ...COMMON,
  'key-type': { type: 'string' },
  days: { type: 'string' },
  out: { type: 'string' },
  'ca-key': { type: 'string' },
  'encrypt-key': { type: 'boolean' },
  'key-passphrase-file': { type: 'string' },
  dc: { type: 'string' },
  name: { type: 'string' },
  capabilities: { type: 'string' },
} as const satisfies Options;

type Flags = Record<string, string | boolean | string[] | undefined>;

function context(f: Flags): PkiContext {
  if (f.pin !== undefined) throw new UsageError('--pin: a PIN is never a command-line argument (ps and shell history show it); use --pin-file FILE or the systemd credential themis-pkcs11-pin');
  const dir = (f.dir as string | undefined) ?? process.env.THEMIS_PKI_DIR ?? 'pki';
  const pinFile = f['pin-file'] as string | undefined;
  return { layout: new PkiLayout(dir), clock: systemClock, random: systemRandom, force: f.force === true, pkcs11Pin: () => pkcs11Pin(pinFile) };
}

/** --pkcs11 MODULE --token LABEL [--key-label L]: both or neither. */
function newKeyInToken(f: Flags): NewKeyInToken | undefined {
  const module = f.pkcs11 as string | undefined;
  const token = f.token as string | undefined;
  if (module === undefined && token === undefined) {
    if (f['key-label'] !== undefined) throw new UsageError('--key-label needs --pkcs11 MODULE --token LABEL');
    return undefined;
  }
  return { module: requireFlag(module, 'pkcs11', '/usr/lib/softhsm/libsofthsm2.so'), token: requireFlag(token, 'token', 'themis-ca'), keyLabel: f['key-label'] as string | undefined };
}

/** The CA key's passphrase — none when the key is in a token (the PIN is asked for then). */
async function caPassphrase(f: Flags, ca: CaName, layout: PkiLayout): Promise<string | undefined> {
  if (f['ca-key'] === undefined && f['root-key'] === undefined && (await caKeyInToken(layout, ca))) return undefined;
  return requirePassphrase({
    purpose: `the ${ca} CA key`,
    fileFlag: '--passphrase-file',
    file: f['passphrase-file'] as string | undefined,
    envVar: PASSPHRASE_ENV.ca,
    confirm: false,
  });
}

/** Repeated flags and comma lists alike: --dns a --dns b,c → [a, b, c]. */
function list(v: string | boolean | string[] | undefined): string[] {
  if (v === undefined || typeof v === 'boolean') return [];
  return (Array.isArray(v) ? v : [v]).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
}

/** CERTIFICATE_ISSUED / CERTIFICATE_REVOKED go to the PKI folder's own hash-chained audit trail. */
function audit(command: string, ctx: PkiContext, r: CommandResult): void {
  const events: AuditEntry[] = [];
  if (r.certificate) events.push({ event: 'CERTIFICATE_ISSUED', command, peer: { cn: r.certificate.subject, serial: r.certificate.serial }, issuer: r.certificate.issuer, not_after: r.certificate.notAfter });
  if (r.revocation) events.push({ event: 'CERTIFICATE_REVOKED', command, peer: { serial: r.revocation.serial }, reason: r.revocation.reason, ca: r.revocation.ca });
  if (events.length === 0) return;
  const file = join(ctx.layout.dir, 'audit.log');
  const log = new AuditLog({ file, source: 'themis-pki', clock: ctx.clock, onWriteError: (e) => process.stderr.write(`themis-pki: warning: audit trail not written: ${e.message}\n`) });
  for (const e of events) log.record(e);
  log.close();
  r.written.push({ path: file, kind: 'audit', mode: '0600' });
}

function report(command: string, ctx: PkiContext, r: CommandResult, json: boolean): void {
  closeTokens();
  audit(command, ctx, r);
  if (json) {
    process.stdout.write(JSON.stringify({ command, dir: ctx.layout.dir, ...r }, null, 2) + '\n');
    return;
  }
  const out: string[] = r.written.map((w) => `wrote ${shown(w.path)} (${w.kind}, mode ${w.mode})`);
  if (r.certificate) {
    const c = r.certificate;
    out.push(`certificate: ${c.subject}`, `  serial ${c.serial}, valid ${c.notBefore} … ${c.notAfter}`, `  issuer ${c.issuer}`);
  }
  if (r.crl) out.push(`crl: ${r.crl.ca} CA, number ${r.crl.crlNumber}, ${r.crl.revoked} revoked, next update ${r.crl.nextUpdate}`);
  if (r.revocation) {
    const v = r.revocation;
    out.push(`revoked serial ${v.serial} (${v.reason}) with the ${v.ca} CA; publish it: themis-pki crl --ca ${v.ca}`);
  }
  process.stdout.write(out.join('\n') + '\n');
}

async function cmdInitRoot(argv: string[]): Promise<void> {
  const { values: f } = parseFlags(argv, { ...COMMON, ...TOKEN, 'key-type': { type: 'string' }, days: { type: 'string' }, 'crl-days': { type: 'string' }, cn: { type: 'string' } });
  const ctx = context(f);
  const keyType = parseKeyType(f['key-type']);
  const days = intFlag(f.days, 'days', 7300, 1, 36500);
  const crlDays = intFlag(f['crl-days'], 'crl-days', 365, 1, 3650);
  const pkcs11 = newKeyInToken(f);
  const passphrase = pkcs11 ? undefined : await requirePassphrase({ purpose: 'the new root CA key', fileFlag: '--passphrase-file', file: f['passphrase-file'], envVar: PASSPHRASE_ENV.ca, confirm: true });
  report('init-root', ctx, await initRoot(ctx, { passphrase, keyType, days, crlDays, commonName: f.cn, pkcs11 }), f.json === true);
}

async function cmdCreateIntermediate(argv: string[]): Promise<void> {
  const { values: f } = parseFlags(argv, {
    ...COMMON, ...TOKEN, kind: { type: 'string' }, 'key-type': { type: 'string' }, days: { type: 'string' }, 'crl-days': { type: 'string' },
    cn: { type: 'string' }, 'root-key': { type: 'string' }, 'new-passphrase-file': { type: 'string' },
  });
  const ctx = context(f);
  const kind = requireFlag(f.kind, 'kind', 'cluster');
  if (!(CA_KINDS as readonly string[]).includes(kind)) throw invalid('--kind', `"${kind}" must be one of ${CA_KINDS.join(', ')}`);
  const keyType = parseKeyType(f['key-type']);
  const days = intFlag(f.days, 'days', 1825, 1, 36500);
  const crlDays = intFlag(f['crl-days'], 'crl-days', 30, 1, 3650);
  await loadCaCert(ctx.layout, 'root');
  const pkcs11 = newKeyInToken(f);
  const rootPassphrase = await caPassphrase(f, 'root', ctx.layout);
  const newSource = { purpose: `the new ${kind} CA key`, fileFlag: '--new-passphrase-file', file: f['new-passphrase-file'], envVar: PASSPHRASE_ENV.newCa, confirm: true };
  const newPassphrase = pkcs11 ? undefined : await requirePassphrase(newSource);
  const r = await createIntermediate(ctx, { kind: kind as CaKind, rootPassphrase, newPassphrase, rootKeyPath: f['root-key'], keyType, days, crlDays, commonName: f.cn, pkcs11 });
  report('create-intermediate', ctx, r, f.json === true);
}

async function cmdRecertifyRoot(argv: string[]): Promise<void> {
  const { values: f } = parseFlags(argv, { ...COMMON, days: { type: 'string' }, 'root-key': { type: 'string' } });
  const ctx = context(f);
  const days = intFlag(f.days, 'days', 7300, 1, 36500);
  await loadCaCert(ctx.layout, 'root');
  const rootPassphrase = await caPassphrase(f, 'root', ctx.layout);
  report('recertify-root', ctx, await recertifyRoot(ctx, { rootPassphrase, rootKeyPath: f['root-key'], days }), f.json === true);
}

async function cmdRecertifyIntermediate(argv: string[]): Promise<void> {
  const { values: f } = parseFlags(argv, { ...COMMON, kind: { type: 'string' }, days: { type: 'string' }, 'root-key': { type: 'string' } });
  const ctx = context(f);
  const kind = requireFlag(f.kind, 'kind', 'cluster');
  if (!(CA_KINDS as readonly string[]).includes(kind)) throw invalid('--kind', `"${kind}" must be one of ${CA_KINDS.join(', ')}`);
  const days = intFlag(f.days, 'days', 1825, 1, 36500);
  await loadCaCert(ctx.layout, 'root');
  await loadCaCert(ctx.layout, kind as CaKind);
  const rootPassphrase = await caPassphrase(f, 'root', ctx.layout);
  report('recertify-intermediate', ctx, await recertifyIntermediate(ctx, { kind: kind as CaKind, rootPassphrase, rootKeyPath: f['root-key'], days }), f.json === true);
}

async function cmdIssue(profile: LeafProfile, argv: string[]): Promise<void> {
  const extra: Options =
    profile === 'shard'
      ? { id: { type: 'string' }, cluster: { type: 'string' }, dns: { type: 'string', multiple: true }, ip: { type: 'string', multiple: true }, 'token-range': { type: 'string' }, role: { type: 'string' } }
      : profile === 'server'
        ? { dns: { type: 'string', multiple: true }, ip: { type: 'string', multiple: true } }
        : {};
  const { values: f } = parseFlags(argv, { ...LEAF, ...extra }) as { values: Flags };
  const ctx = context(f);
  const s = (k: string) => f[k] as string | undefined;
  let params: LeafProfileParams;
  let name: string;
  if (profile === 'shard') {
    const id = requireFlag(s('id'), 'id', 'shard-001');
    const caps = s('capabilities') === undefined ? DEFAULT_SHARD_CAPABILITIES : parseCapabilities(s('capabilities')!, '--capabilities', ALLOWED_CAPABILITIES.shard);
    params = shardProfile({
      id,
      cluster: requireFlag(s('cluster'), 'cluster', 'cluster-prod'),
      datacenter: requireFlag(s('dc'), 'dc', 'dc1'),
      dns: list(f.dns),
      ips: list(f.ip),
      tokenRange: parseTokenRange(requireFlag(s('token-range'), 'token-range', '0x0000000000000000:0x3fffffffffffffff')),
      capabilities: caps,
      role: (s('role') ?? 'primary') as 'primary',
    });
    name = id;
  } else if (profile === 'server') {
    name = s('name') ?? 'etcd';
    params = serverProfile({ name, dns: list(f.dns), ips: list(f.ip) });
  } else {
    name = requireFlag(s('name'), 'name', profile === 'operator' ? 'admin' : 'app1');
    const caps = parseCapabilities(requireFlag(s('capabilities'), 'capabilities', profile === 'operator' ? 'view_topology' : 'read,write'), '--capabilities', ALLOWED_CAPABILITIES[profile]);
    params = (profile === 'operator' ? operatorProfile : clientProfile)({ name, capabilities: caps, datacenter: s('dc') });
  }
  const keyType = parseKeyType(s('key-type'));
  const days = intFlag(s('days'), 'days', 365, 1, 36500);
  const ca = ISSUER_OF[profile];
  await loadCaCert(ctx.layout, ca);
  const passphrase = await caPassphrase(f, ca, ctx.layout);
  let keyPassphrase: string | undefined;
  if (f['encrypt-key'] === true || s('key-passphrase-file') !== undefined) {
    const source = { purpose: `the new ${profile} key`, fileFlag: '--key-passphrase-file', file: s('key-passphrase-file'), envVar: PASSPHRASE_ENV.leafKey, confirm: true };
    keyPassphrase = await requirePassphrase(source);
  }
  const r = await issue(ctx, { params, name, caPassphrase: passphrase, caKeyPath: s('ca-key'), keyType, days, keyPassphrase, outDir: s('out') });
  report(`issue-${profile}`, ctx, r, f.json === true);
}

async function cmdRevoke(argv: string[]): Promise<void> {
  const { values: f } = parseFlags(argv, { ...COMMON, serial: { type: 'string' }, reason: { type: 'string' } });
  const ctx = context(f);
  const serial = normalizeSerial(requireFlag(f.serial, 'serial', '5f0c…(hex, as inspect prints it)'));
  report('revoke', ctx, await revoke(ctx, { serial, reason: parseReason(f.reason) }), f.json === true);
}

async function cmdCrl(argv: string[]): Promise<void> {
  const { values: f } = parseFlags(argv, { ...COMMON, ca: { type: 'string' }, days: { type: 'string' }, 'ca-key': { type: 'string' } });
  const ctx = context(f);
  const ca = requireFlag(f.ca, 'ca', 'cluster');
  if (!['root', ...CA_KINDS].includes(ca)) throw invalid('--ca', `"${ca}" must be one of root, ${CA_KINDS.join(', ')}`);
  const days = f.days === undefined ? undefined : intFlag(f.days, 'days', 30, 1, 3650);
  await loadCaCert(ctx.layout, ca as CaName);
  const passphrase = await caPassphrase(f, ca as CaName, ctx.layout);
  report('crl', ctx, await writeCrl(ctx, { ca: ca as CaName, passphrase, caKeyPath: f['ca-key'], days }), f.json === true);
}

async function cmdInspect(argv: string[]): Promise<void> {
  const { values: f, positionals } = parseFlags(argv, { json: { type: 'boolean' } });
  if (positionals.length === 0) throw new UsageError('inspect needs a FILE, e.g. themis-pki inspect pki/shards/shard-001/cert.pem');
  const all = [];
  for (const file of positionals) {
    const data = await readFile(file).catch((e: NodeJS.ErrnoException) => {
      throw invalid(file, `cannot read (${e.code})`);
    });
    all.push({ file, items: inspectFile(data, file) });
  }
  if (f.json) process.stdout.write(JSON.stringify(positionals.length === 1 ? all[0] : all, null, 2) + '\n');
  else process.stdout.write(all.map((a) => (all.length > 1 ? `== ${a.file}\n` : '') + renderText(a.items)).join('\n'));
}

async function cmdDoctor(argv: string[]): Promise<void> {
  const { values: f } = parseFlags(argv, { dir: { type: 'string' }, json: { type: 'boolean' }, 'warn-days': { type: 'string' }, 'crl-warn-days': { type: 'string' } });
  const certDays = intFlag(f['warn-days'], 'warn-days', 30, 0, 36500);
  const crlDays = intFlag(f['crl-warn-days'], 'crl-warn-days', 7, 0, 3650);
  const r = await doctor(context(f).layout.dir, systemClock.now(), certDays, crlDays);
  process.stdout.write(f.json ? JSON.stringify(r, null, 2) + '\n' : renderDoctor(r));
  if (!r.ok) process.exitCode = 3;
}

async function cmdTrustBundle(argv: string[]): Promise<void> {
  const { values: f } = parseFlags(argv, { pki: { type: 'string', multiple: true }, out: { type: 'string' }, 'crls-out': { type: 'string' }, force: { type: 'boolean' }, json: { type: 'boolean' } });
  const dirs = list(f.pki);
  if (dirs.length === 0) throw new UsageError('trust-bundle needs --pki DIR (twice during a root rotation: the old and the new PKI folder)');
  const out = requireFlag(f.out, 'out', 'trust.pem');
  const b = await buildTrustBundle(dirs);
  const files: PlannedFile[] = [{ path: out, kind: 'certificate', contents: b.bundlePem }];
  if (f['crls-out']) files.push({ path: f['crls-out'], kind: 'crl', contents: b.crlsPem });
  const written = await writeFiles(files, f.force === true);
  if (f.json) {
    process.stdout.write(JSON.stringify({ written, pkis: b.pkis }, null, 2) + '\n');
    return;
  }
  for (const p of b.pkis) process.stdout.write(`${p.dir}: root "${p.root}"; ${p.cas.length - 1} intermediate(s)\n`);
  for (const w of written) process.stdout.write(`wrote ${w.path} (${w.kind}, mode ${w.mode})\n`);
}

await runCommands('themis-pki', USAGE, {
  'trust-bundle': cmdTrustBundle,
  'init-root': cmdInitRoot,
  'create-intermediate': cmdCreateIntermediate,
  'recertify-intermediate': cmdRecertifyIntermediate,
  'recertify-root': cmdRecertifyRoot,
  'issue-shard': (argv) => cmdIssue('shard', argv),
  'issue-operator': (argv) => cmdIssue('operator', argv),
  'issue-client': (argv) => cmdIssue('client', argv),
  'issue-server': (argv) => cmdIssue('server', argv),
  revoke: cmdRevoke,
  crl: cmdCrl,
  inspect: cmdInspect,
  doctor: cmdDoctor,
  serve: (argv) => cmdServe(argv, (f) => context(f as Flags), (f) => caPassphrase(f as Flags, 'cluster', context(f as Flags).layout), COMMON),
});
