// `themis-admin topology sign|verify|publish|show`: the signed half of the topology commands
// (certificates, CMS, etcd); admin-topology.ts dispatches to it and keeps the offline ones.
import { readerCertPem } from './reader-identity.js';
import { existsSync, writeFileSync } from 'node:fs';
import { strandedRanges } from '../topology/diff.js';
import { parseTopology } from '../topology/document.js';
import type { Topology } from '../topology/topology.js';
import { tokenHex } from '../hash.js';
import { PeerVerifier } from '../pki/verify.js';
import { signTopology, verifySignedTopology } from '../topology/signed.js';
import { registeredCertifiedRanges } from '../control/certified-ranges.js';
import { verifierWithEtcdCrls } from '../control/crl-store.js';
import { connectEtcd, etcdKeys } from '../control/etcd.js';
import { PublishError, publishSignedTopology, readSignedTopology } from '../control/topology-store.js';
import { systemClock } from '../runtime.js';
import { parseFlags, requireFlag, UsageError, readFlagFile, crlsFlag, etcdCall, etcdFlag } from './cli-common.js';
import { readTopology } from './topology-flags.js';
import { OPERATOR_FLAGS, operatorIdentity } from './operator-identity.js';

export async function sign(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, { plan: { type: 'string' }, ...OPERATOR_FLAGS, out: { type: 'string' }, force: { type: 'boolean' } });
  const topology = readTopology(requireFlag(values.plan, 'plan', 'topology.json'), 'plan');
  const out = requireFlag(values.out, 'out', 'topology.signed.json');
  if (!values.force && existsSync(out)) throw new UsageError(`--out ${out} already exists; pass --force to overwrite it`);
  const op = await operatorIdentity(values);
  const signed = await signTopology(topology, op.chain, op.key.privateKey);
  writeFileSync(out, JSON.stringify(signed, null, 2) + '\n', { flag: values.force ? 'w' : 'wx', mode: 0o644 });
  process.stdout.write(`wrote ${out}: epoch ${topology.epoch}, ${topology.ranges.length} ranges, signed by ${op.certPath}\n`);
}

export async function publish(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, {
    plan: { type: 'string' }, cluster: { type: 'string' }, ...OPERATOR_FLAGS, etcd: { type: 'string' }, ca: { type: 'string' }, crls: { type: 'string' },
    'i-know-data-is-stranded': { type: 'boolean' },
  });
  const planPath = requireFlag(values.plan, 'plan', 'topology.json');
  const topology = readTopology(planPath, 'plan');
  const cluster = requireFlag(values.cluster, 'cluster', 'cluster-prod');
  if (topology.cluster !== cluster) {
    throw new UsageError(`--plan ${planPath} is a topology of cluster "${topology.cluster}", but the target is cluster "${cluster}" (--cluster or the context); plan it with --cluster ${cluster}`);
  }
  const stranding = (current: Topology, next: Topology): string | undefined => {
    if (values['i-know-data-is-stranded']) return undefined;
    const lost = strandedRanges(current, next);
    if (lost.length === 0) return undefined;
    const tokens = lost.reduce((a, m) => a + (m.end - m.start + 1n), 0n);
    const first = lost.slice(0, 3).map((m) => `${tokenHex(m.start)}-${tokenHex(m.end)} ${m.from} → ${m.to}`).join(', ');
    return `refused (data_stranded): this topology gives ${lost.length} range(s) (${(Number(tokens) / 2 ** 64 * 100).toFixed(2)}% of the token space) to shards that hold no copy of them (${first}${lost.length > 3 ? ', …' : ''}); their keys would answer 404 while the data stays where it was. Move data with themis-admin shard add|remove (docs/scaling.md); to publish anyway, pass --i-know-data-is-stranded`;
  };
  const endpoints = etcdFlag(values.etcd);
  const caPem = readFlagFile(requireFlag(values.ca, 'ca', 'pki/root/cert.pem'), 'ca');
  const extraCrls = values.crls === undefined ? [] : crlsFlag(values.crls);
  const op = await operatorIdentity(values);
  const signed = await signTopology(topology, op.chain, op.key.privateKey);
  const etcd = connectEtcd({ endpoints, certPem: op.certPem, keyPem: op.keyPem, caPem });
  try {
    const key = etcdKeys(topology.cluster).topology;
    const r = await etcdCall(
      (async () => {
        const verifier = await verifierWithEtcdCrls(etcd, topology.cluster, caPem, systemClock, extraCrls);
        const certifiedRanges = await registeredCertifiedRanges(etcd, topology.cluster, verifier);
        return publishSignedTopology(etcd, key, signed, { verifier, cluster: topology.cluster, certifiedRanges, refuseChange: stranding });
      })(),
      PublishError,
    );
    if (r.replacedUnverified) process.stderr.write(`warning: the value stored at ${key} did not verify (${r.replacedUnverified}); it was replaced, not trusted\n`);
    process.stdout.write(`published epoch ${r.epoch} of cluster ${topology.cluster}${r.previousEpoch !== undefined ? ` (was ${r.previousEpoch})` : ''} to ${key}\n`);
  } finally {
    etcd.close();
  }
}

export async function show(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, {
    etcd: { type: 'string' }, ca: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' },
    cluster: { type: 'string' }, crls: { type: 'string' }, ranges: { type: 'boolean' },
  });
  const endpoints = etcdFlag(values.etcd);
  const cluster = requireFlag(values.cluster, 'cluster', 'cluster-prod');
  const caPem = readFlagFile(requireFlag(values.ca, 'ca', 'pki/root/cert.pem'), 'ca');
  const crls = crlsFlag(values.crls);
  const certPem = readerCertPem(values);
  const keyPem = readFlagFile(requireFlag(values.key, 'key', 'pki/operators/readonly/key.pem'), 'key');
  const etcd = connectEtcd({ endpoints, certPem, keyPem, caPem });
  try {
    const stored = await etcdCall(readSignedTopology(etcd, etcdKeys(cluster).topology));
    if (!stored) throw new Error(`no topology published for cluster ${cluster}`);
    const v = await verifySignedTopology(stored.signed ?? null, { verifier: new PeerVerifier({ root: caPem, crls, clock: systemClock }), cluster });
    if (!v.ok) {
      process.stdout.write(`the published topology is REFUSED (${v.reason}): ${v.message}\n`);
      process.exitCode = 1;
      return;
    }
    process.stdout.write(`cluster ${cluster}: epoch ${v.topology.epoch}, ${Object.keys(v.topology.shards).length} shards, ${v.topology.ranges.length} ranges; signed by ${v.signer.subject} (serial ${v.signer.serial}, issued by ${v.signer.issuer}); verified\n`);
    if (values.ranges) for (const r of v.topology.ranges) process.stdout.write(`${tokenHex(r.start)}  ${tokenHex(r.end)}  ${r.owner}\n`);
  } finally {
    etcd.close();
  }
}

export async function verify(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, { signed: { type: 'string' }, ca: { type: 'string' }, crls: { type: 'string' }, current: { type: 'string' }, json: { type: 'boolean' } });
  const signedPath = requireFlag(values.signed, 'signed', 'topology.signed.json');
  let input: unknown;
  try {
    input = JSON.parse(readFlagFile(signedPath, 'signed'));
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`--signed ${signedPath} is not JSON`);
  }
  const ca = readFlagFile(requireFlag(values.ca, 'ca', 'pki/root/cert.pem'), 'ca');
  const crls = crlsFlag(values.crls);
  const current = values.current ? readTopology(values.current, 'current') : undefined;
  const verifier = new PeerVerifier({ root: ca, crls, clock: systemClock });
  const cluster = current?.cluster ?? (typeof (input as { document?: unknown })?.document === 'string' ? parseTopology((input as { document: string }).document).cluster : '');
  const v = await verifySignedTopology(input, { verifier, current, cluster });
  if (values.json) process.stdout.write(JSON.stringify(v.ok ? { ok: true, epoch: v.topology.epoch, signer: v.signer } : v) + '\n');
  else if (v.ok) process.stdout.write(`${signedPath}: valid — epoch ${v.topology.epoch}, signed by ${v.signer.subject} (serial ${v.signer.serial}, issued by ${v.signer.issuer})\n`);
  else process.stdout.write(`${signedPath}: REFUSED (${v.reason}): ${v.message}\n`);
  if (!v.ok) process.exitCode = 1;
}
