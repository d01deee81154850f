// Who may act as a group's primary, by its own certificate: each refusal, and the one that passes.
import t from 'tap';
import type { ThemisIdentity } from '../../../../src/pki/identity-extension.js';
import type { ReplicaGroup } from '../../../../src/topology/replica-groups.js';
import { ineligibility } from '../../../../proxy/failover/eligibility.js';

const group: ReplicaGroup = { id: 'g', owner: 'a', replicas: ['b'], copies: ['a', 'b'], ranges: [{ start: 100n, end: 200n }, { start: 300n, end: 400n }] };
const identity = (o: Partial<ThemisIdentity> = {}): ThemisIdentity => ({
  shardId: 'b', datacenter: 'dc1', tokenRangeStart: 0n, tokenRangeEnd: 1000n, capabilities: ['read', 'write', 'replicate'], role: 'replica', ...o,
});
const NOW = Date.parse('2026-11-28T00:00:00Z');
const cert = (o: Partial<ThemisIdentity> = {}, extra: { notAfter?: Date; ownRevoked?: string } = {}) => ({ identity: identity(o), notAfter: extra.notAfter ?? new Date(NOW + 86_400_000), ownRevoked: extra.ownRevoked });

t.test('a replica-role certificate with replicate covering the group may take over by failover', async (t) => {
  t.equal(ineligibility(cert(), group, false, NOW), undefined);
});

t.test('a replica-role certificate may not take a group\'s first term; a primary-role one may', async (t) => {
  t.match(ineligibility(cert(), group, true, NOW), /"replica" certificate takes a group's first term only by failover/);
  t.equal(ineligibility(cert({ role: 'primary' }), group, true, NOW), undefined);
});

t.test('without replicate, no failover', async (t) => {
  t.match(ineligibility(cert({ capabilities: ['read', 'write'] }), group, false, NOW), /lacks the replicate capability/);
});

t.test('a certified range that misses part of the group', async (t) => {
  t.match(ineligibility(cert({ tokenRangeStart: 150n }), group, false, NOW), /does not cover 64–c8/);
  t.match(ineligibility(cert({ tokenRangeEnd: 399n }), group, false, NOW), /does not cover 12c–190/);
});

t.test('an expired or revoked certificate', async (t) => {
  t.match(ineligibility(cert({}, { notAfter: new Date(NOW) }), group, false, NOW), /expired/);
  t.match(ineligibility(cert({}, { ownRevoked: 'keyCompromise' }), group, false, NOW), /revoked \(keyCompromise\)/);
});
