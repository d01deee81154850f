// A raw HTTP/2 mTLS client for the mesh port, so tests can present any certificate and send
// any headers — including forged ones. Signing here is done by hand with node:crypto, from
// the protocol text, independently of src/signing.
import http2 from 'node:http2';
import { createHash, createPrivateKey, randomBytes, sign } from 'node:crypto';

export interface MeshReply {
  status: number;
  headers: http2.IncomingHttpHeaders;
  text: string;
  body: any;
}

export interface Identity {
  cert: string; // chain PEM
  key: string;
  ca: string;
}

export function meshConnect(endpoint: string, id: Identity, extra: Partial<http2.SecureClientSessionOptions> = {}): http2.ClientHttp2Session {
  const s = http2.connect(`https://${endpoint}`, { cert: id.cert, key: id.key, ca: id.ca, servername: 'localhost', ...extra });
  s.on('error', () => undefined);
  return s;
}

export function meshRequest(session: http2.ClientHttp2Session, method: string, path: string, headers: Record<string, string> = {}, body?: string | Buffer): Promise<MeshReply> {
  return new Promise((resolve, reject) => {
    const s = session.request({ ':method': method, ':path': path, ...headers }, { endStream: body === undefined });
    let h: http2.IncomingHttpHeaders = {};
    let text = '';
    s.on('response', (r) => (h = r));
    s.setEncoding('utf8');
    s.on('data', (d: string) => (text += d));
    s.on('end', () => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      resolve({ status: Number(h[':status']), headers: h, text, body: parsed });
    });
    s.on('error', reject);
    s.on('close', () => {
      if (h[':status'] === undefined) reject(new Error(`stream closed without a response (code ${s.rstCode})`));
    });
    if (body !== undefined) s.end(body);
  });
}

export interface SignOptions {
  shardId: string;
  serial: string;
  key: string;
  method: string;
  path: string;
  body?: string;
  timestamp?: number;
  nonce?: string;
}

/** The six headers, signed per ARCHITECTURE.md "Mesh protocol". */
export function signHeaders(o: SignOptions): Record<string, string> {
  const timestamp = String(o.timestamp ?? Date.now());
  const nonce = o.nonce ?? randomBytes(8).toString('hex');
  const contentSha256 = createHash('sha256').update(o.body ?? '').digest('hex');
  const canonical = ['THEMIS-SIG-V1', o.method, o.path, o.shardId, o.serial, timestamp, nonce, contentSha256].join('\n');
  const signature = sign('sha256', Buffer.from(canonical), createPrivateKey(o.key)).toString('base64');
  return {
    'x-themis-shard-id': o.shardId,
    'x-themis-cert-serial': o.serial,
    'x-themis-timestamp': timestamp,
    'x-themis-nonce': nonce,
    'x-themis-content-sha256': contentSha256,
    'x-themis-signature': signature,
  };
}
