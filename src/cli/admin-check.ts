// `themis-admin check`, after `linkerd check`: one line per check with a fix when it fails, and
// a non-zero exit if any failed. Cluster checks need etcd (from flags or the context); host
// checks (--config: a sidecar's config) look at this host's certificate, caches and storage node.
import { failoverKeys, parseSnapshot } from '../control/failover-keys.js';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Etcd3 } from 'etcd3';
import { connectEtcd, etcdKeys, answerWithin } from '../control/etcd.js';
import { readSignedTopology } from '../control/topology-store.js';
import { loadSidecarConfig, type SidecarConfig } from '../config/sidecar.js';
import { parseCrl } from '../pki/crl.js';
import { parsePem } from '../pki/pem.js';
import { PeerVerifier, type Purpose } from '../pki/verify.js';
import { systemClock } from '../runtime.js';
import { verifySignedTopology } from '../topology/signed.js';
import type { Topology } from '../topology/topology.js';
import { intFlag, parseFlags, readFlagFile, requireFlag, UsageError } from './cli-common.js';
import { folderWriteProblem, writeProblem } from '../config/writable.js';
import { crlRollbackCheck, etcdCrlNumbers, type EtcdCrlNumbers } from './check-crl-rollback.js';

export const CHECK_USAGE = `themis-admin check [--config /etc/themis/sidecar.json] [--expiry-days 14] [--json]
        --etcd https://HOST:2379[,…] --ca ROOT.pem --cert CHAIN.pem --key KEY.pem --cluster NAME --crls A.pem,…
  Checks the cluster (and with --config, this host's sidecar), one line each with a fix, and
  exits 1 if any check fails: certificates and their expiry, CRL freshness, etcd reachable and
  authorised, the topology signed and the same on every shard, every shard registered and
  alive, clocks within the replay window; with --config also the shard's own certificate, its
  cache and state paths writable, and its storage node answering. The etcd flags (a reader:
  view_topology) may come from the context (themis-admin context show).`;

type Status = 'ok' | 'warn' | 'fail';
interface Check {
  name: string;
  status: Status;
  detail: string;
  fix?: string;
}

const DAY = 86_400_000;
/** How often a sidecar reports its status to etcd (proxy/sidecar.ts STATUS_EVERY_MS) plus slack. */
const REPORT_AGE_MS = 2000 + 3000;

export async function checkCommand(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, {
    config: { type: 'string' }, 'expiry-days': { type: 'string' }, json: { type: 'boolean' },
    etcd: { type: 'string' }, ca: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' }, cluster: { type: 'string' }, crls: { type: 'string' },
  });
  const expiryDays = intFlag(values['expiry-days'], 'expiry-days', 14, 0, 3650);
  let sidecar: SidecarConfig | undefined;
  if (values.config) {
    try {
      sidecar = loadSidecarConfig(values.config);
    } catch (e) {
      throw new UsageError(`--config ${values.config}: ${(e as Error).message}`);
    }
  }
  const cluster = requireFlag(values.cluster ?? sidecar?.cluster, 'cluster', 'cluster-prod');
  const caPath = requireFlag(values.ca ?? sidecar?.tls.ca, 'ca', '/etc/themis/pki/root.pem');
  const caPem = readFlagFile(caPath, 'ca');
  const crlPaths = values.crls !== undefined ? values.crls.split(',').filter(Boolean) : [...(sidecar?.tls.crls ?? [])];
  if (crlPaths.length === 0) throw new UsageError('--crls is required, e.g. --crls root.crl.pem,cluster.crl.pem,operator.crl.pem,client.crl.pem');
  const endpoints = requireFlag(values.etcd ?? sidecar?.etcd?.endpoints.join(','), 'etcd', 'https://127.0.0.1:2379').split(',');
  const certPath = requireFlag(values.cert, 'cert', '/etc/themis/pki/operators/readonly/chain.pem');
  const keyPath = requireFlag(values.key, 'key', '/etc/themis/pki/operators/readonly/key.pem');

  const checks: Check[] = [];
  const add = (c: Check) => {
    checks.push(c);
    if (!values.json) process.stdout.write(line(c));
  };
  const now = systemClock.now();

  // CRLs: readable, signed by a CA of this root (the verifier checks on use), not past nextUpdate.
  const crlPems: string[] = [];
  for (const p of crlPaths) {
    try {
      const pem = readFileSync(p, 'utf8');
      const crl = parseCrl(pem, p);
      crlPems.push(pem);
      const next = crl.nextUpdate?.getTime();
      if (next === undefined) add({ name: 'crl', status: 'warn', detail: `${p} (${crl.issuer}) has no nextUpdate` });
      else if (next < now) add({ name: 'crl', status: 'fail', detail: `${p} (${crl.issuer}) is stale: nextUpdate ${new Date(next).toISOString()} has passed`, fix: 'issue a fresh CRL (themis-pki crl --ca NAME) and publish it (themis-admin crl publish), then copy it to every host' });
      else add({ name: 'crl', status: next - now < 2 * DAY ? 'warn' : 'ok', detail: `${p} (${crl.issuer}), fresh until ${new Date(next).toISOString()}`, ...(next - now < 2 * DAY ? { fix: 'issue the next CRL before then: themis-pki crl --ca NAME' } : {}) });
    } catch (e) {
      add({ name: 'crl', status: 'fail', detail: `${p}: ${(e as Error).message}`, fix: 'point --crls (or tls.crls) at the PEM CRL of every CA' });
    }
  }
  let verifier: PeerVerifier | undefined;
  try {
    verifier = new PeerVerifier({ root: caPem, crls: crlPems, clock: systemClock });
  } catch (e) {
    add({ name: 'certificate', status: 'fail', detail: `cannot build the trust from ${caPath}: ${(e as Error).message}`, fix: 'point --ca at the root certificate (PEM)' });
  }

  // Certificates: the operator's (for etcd) and, on a host, the shard's.
  const certs: [string, string, Purpose][] = [[`operator ${certPath}`, certPath, 'clientAuth']];
  if (sidecar) certs.push([`shard ${sidecar.shardId} ${sidecar.tls.cert}`, sidecar.tls.cert, 'serverAuth']);
  for (const [what, path, purpose] of verifier ? certs : []) add(certificateCheck(verifier!, what, path, purpose, now, expiryDays));

  // etcd: reachable and this identity authorised to read the cluster's keys.
  let etcd: Etcd3 | undefined;
  let topology: Topology | undefined;
  let all: Record<string, string> = {};
  let etcdCrls: EtcdCrlNumbers | undefined;
  // etcd revisions: a report written before the topology was published says nothing about it.
  const revisions: Record<string, bigint> = {};
  let topologyRevision = 0n;
  const k = etcdKeys(cluster);
  try {
    etcd = connectEtcd({ endpoints, certPem: readFlagFile(certPath, 'cert'), keyPem: readFlagFile(keyPath, 'key'), caPem });
    const stored = await answerWithin(readSignedTopology(etcd, k.topology), 5000);
    const readShards = async () => {
      all = {};
      for (const kv of (await answerWithin(etcd!.getAll().prefix(k.shardsPrefix).exec(), 5000)).kvs) {
        all[kv.key.toString('utf8')] = kv.value.toString('utf8');
        revisions[kv.key.toString('utf8')] = BigInt(kv.mod_revision);
      }
    };
    await readShards();
    topologyRevision = BigInt(stored?.revision ?? 0);
    etcdCrls = await answerWithin(etcdCrlNumbers(etcd, cluster, caPem, systemClock), 5000);
    add({ name: 'etcd', status: 'ok', detail: `${endpoints.join(',')} answers and lets ${certPath} read /themis/${cluster}/` });
    const fk = failoverKeys(cluster);
    const failover = parseSnapshot(fk.base, (await answerWithin(etcd.getAll().prefix(fk.base).exec(), 5000)).kvs as never);
    for (const [group, r] of failover.rolledBack) {
      const last = failover.last.get(group);
      add({
        name: 'failover',
        status: 'fail',
        detail: `replica group ${group}: ${r.by} saw generation ${r.gen} held by ${r.holder}, etcd holds ${last ? `generation ${last.gen} (${last.shard})` : 'none'}: etcd was restored from an older snapshot; nobody takes or holds the group's term until this is resolved`,
        fix: `once every copy's sidecar runs: etcdctl put ${fk.last(group)} '${JSON.stringify({ shard: r.holder, gen: r.gen })}'; etcdctl del ${fk.acting(group)}; etcdctl del ${fk.rolledBack(group)} (docs/disaster-recovery.md)`,
      });
    }
    if (!stored) {
      add({ name: 'topology', status: 'fail', detail: `no topology published for cluster ${cluster} (${k.topology})`, fix: `publish one: themis-admin topology publish --plan topology.json --cluster ${cluster} (is --cluster right?)` });
    } else if (verifier) {
      const v = await verifySignedTopology(stored.signed ?? null, { verifier, cluster });
      if (v.ok) {
        topology = v.topology;
        add({ name: 'topology', status: 'ok', detail: `epoch ${v.topology.epoch}, ${Object.keys(v.topology.shards).length} shards, signed by ${v.signer.subject}` });
        // Right after a publish (shard add's cut-over) a sidecar may report once more before it
        // applies the new epoch (it applies within about a second, reports every 2 s): give the
        // reports that are behind up to 6 s to catch up before judging them.
        const epoch = v.topology.epoch;
        const servedBy = (id: string): unknown => {
          try {
            return (JSON.parse(all[k.shardReplication(id)] ?? 'null') as { topology_epoch?: unknown } | null)?.topology_epoch;
          } catch {
            return undefined;
          }
        };
        const behind = () => Object.keys(v.topology.shards).some((id) => {
          const served = servedBy(id);
          return typeof served === 'number' && served < epoch;
        });
        for (let i = 0; i < 6 && behind(); i++) {
          await new Promise((r) => setTimeout(r, 1000));
          await readShards();
        }
      } else add({ name: 'topology', status: 'fail', detail: `the published topology is refused (${v.reason}): ${v.message}`, fix: 'publish a newer one signed by an operator: themis-admin topology publish' });
    }
  } catch (e) {
    const msg = (e as Error).message;
    const denied = /permission denied|PERMISSION_DENIED|not authorized/i.test(msg);
    add({
      name: 'etcd',
      status: 'fail',
      detail: `${endpoints.join(',')}: ${msg}`,
      fix: denied ? 'grant the reader role: themis-admin etcd rbac apply' : 'is etcd running (systemctl status themis-etcd) and does its certificate name the address you dial? (docs/control-plane.md)',
    });
  } finally {
    etcd?.close();
  }

  // Registrations: every shard of the topology registered, alive, with a valid certificate,
  // serving the published epoch, with a clock within the replay window of this one.
  if (topology && verifier) {
    const window = sidecar?.replay.windowMs ?? 60_000;
    for (const id of Object.keys(topology.shards).sort()) for (const c of shardChecks(id, all, k, verifier, { epoch: topology.epoch, revision: topologyRevision, reportRevision: revisions[k.shardReplication(id)] ?? 0n }, now, window, etcdCrls)) add(c);
  }

  if (sidecar) {
    for (const [field, path] of writablePaths(sidecar)) {
      const problem = path.endsWith('/') ? folderWriteProblem(path.slice(0, -1)) : writeProblem(path);
      add(problem ? { name: 'cache', status: 'fail', detail: `${field} ${path}: cannot write (${problem})`, fix: `create the folder and give it to the sidecar's user: install -d -o themis -g themis $(dirname ${path})` } : { name: 'cache', status: 'ok', detail: `${field} ${path} is writable` });
    }
    add(await storageCheck(sidecar.storageUrl));
  }

  if (values.json) process.stdout.write(JSON.stringify({ ok: !checks.some((c) => c.status === 'fail'), checks }, null, 2) + '\n');
  const failed = checks.filter((c) => c.status === 'fail').length;
  const warned = checks.filter((c) => c.status === 'warn').length;
  if (!values.json) process.stdout.write(`${failed === 0 ? 'all checks passed' : `${failed} check${failed === 1 ? '' : 's'} failed`}${warned ? `, ${warned} warning${warned === 1 ? '' : 's'}` : ''}\n`);
  if (failed) process.exitCode = 1;
}

function line(c: Check): string {
  const mark = c.status === 'ok' ? '[ok]  ' : c.status === 'warn' ? '[warn]' : '[FAIL]';
  return `${mark} ${c.name.padEnd(12)} ${c.detail}\n${c.fix ? `       fix: ${c.fix}\n` : ''}`;
}

function certificateCheck(verifier: PeerVerifier, what: string, path: string, purpose: Purpose, now: number, expiryDays: number): Check {
  let chain: Uint8Array[];
  try {
    chain = parsePem(readFileSync(path, 'utf8'), path).filter((b) => b.label === 'CERTIFICATE').map((b) => new Uint8Array(b.der));
    if (chain.length === 0) throw new Error('holds no certificate');
  } catch (e) {
    return { name: 'certificate', status: 'fail', detail: `${what}: ${(e as Error).message}`, fix: 'point the flag or config at the certificate chain (leaf, then its CA)' };
  }
  const r = verifier.verify(chain, purpose);
  if (!r.ok) return { name: 'certificate', status: 'fail', detail: `${what} is refused (${r.reason}): ${r.message}`, fix: 'issue a new certificate: themis-pki issue-… (deploy/README.md, "Rotate a host\'s certificate")' };
  const left = r.peer.notAfter.getTime() - now;
  const days = Math.floor(left / DAY);
  if (left < expiryDays * DAY) return { name: 'certificate', status: 'warn', detail: `${what} (serial ${r.peer.serial}) expires in ${days} days, ${r.peer.notAfter.toISOString()}`, fix: 'rotate it now (deploy/README.md, "Rotate a host\'s certificate")' };
  return { name: 'certificate', status: 'ok', detail: `${what} (serial ${r.peer.serial}) valid for ${days} more days` };
}

export function shardChecks(id: string, all: Record<string, string>, k: ReturnType<typeof etcdKeys>, verifier: PeerVerifier, published: { epoch: number; revision: bigint; reportRevision: bigint }, now: number, windowMs: number, etcdCrls?: EtcdCrlNumbers): Check[] {
  const { epoch } = published;
  const json = (raw: string | undefined): any => {
    try {
      return raw === undefined ? undefined : JSON.parse(raw);
    } catch {
      return undefined;
    }
  };
  const cert = json(all[k.shardCertificate(id)]) as { cert_pem?: string } | undefined;
  if (!cert?.cert_pem) return [{ name: 'shard', status: 'fail', detail: `${id} is in the topology but has not registered`, fix: `start its sidecar (systemctl start themis-sidecar) and check its log (journalctl -u themis-sidecar)` }];
  const out: Check[] = [];
  let status = 'valid';
  try {
    const r = verifier.verify(parsePem(cert.cert_pem, id).map((b) => new Uint8Array(b.der)), 'serverAuth');
    if (!r.ok) status = r.reason;
  } catch (e) {
    status = (e as Error).message;
  }
  const alive = all[k.shardAlive(id)] !== undefined;
  const leaf = status === 'valid' ? new X509Certificate(cert.cert_pem) : undefined;
  if (status !== 'valid') out.push({ name: 'shard', status: 'fail', detail: `${id}: its registered certificate is ${status}`, fix: 'issue it a new certificate, install it and reload (systemctl reload themis-sidecar)' });
  else if (!alive) out.push({ name: 'shard', status: 'fail', detail: `${id} registered but not alive (no lease)`, fix: 'start its sidecar; journalctl -u themis-sidecar says why it stopped' });
  else out.push({ name: 'shard', status: 'ok', detail: `${id} registered, alive, certificate valid until ${new Date(leaf!.validTo).toISOString()}` });
  const report = json(all[k.shardReplication(id)]) as { topology_epoch?: number; updated_at?: string; crls?: unknown } | undefined;
  const crl = alive && report && etcdCrls ? crlRollbackCheck(id, report.crls, etcdCrls) : undefined;
  if (crl) out.push(crl);
  if (alive && !report) out.push({ name: 'topology', status: 'warn', detail: `${id} has not reported the epoch it serves yet (every 2 s once registered)`, fix: 'run the check again in a few seconds' });
  if (alive && report) {
    const served = report.topology_epoch;
    if (typeof served === 'number' && served > epoch) {
      // etcd holds an older topology than the cluster serves: a restored (or rolled-back) etcd. Sidecars refuse it; only a newer signed one moves on.
      out.push({ name: 'topology', status: 'fail', detail: `${id} serves epoch ${served}, newer than the ${epoch} etcd holds: etcd was restored from an older snapshot or rolled back; the sidecars refuse the older topology`, fix: `sign the decision: publish the topology in force at an epoch above ${served} (themis-admin topology plan … --epoch ${served + 1}, then topology publish; docs/disaster-recovery.md)` });
    } else if (served !== epoch && published.reportRevision < published.revision) {
      // Reported before this epoch was published (a shard add or remove just cut over): not a refusal yet.
      out.push({ name: 'topology', status: 'warn', detail: `${id} last reported epoch ${served}, before epoch ${epoch} was published (it reports every 2 s)`, fix: 'run the check again in a few seconds' });
    } else if (served !== epoch) out.push({ name: 'topology', status: 'fail', detail: `${id} serves epoch ${served}, the published one is ${epoch}`, fix: `see why it refused it: journalctl -u themis-sidecar | grep TOPOLOGY_REJECTED, or the audit trail` });
    else out.push({ name: 'topology', status: 'ok', detail: `${id} serves epoch ${epoch}` });
    const at = Date.parse(report.updated_at ?? '');
    if (Number.isFinite(at)) {
      // The report is at most REPORT_AGE_MS old: its time, against this clock, bounds the skew.
      const ahead = at - now;
      const behind = now - at - REPORT_AGE_MS;
      const skew = Math.max(ahead, behind, 0);
      if (skew > windowMs / 2) out.push({ name: 'clock', status: 'fail', detail: `${id}'s clock is ${Math.round((ahead > 0 ? ahead : -behind) / 1000)} s ${ahead > 0 ? 'ahead of' : 'behind'} this one; the replay window is ±${windowMs / 1000} s`, fix: 'run NTP on every host (timedatectl set-ntp true; chronyc tracking)' });
      else out.push({ name: 'clock', status: 'ok', detail: `${id}'s clock within ${Math.ceil(Math.max(skew, REPORT_AGE_MS) / 1000)} s of this one (replay window ±${windowMs / 1000} s)` });
    }
  }
  return out;
}

/** Every path the sidecar writes to: its caches and state. */
function writablePaths(c: SidecarConfig): [string, string][] {
  const out: [string, string][] = [['replay.stateFile', c.replay.stateFile], ['replication.stateDir', c.replication.stateDir + '/'], ['audit.file', c.auditFile]];
  if (c.etcd?.topology) out.push(['etcd.topologyCache', c.etcd.topologyCache]);
  if (c.etcd?.crls) out.push(['etcd.crlCache', c.etcd.crlCache]);
  return out;
}

async function storageCheck(url: string): Promise<Check> {
  try {
    const r = await fetch(`${url}/health`, { signal: AbortSignal.timeout(3000) });
    await r.arrayBuffer();
    if (r.ok) return { name: 'storage', status: 'ok', detail: `${url} answers` };
    return { name: 'storage', status: 'fail', detail: `${url}/health answered ${r.status}`, fix: 'journalctl -u themis-storage says why' };
  } catch (e) {
    return { name: 'storage', status: 'fail', detail: `${url}: ${(e as Error).cause instanceof Error ? ((e as Error).cause as Error).message : (e as Error).message}`, fix: 'start it: systemctl start themis-storage (journalctl -u themis-storage says why it stopped)' };
  }
}
