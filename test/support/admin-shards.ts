// `themis-admin shards --json` against a test mesh's etcd, as the read-only operator, with the
// mesh's current CRLs: what an operator sees of the registered shards.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runProgram } from './cli.js';
import type { Mesh } from './mesh.js';

export interface ShardRow {
  shard: string;
  endpoint: string | null;
  alive: boolean;
  serial: string;
  issuer: string | null;
  status: string;
  replication: Record<string, { state: string; lag_changes: number }> | null;
  acting: { group: string; term: number }[];
}

export function adminShards(mesh: Mesh): ShardRow[] {
  const crls = mesh.pki.crls().map((c, i) => {
    const f = join(mesh.dir, `admin-crl-${i}.pem`);
    writeFileSync(f, c);
    return f;
  });
  const ro = mesh.pki.operators.readonly;
  const r = runProgram('themis-admin', ['shards', '--etcd', mesh.etcd!.endpoint, '--ca', mesh.pki.root.certPath, '--cert', ro.chainPath, '--key', ro.keyPath, '--cluster', mesh.pki.cluster, '--crls', crls.join(','), '--json']);
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as ShardRow[];
}
