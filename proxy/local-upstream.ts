// The local storage node: plaintext HTTP/1.1 on loopback through one keep-alive agent.
import http from 'node:http';
import { Readable } from 'node:stream';
import { TimeoutError, upstreamError, type Upstream, type UpstreamRequest, type UpstreamResponse } from './upstream.js';

export interface LocalUpstreamOptions {
  /** e.g. http://127.0.0.1:8765 */
  url: string;
  requestTimeoutMs: number;
  maxSockets?: number;
}

export class LocalUpstream implements Upstream {
  readonly name: string;
  private readonly agent: http.Agent;
  private readonly host: string;
  private readonly port: number;

  constructor(private readonly opts: LocalUpstreamOptions) {
    const u = new URL(opts.url);
    this.host = u.hostname;
    this.port = Number(u.port || 80);
    this.name = `storage node ${u.host}`;
    this.agent = new http.Agent({ keepAlive: true, maxSockets: opts.maxSockets ?? 256, scheduling: 'lifo', noDelay: true } as http.AgentOptions);
  }

  request(r: UpstreamRequest): Promise<UpstreamResponse> {
    return new Promise((resolve, reject) => {
      const headers = { ...r.headers };
      if (Buffer.isBuffer(r.body)) headers['content-length'] = r.body.length;
      const req = http.request({ agent: this.agent, host: this.host, port: this.port, method: r.method, path: r.path, headers });
      req.setTimeout(r.timeoutMs ?? this.opts.requestTimeoutMs + (r.extraTimeoutMs ?? 0), () => req.destroy(new TimeoutError('timeout')));
      req.once('error', (err) => reject(upstreamError(err, this.name)));
      req.once('response', (res) => {
        res.once('error', () => undefined); // surfaced to the piping side as an incomplete body
        resolve({ status: res.statusCode ?? 502, headers: res.headers, body: res, complete: () => res.complete });
      });
      if (r.body === undefined) req.end();
      else if (Buffer.isBuffer(r.body)) req.end(r.body);
      else {
        const body = r.body as Readable & { complete?: boolean };
        // A client that goes away mid-body must not leave a half request open at the storage
        // node, nor have its truncated body taken as complete.
        const abort = () => req.destroy(Object.assign(new Error('client aborted the request'), { code: 'ECONNRESET' }));
        body.once('aborted', abort);
        body.once('close', () => {
          if (body.complete === false) abort();
        });
        body.pipe(req);
      }
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
