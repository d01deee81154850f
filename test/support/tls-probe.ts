// A TLS handshake against a mesh-side listener, for tests that check who gets in: the
// negotiated protocol and ALPN, or 'refused'.
import tls from 'node:tls';

export type Probe = { protocol: string | null; alpn: string | false | null } | 'refused';

export function probeHandshake(host: string, port: number, ca: string, o: tls.ConnectionOptions = {}): Promise<Probe> {
  return new Promise((resolve) => {
    const s = tls.connect({ host, port, ca, servername: 'localhost', ALPNProtocols: ['h2'], checkServerIdentity: () => undefined, ...o }, () => {
      // TLS 1.3: a refused client certificate shows up as an alert right after the handshake.
      s.once('data', () => undefined);
      setTimeout(() => {
        resolve(s.destroyed ? 'refused' : { protocol: s.getProtocol(), alpn: s.alpnProtocol });
        s.destroy();
      }, 200);
    });
    s.once('error', () => resolve('refused'));
  });
}
