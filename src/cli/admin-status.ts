// `themis-admin status [--json] [--watch]`: the cluster on one screen, read from etcd with a
// reader's certificate: shards and liveness, each one's share of ranges and keys, the epoch each
// sidecar serves (lagging ones flagged), replication lag, moves in progress, certificates expiring
// soon and stale CRLs. src/status/ reads, builds and draws it (the web console serves the same).
import { readerCertPem } from './reader-identity.js';
import { connectEtcd } from '../control/etcd.js';
import { PeerVerifier } from '../pki/verify.js';
import { systemClock } from '../runtime.js';
import { parseFlags, requireFlag, readFlagFile, crlsFlag, etcdFlag, intFlag } from './cli-common.js';
import { renderStatus, type ClusterStatus } from '../status/cluster-status.js';
import { readClusterStatus } from '../status/read-status.js';

export const STATUS_USAGE = `themis-admin status --etcd https://HOST:2379 --ca ROOT.pem --cert CHAIN.pem --key KEY.pem
        --cluster NAME --crls A.pem,B.pem,… [--json] [--watch [--every MS]] [--expiring-days 30]
  The cluster on one screen: shards and liveness, each shard's share of ranges, tokens and keys,
  the epoch each sidecar serves (! lagging behind the published one), replication lag, moves
  in progress, certificates expiring within --expiring-days (!) and stale CRLs, then warnings.
  --watch draws it again every --every ms (default 2000) until interrupted; with --json, one
  JSON document per line each time. Exit status 1 when there is any warning (without --watch).`;

export async function statusCommand(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, {
    etcd: { type: 'string' }, ca: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' },
    cluster: { type: 'string' }, crls: { type: 'string' }, json: { type: 'boolean' }, watch: { type: 'boolean' },
    every: { type: 'string' }, 'expiring-days': { type: 'string' },
  });
  const endpoints = etcdFlag(values.etcd);
  const cluster = requireFlag(values.cluster, 'cluster', 'cluster-prod');
  const caPem = readFlagFile(requireFlag(values.ca, 'ca', 'pki/root/cert.pem'), 'ca');
  const crls = crlsFlag(values.crls);
  const everyMs = intFlag(values.every, 'every', 2000, 200, 3_600_000);
  const expiringDays = intFlag(values['expiring-days'], 'expiring-days', 30, 0, 3650);
  const etcd = connectEtcd({
    endpoints,
    certPem: readerCertPem(values),
    keyPem: readFlagFile(requireFlag(values.key, 'key', 'pki/operators/readonly/key.pem'), 'key'),
    caPem,
  });
  const verifier = new PeerVerifier({ root: caPem, crls, clock: systemClock });
  const read = () => readClusterStatus({ etcd, cluster, caPem, verifier, clock: systemClock, expiringDays });
  const draw = (s: ClusterStatus) => process.stdout.write(values.json ? JSON.stringify(s, null, values.watch ? undefined : 2) + '\n' : (values.watch ? '\x1b[2J\x1b[H' : '') + renderStatus(s));
  try {
    if (!values.watch) {
      const s = await read();
      draw(s);
      if (s.warnings.length) process.exitCode = 1;
      return;
    }
    let stop = false;
    process.once('SIGINT', () => (stop = true));
    process.once('SIGTERM', () => (stop = true));
    while (!stop) {
      // An etcd outage is shown and waited out, not fatal: the screen says what it cannot read.
      await read().then(draw, (e: Error) => process.stdout.write(values.json ? JSON.stringify({ cluster, at: new Date().toISOString(), error: e.message }) + '\n' : `cannot read the cluster's state: ${e.message}\n`));
      const until = Date.now() + everyMs;
      while (!stop && Date.now() < until) await new Promise((r) => setTimeout(r, Math.min(100, until - Date.now())));
    }
  } finally {
    etcd.close();
  }
}
