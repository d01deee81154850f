// PeerSession with signatures on the thread pool: while a request is being signed off the event
// loop, its session may be rolled over (certificate rotation) or lost. Nothing was sent yet, so
// the request goes on the session there is now. Real TLS 1.3 and HTTP/2 with certificates of our
// PKI, real signatures on libuv's pool.
import t from 'tap';
import http2, { type ServerHttp2Session } from 'node:http2';
import { createPrivateKey } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { createPkiFixture } from '../../support/pki-fixture.js';
import { PeerSession, type ClientTls } from '../../../proxy/peer-session.js';
import { RequestSigner } from '../../../src/signing/sign.js';
import { systemClock, systemRandom } from '../../../src/runtime.js';
import { silentLogger } from '../../../src/log.js';
import { H } from '../../../src/signing/canonical.js';

const fx = await createPkiFixture({ shards: 2 });
t.teardown(() => fx.cleanup());
const [a, b] = [fx.shards[0]!, fx.shards[1]!];
const plainKey = (pem: string) => createPrivateKey({ key: pem, passphrase: fx.passphrase }).export({ type: 'pkcs8', format: 'pem' }) as string;

// B: answers every request with the number of the session it came on (1, 2, …) and the signed nonce.
const sessions: ServerHttp2Session[] = [];
const server = http2.createSecureServer({ cert: b.chain, key: plainKey(b.key), ca: fx.root.cert, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' });
server.on('session', (s) => sessions.push(s));
server.on('stream', (stream, headers) => {
  const n = sessions.indexOf(stream.session as ServerHttp2Session) + 1;
  stream.respond({ ':status': 200, 'content-type': 'application/json' });
  stream.end(JSON.stringify({ session: n, nonce: headers[H.nonce] }));
});
server.listen(0, '127.0.0.1');
await once(server, 'listening');
t.teardown(() => {
  for (const s of sessions) s.destroy();
  server.close();
});

/** A PeerSession to B whose signer signs on the pool and calls `duringSign` once it has taken the session. */
function peerWithHook(duringSign: (peer: PeerSession) => void): { peer: PeerSession; arm: () => void } {
  let armed = false;
  let peer: PeerSession;
  const signer = new RequestSigner(createPrivateKey({ key: a.key, passphrase: fx.passphrase }), a.id, a.serial, systemClock, systemRandom, () => {
    // offload() is asked after the request has taken its session and before the signature is
    // made; the hook runs in a microtask, long before the pool thread hands the signature back.
    if (armed) {
      armed = false;
      queueMicrotask(() => duringSign(peer));
    }
    return true;
  });
  const tls = (): ClientTls => ({ cert: a.chain, key: plainKey(a.key), ca: fx.root.cert, crl: fx.crls(), signer });
  peer = new PeerSession(b.id, `127.0.0.1:${(server.address() as AddressInfo).port}`, {
    connectTimeoutMs: 5000, requestTimeoutMs: 5000, backoffInitialMs: 10, backoffMaxMs: 100,
    tls, verifyServer: () => ({ serial: b.serial, chain: [] }), clock: systemClock, log: silentLogger,
  });
  return { peer, arm: () => (armed = true) };
}

async function get(peer: PeerSession): Promise<{ session: number; nonce: string }> {
  const up = await peer.request({ method: 'GET', path: '/entities/document.t.items:1', headers: {} });
  const chunks: Buffer[] = [];
  for await (const c of up.body) chunks.push(c as Buffer);
  t.equal(up.status, 200);
  return JSON.parse(Buffer.concat(chunks).toString()) as { session: number; nonce: string };
}

t.test('a session rolled over while a request is signed on the pool: the request goes on the new session', async (t) => {
  const { peer, arm } = peerWithHook((p) => p.roll());
  t.teardown(() => peer.close());
  const first = await get(peer);
  arm();
  const second = await get(peer);
  t.equal(second.session, first.session + 1, 'sent on a new session, not refused on the retired one');
  t.not(second.nonce, first.nonce);
  const third = await get(peer);
  t.equal(third.session, second.session, 'and the new session stays in use');
});

t.test('a session lost while a request is signed on the pool: the request reconnects and goes', async (t) => {
  const { peer, arm } = peerWithHook((p) => p.reset('test: session lost during signing'));
  t.teardown(() => peer.close());
  const first = await get(peer);
  arm();
  const second = await get(peer);
  t.equal(second.session, first.session + 1, 'sent on a new session');
});
