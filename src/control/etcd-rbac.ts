// Least privilege in etcd: users are certificate common names (etcd takes the CN of the client
// certificate as the user once authentication is on), roles are derived from what each
// verified certificate says (role, shard id, capabilities). Applying is idempotent: roles and
// users converge to the plan, then authentication is switched on.
//
// Rights, under /themis/{cluster}/:
// - every shard and every operator with a topology capability or view_topology: read all;
// - a shard: read-write on its own shards/{id}/, and on the shared keys shards coordinate
//   through (rebalance-status/, rebalance-cutover/, failover/) and the topology key itself,
//   which a rebalance's source writes at cutover (the operator's pre-signed next topology);
// - an operator with rebalance, add_shard or remove_shard: read-write on the topology, CRLs
//   and rebalance orders (rebalance/, rebalance-abort/, rebalance-switch/);
// - an operator with admin: etcd's root role (users, roles, maintenance);
// - a client: no user at all, so nothing.
import { randomBytes } from 'node:crypto';
import { Range, type Etcd3 } from 'etcd3';
import type { VerifiedPeer } from '../pki/verify.js';
import { etcdKeys } from './etcd.js';

type Perm = 'Read' | 'Write' | 'Readwrite';
export interface Grant {
  permission: Perm;
  /** The key, or the prefix when `prefix` is set. */
  key: string;
  prefix: boolean;
}
export interface RolePlan {
  name: string;
  grants: Grant[];
}
export interface UserPlan {
  /** The certificate's common name. */
  name: string;
  /** Its subject, serial and kind, for the report. */
  who: string;
  roles: string[];
}
export interface RbacPlan {
  roles: RolePlan[];
  users: UserPlan[];
}

const TOPOLOGY_CAPS = ['rebalance', 'add_shard', 'remove_shard'];

export const rbacRoleNames = (cluster: string) => ({
  read: `themis.${cluster}.read`,
  shards: `themis.${cluster}.shards`,
  shard: (id: string) => `themis.${cluster}.shard.${id}`,
  operator: `themis.${cluster}.operator`,
  root: 'root',
});

/** The common name of a certificate's subject (etcd's user name for it). */
export function commonNameOf(subject: string): string | undefined {
  return /(?:^|,\s*)CN=([^,]+)/.exec(subject)?.[1]?.trim();
}

/** The roles and users for these verified identities (shards and operators; others get nothing). */
export function planRbac(cluster: string, peers: readonly VerifiedPeer[]): RbacPlan {
  const k = etcdKeys(cluster);
  const base = `/themis/${cluster}/`;
  const names = rbacRoleNames(cluster);
  const rw = (key: string, prefix = true): Grant => ({ permission: 'Readwrite', key, prefix });
  const roles = new Map<string, RolePlan>();
  roles.set(names.read, { name: names.read, grants: [{ permission: 'Read', key: base, prefix: true }] });
  const users = new Map<string, UserPlan>();
  for (const p of peers) {
    const cn = commonNameOf(p.subject);
    if (!cn) continue;
    const caps = p.identity.capabilities as readonly string[];
    const want: string[] = [];
    if (p.identity.role === 'primary' || p.identity.role === 'replica') {
      const id = p.identity.shardId;
      roles.set(names.shards, {
        name: names.shards,
        grants: [rw(k.topology, false), rw(`${base}rebalance-status/`), rw(k.rebalanceCutoverPrefix), rw(`${base}failover/`)],
      });
      roles.set(names.shard(id), { name: names.shard(id), grants: [rw(`${k.shardsPrefix}${id}/`)] });
      want.push(names.read, names.shards, names.shard(id));
    } else if (p.identity.role === 'operator') {
      if (caps.includes('view_topology') || caps.some((c) => TOPOLOGY_CAPS.includes(c))) want.push(names.read);
      if (caps.some((c) => TOPOLOGY_CAPS.includes(c))) {
        roles.set(names.operator, {
          name: names.operator,
          grants: [rw(k.topology, false), rw(`${base}crl/`), rw(k.rebalancePrefix), rw(k.rebalanceAbortPrefix), rw(`${base}rebalance-switch/`)],
        });
        want.push(names.operator);
      }
      if (caps.includes('admin')) want.push(names.root);
    }
    if (want.length === 0) continue;
    const prev = users.get(cn);
    const merged = [...new Set([...(prev?.roles ?? []), ...want])].sort();
    users.set(cn, { name: cn, who: `${p.subject} (serial ${p.serial})`, roles: merged });
  }
  return { roles: [...roles.values()], users: [...users.values()] };
}

export interface ApplyReport {
  changes: string[];
}

const sameGrant = (a: { permission: string; start: string; end: string }, b: { permission: string; start: string; end: string }) =>
  a.permission === b.permission && a.start === b.start && a.end === b.end;

function rangeOf(g: Grant): { start: string; end: string } {
  if (!g.prefix) return { start: g.key, end: '' };
  const r = Range.prefix(g.key);
  return { start: r.start.toString('latin1'), end: r.end.toString('latin1') };
}

/**
 * Makes etcd's roles and users match `plan` (roles named themis.{cluster}.* that a planned user
 * holds but should not are revoked), creates the root user if needed, and switches
 * authentication on. Users that are not in the plan are left alone.
 */
export async function applyRbac(etcd: Etcd3, cluster: string, plan: RbacPlan): Promise<ApplyReport> {
  const changes: string[] = [];
  const existingRoles = new Set((await etcd.getRoles()).map((r) => r.name));
  for (const role of plan.roles) {
    if (!existingRoles.has(role.name)) {
      await etcd.role(role.name).create();
      changes.push(`role ${role.name} created`);
    }
    const have = (await etcd.role(role.name).permissions()).map((p) => ({ permission: p.permission as string, start: p.range.start.toString('latin1'), end: p.range.end.toString('latin1') }));
    const want = role.grants.map((g) => ({ permission: g.permission as string, ...rangeOf(g) }));
    for (const h of have) {
      if (want.some((w) => sameGrant(w, h))) continue;
      await etcd.auth.roleRevokePermission({ role: role.name, key: Buffer.from(h.start, 'latin1'), range_end: Buffer.from(h.end, 'latin1') });
      changes.push(`role ${role.name}: revoked ${h.permission} ${printable(h)}`);
    }
    for (const w of want) {
      if (have.some((h) => sameGrant(w, h))) continue;
      await etcd.auth.roleGrantPermission({ name: role.name, perm: { permType: w.permission as Perm, key: Buffer.from(w.start, 'latin1'), range_end: Buffer.from(w.end, 'latin1') } });
      changes.push(`role ${role.name}: granted ${w.permission} ${printable(w)}`);
    }
  }
  const existingUsers = new Set((await etcd.getUsers()).map((u) => u.name));
  const ensureUser = async (name: string) => {
    if (existingUsers.has(name)) return;
    // Certificates authenticate these users; the password is random and never kept.
    await etcd.user(name).create(randomBytes(32).toString('base64url'));
    existingUsers.add(name);
    changes.push(`user ${name} created`);
  };
  await ensureUser('root');
  const rootRoles = (await etcd.user('root').roles()).map((r) => r.name);
  if (!rootRoles.includes('root')) {
    await etcd.user('root').addRole('root');
    changes.push('user root: granted role root');
  }
  const ours = (role: string) => role.startsWith(`themis.${cluster}.`) || role === 'root';
  for (const u of plan.users) {
    await ensureUser(u.name);
    const have = (await etcd.user(u.name).roles()).map((r) => r.name);
    for (const r of have) {
      if (ours(r) && !u.roles.includes(r)) {
        await etcd.user(u.name).removeRole(r);
        changes.push(`user ${u.name}: revoked role ${r}`);
      }
    }
    for (const r of u.roles) {
      if (have.includes(r)) continue;
      await etcd.user(u.name).addRole(r);
      changes.push(`user ${u.name}: granted role ${r}`);
    }
  }
  // etcd 3.4 has no AuthStatus; enabling again is harmless there.
  const enabled = await etcd.auth.authStatus().then((r) => r.enabled, () => undefined);
  if (enabled !== true) {
    await etcd.auth.authEnable();
    if (enabled === false) changes.push('authentication enabled');
  }
  return { changes };
}

function printable(g: { start: string; end: string }): string {
  if (!g.end) return g.start;
  return `prefix ${g.start}`;
}
