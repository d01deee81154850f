// The mesh port's signature stages one by one, with real keys and real signatures (nothing of
// the crypto is stubbed): each accepts the genuine request and refuses the one thing it guards.
// The integration tests (mesh-signed-requests, mesh-signed-general-path) show the same refusals
// through real sidecars; these pin every stage's own condition cheaply enough to mutate.
import t from 'tap';
import { Readable } from 'node:stream';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { FakeClock, SeededRandom } from '../../../../src/runtime.js';
import { RequestSigner, sha256Hex } from '../../../../src/signing/sign.js';
import { ReplayGuard } from '../../../../src/signing/replay-guard.js';
import { localAdmission } from '../../../../src/signing/replay-admission.js';
import { H } from '../../../../src/signing/canonical.js';
import { signedHeaders } from '../../../../proxy/stages/signed-headers.js';
import { signature } from '../../../../proxy/stages/signature.js';
import { body } from '../../../../proxy/stages/body.js';
import { identity } from '../../../../proxy/stages/identity.js';
import { capability, requireCapability } from '../../../../proxy/stages/capability.js';
import { timestamp } from '../../../../proxy/stages/timestamp.js';
import { replay } from '../../../../proxy/stages/replay.js';
import { verified } from '../../../../proxy/stages/verified.js';
import { runStages, type MeshRequest, type Stage, type StageDeps } from '../../../../proxy/stages/mesh-request.js';
import type { MeshPeer, PeerKind } from '../../../../proxy/peer-identity.js';

const ec = (): { privateKey: KeyObject; publicKey: KeyObject } => generateKeyPairSync('ec', { namedCurve: 'P-256' });
const alice = ec();
const mallory = ec();
const clock = new FakeClock(1_767_225_600_000);
const signer = new RequestSigner(alice.privateKey, 'shard-001', '1f', clock, new SeededRandom(7));
const URL_ = '/entities/document.shop.orders:9f1c1d9e-4b7e-4f4e-8a55-0c7c2b6f0f11';
const BODY = Buffer.from('{"blob":"{\\"n\\":1}"}');

function peer(over: Partial<MeshPeer> & { kind?: PeerKind; capabilities?: string[]; shardId?: string } = {}): MeshPeer {
  return {
    kind: over.kind ?? 'shard',
    identity: { shardId: over.shardId ?? 'shard-001', capabilities: over.capabilities ?? ['read', 'write', 'replicate'] },
    serial: over.serial ?? '1f',
    subject: 'CN=shard-001',
    issuer: 'CN=cluster CA',
    notAfter: new Date(clock.now() + 86_400_000),
    publicKey: over.publicKey ?? alice.publicKey,
    address: '127.0.0.2:40000',
    chain: [],
  } as unknown as MeshPeer;
}

function request(opts: { method?: string; url?: string; headers?: Record<string, string>; body?: Buffer; peer?: MeshPeer; capability?: string } = {}): MeshRequest {
  const method = opts.method ?? 'PUT';
  const bytes = opts.body ?? BODY;
  const headers = opts.headers ?? { ...signer.headers(method, opts.url ?? URL_, sha256Hex(bytes)), 'content-length': String(bytes.length) };
  return {
    method,
    url: opts.url ?? URL_,
    headers,
    peer: opts.peer ?? peer(),
    op: { kind: 'entity', capability: opts.capability ?? 'write' },
    source: Object.assign(Readable.from(bytes.length ? [bytes] : []), { socket: { destroySoon: () => {} } }),
  } as unknown as MeshRequest;
}

type Floors = Parameters<typeof localAdmission>[1];

function deps(over: Partial<StageDeps> & { floors?: Floors } = {}): StageDeps & { covered: [string, number][]; verifiedPeers: MeshPeer[] } {
  const covered: [string, number][] = [];
  const verifiedPeers: MeshPeer[] = [];
  const { floors = { cover: (s: string, ts: number) => void covered.push([s, ts]) }, ...rest } = over;
  const guard = rest.replay ?? new ReplayGuard(clock);
  return {
    self: 'shard-002',
    verified: (p) => verifiedPeers.push(p),
    replay: guard,
    admit: localAdmission(guard, floors),
    maxBodyBytes: 1024,
    topology: undefined as unknown as StageDeps['topology'],
    offloadSignature: () => false,
    ...rest,
    covered,
    verifiedPeers,
  };
}

const SIGNATURE_STAGES: Stage[] = [signedHeaders, timestamp, signature, identity, capability, body, replay, verified];

t.test('a genuine signed request passes every stage, and is remembered', async (t) => {
  const r = request();
  const d = deps();
  await runStages(SIGNATURE_STAGES, r, d);
  t.equal(r.sig?.shardId, 'shard-001');
  t.same(r.body, BODY, 'the body is read');
  t.same(d.covered, [['shard-001', clock.now()]], "the sender's persisted mark covers the timestamp");
  t.equal(d.verifiedPeers.length, 1, 'the verified peer is reported once');
  t.equal(d.verifiedPeers[0], r.peer);
  // The same headers again: the nonce is known.
  await t.rejects(runStages(SIGNATURE_STAGES, request({ headers: r.headers as Record<string, string> }), d), { code: 'REPLAY_DETECTED' });
});

t.test('signed headers: parsed onto the request; malformed ones refused', async (t) => {
  const r = request();
  signedHeaders(r, deps());
  t.same(r.sig?.signature, Buffer.from((r.headers as Record<string, string>)[H.signature]!, 'base64'));
  const h = { ...(r.headers as Record<string, string>) };
  delete h[H.nonce];
  t.throws(() => signedHeaders(request({ headers: h }), deps()), { code: 'SIGNATURE_HEADERS_INVALID' });
});

t.test('signature: refused when anything signed differs or another key signed', async (t) => {
  const ok = request();
  signedHeaders(ok, deps());
  t.doesNotThrow(() => signature(ok, deps()));
  const cases: [string, MeshRequest][] = [
    ['another method', request({ method: 'DELETE', headers: ok.headers as Record<string, string> })],
    ['another path', request({ url: `${URL_}x`, headers: ok.headers as Record<string, string> })],
    ['another key (the peer certificate is not the signer)', request({ headers: ok.headers as Record<string, string>, peer: peer({ publicKey: mallory.publicKey }) })],
    ['another shard id in the headers', request({ headers: { ...(ok.headers as Record<string, string>), [H.shardId]: 'shard-009' } })],
    ['another timestamp', request({ headers: { ...(ok.headers as Record<string, string>), [H.timestamp]: String(clock.now() + 1) } })],
  ];
  for (const [what, r] of cases) {
    signedHeaders(r, deps());
    t.throws(() => signature(r, deps()), { code: 'SIGNATURE_INVALID', message: 'the signature does not verify over the canonical string with the peer certificate key' }, what);
    // The same on libuv's thread pool: the stage's promise rejects with the same error.
    await t.rejects(signature(r, deps({ offloadSignature: () => true })) as Promise<void>, { code: 'SIGNATURE_INVALID', message: 'the signature does not verify over the canonical string with the peer certificate key' }, `${what} (thread pool)`);
  }
  // A signature that is not even DER is refused, not thrown as something else.
  const garbage = request({ headers: { ...(ok.headers as Record<string, string>), [H.signature]: Buffer.from('not a signature').toString('base64') } });
  signedHeaders(garbage, deps());
  await t.rejects(signature(garbage, deps({ offloadSignature: () => true })) as Promise<void>, { code: 'SIGNATURE_INVALID' }, 'garbage (thread pool)');
  const pooled = signature(ok, deps({ offloadSignature: () => true }));
  t.ok(pooled instanceof Promise, 'with the thread pool the stage waits for it');
  await t.resolves(pooled as Promise<void>, 'the genuine signature verifies on the thread pool');
});

t.test('signing on the thread pool: the same headers, verified either way; the stages keep their order', async (t) => {
  const pooled = new RequestSigner(alice.privateKey, 'shard-001', '1f', clock, new SeededRandom(8), () => true);
  t.equal(pooled.offload(), true);
  const headers: Record<string, string> = { ...(await pooled.headersAsync('PUT', URL_, sha256Hex(BODY))), 'content-length': String(BODY.length) };
  t.same(Object.keys(headers).sort(), Object.keys(request().headers).sort(), 'the same header names as signing on the event loop');
  t.equal(headers[H.timestamp], String(clock.now()));
  const r = request({ headers });
  const d = deps({ offloadSignature: () => true });
  await runStages(SIGNATURE_STAGES, r, d);
  t.same(d.covered, [['shard-001', clock.now()]], 'accepted and remembered');
  signedHeaders(r, deps());
  t.doesNotThrow(() => signature(r, deps()), 'a pool-made signature verifies on the event loop too');
  // Two faults at once, the signature checked on the pool: the earlier stage (timestamp) still reports.
  const stale = new RequestSigner(mallory.privateKey, 'shard-001', '1f', new FakeClock(clock.now() - 120_000), new SeededRandom(9), () => true);
  const both = request({ headers: { ...(await stale.headersAsync('PUT', URL_, sha256Hex(BODY))), 'content-length': String(BODY.length) } });
  await t.rejects(runStages(SIGNATURE_STAGES, both, deps({ offloadSignature: () => true })), { code: 'TIMESTAMP_OUT_OF_WINDOW' });
  // A bad signature with a nonce already seen: the signature (pool) reports before the replay cache.
  const seen = request({ headers: { ...(r.headers as Record<string, string>), [H.signature]: (await stale.headersAsync('PUT', URL_, sha256Hex(BODY)))[H.signature]! } });
  await t.rejects(runStages(SIGNATURE_STAGES, seen, d), { code: 'SIGNATURE_INVALID' });
});

t.test('body: must match the signed hash; unsigned bodies are only read; the size cap holds', async (t) => {
  const r = request();
  signedHeaders(r, deps());
  await body(r, deps());
  t.same(r.body, BODY);
  const tampered = request({ headers: r.headers as Record<string, string>, body: Buffer.from('{"blob":"{\\"n\\":2}"}') });
  signedHeaders(tampered, deps());
  await t.rejects(async () => body(tampered, deps()), { code: 'SIGNATURE_INVALID', message: 'the body does not match the signed x-themis-content-sha256' });
  const unsigned = request({ headers: {}, body: Buffer.from('anything') });
  await body(unsigned, deps());
  t.equal(unsigned.body?.toString(), 'anything', 'no signature, nothing to compare');
  const big = request({ body: Buffer.alloc(2000, 1) });
  signedHeaders(big, deps());
  await t.rejects(async () => body(big, deps()), { code: 'PAYLOAD_TOO_LARGE' });
});

t.test('identity: the signed sender must be the TLS peer (shard id and serial)', async (t) => {
  const check = (p: MeshPeer): void => {
    const r = request({ peer: p });
    signedHeaders(r, deps());
    identity(r, deps());
  };
  t.doesNotThrow(() => check(peer()));
  t.throws(() => check(peer({ shardId: 'shard-002' })), { code: 'IDENTITY_MISMATCH', message: /shard/ });
  t.throws(() => check(peer({ serial: '20' })), { code: 'IDENTITY_MISMATCH', message: /serial/ });
});

t.test("capability: in the certificate's list and within its kind's ceiling", async (t) => {
  t.doesNotThrow(() => capability(request({ capability: 'write' }), deps()));
  t.throws(() => capability(request({ capability: 'write', peer: peer({ capabilities: ['read'] }) }), deps()), {
    code: 'CAPABILITY_DENIED',
    message: 'certificate 1f lacks the "write" capability this operation needs',
    details: { needed: 'write' },
  });
  // A client certificate carrying `replicate` (no CA of ours issues one) still may not replicate.
  t.throws(() => requireCapability(peer({ kind: 'client', capabilities: ['read', 'replicate'] }), 'replicate'), { code: 'CAPABILITY_DENIED' });
  t.doesNotThrow(() => requireCapability(peer({ kind: 'shard', capabilities: ['replicate'] }), 'replicate'));
  // An operator certificate never has a data-path capability, whatever it lists.
  t.throws(() => requireCapability(peer({ kind: 'operator', capabilities: ['read', 'admin'] }), 'read'), { code: 'CAPABILITY_DENIED' });
});

t.test('timestamp: within the window around now', async (t) => {
  const r = request();
  signedHeaders(r, deps());
  t.doesNotThrow(() => timestamp(r, deps()));
  const d = deps({ replay: new ReplayGuard(new FakeClock(clock.now() + 60_001)) });
  t.throws(() => timestamp(r, d), { code: 'TIMESTAMP_OUT_OF_WINDOW' });
});

t.test('replay: the nonce is remembered per sender, then the persisted mark must cover it', async (t) => {
  const d = deps();
  const r = request();
  signedHeaders(r, d);
  let resolved = false;
  const waited = deps({ replay: d.replay, floors: { cover: () => new Promise<void>((res) => setTimeout(() => ((resolved = true), res()), 5)) } });
  await replay(r, waited);
  t.ok(resolved, "the stage waits for the sender's mark to be persisted");
  const again = request({ headers: r.headers as Record<string, string> });
  signedHeaders(again, d);
  t.throws(() => replay(again, d), { code: 'REPLAY_DETECTED' }, 'the nonce was remembered before the wait');
  t.same(d.covered, [], 'a refused replay moves no mark');
});

t.test('runStages: in order, awaiting the asynchronous ones, stopping at the first refusal', async (t) => {
  const seen: string[] = [];
  const mk = (name: string, fail = false, wait = false): Stage => () => {
    if (wait) return new Promise<void>((res) => setTimeout(() => (seen.push(name), res()), 5));
    seen.push(name);
    if (fail) throw new Error(name);
  };
  await runStages([mk('a'), mk('b', false, true), mk('c')], request(), deps());
  t.same(seen, ['a', 'b', 'c'], 'the asynchronous stage finished before the next began');
  seen.length = 0;
  await t.rejects(runStages([mk('a'), mk('b', true), mk('c')], request(), deps()), { message: 'b' });
  t.same(seen, ['a', 'b'], 'no stage after a refusal runs');
});
