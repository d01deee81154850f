// Routing and forwarding of storage API calls: an entity call goes to the owner of its
// key's token in the current topology — the local storage node, or the owner's sidecar over
// the mesh (signed). A peer that answers 421 makes us refresh the topology and retry once.
import type { IncomingHttpHeaders } from 'node:http';
import type { ServerHttp2Stream } from 'node:http2';
import type { Readable } from 'node:stream';
import { ThemisError } from '../src/errors.js';
import { readBody, readJsonObject } from '../src/http-body.js';
import { parseKey, parseTable, formatThemisKey, tokenOf } from '../src/urn/urn.js';
import { sha256Hex } from '../src/signing/sign.js';
import type { Random } from '../src/runtime.js';
import { endToEndHeaders } from './headers.js';
import type { LocalUpstream } from './local-upstream.js';
import type { PeerPool } from './peer-pool.js';
import { respondUpstream, sendJson, sendUpstream, type AnyRequest, type AnyResponse } from './respond.js';
import type { UpstreamResponse } from './upstream.js';
import type { TopologySource } from './topology-source.js';
import type { Operation } from './operations.js';
import type { ScatterGather } from './scatter-gather.js';

export const SHARD_HEADER = 'x-themis-shard';
export const EPOCH_HEADER = 'x-themis-topology-epoch';

export interface RouterDeps {
  self: string;
  topology: TopologySource;
  local: LocalUpstream;
  peers: PeerPool;
  random: Random;
  maxBodyBytes: number;
  scatter: ScatterGather;
}

export class Router {
  constructor(private readonly d: RouterDeps) {}

  /** Serves any classified operation for an app (app port, or a client certificate on the mesh port). */
  async serve(req: AnyRequest, res: AnyResponse, op: Operation, body?: Buffer): Promise<void> {
    switch (op.kind) {
      case 'entity': {
        const token = tokenOf(parseKey(op.rawKey));
        return this.toOwner(req, res, token, body);
      }
      case 'entity-post':
        return this.post(req, res, body);
      case 'changefeed':
      case 'scan':
        // Node-local by nature: the change feed and scan of this shard's storage node.
        return this.toLocal(req, res, body ?? (req as Readable));
      case 'health': {
        const t = this.d.topology.current();
        return sendJson(req, res, 200, { status: 'ok', shard: this.d.self, topology_epoch: t.epoch }, this.headers(t.epoch));
      }
      case 'query':
        return this.d.scatter.query(req, res, body ?? (await readBody(req, this.d.maxBodyBytes)));
      case 'vector':
        return this.d.scatter.vector(req, res, body ?? (await readBody(req, this.d.maxBodyBytes)));
    }
  }

  private headers(epoch: number, shard = this.d.self): Record<string, string> {
    return { [SHARD_HEADER]: shard, [EPOCH_HEADER]: String(epoch) };
  }

  private async post(req: AnyRequest, res: AnyResponse, buffered?: Buffer): Promise<void> {
    const text = buffered ?? (await readBody(req, this.d.maxBodyBytes));
    let obj: Record<string, unknown>;
    try {
      obj = JSON.parse(text.toString('utf8'));
    } catch {
      throw new ThemisError('INVALID_JSON', 'request body is not valid JSON');
    }
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw new ThemisError('INVALID_BODY', 'request body must be a JSON object');
    let body = text;
    let key: string;
    if (typeof obj.key === 'string') {
      key = obj.key;
    } else if (obj.key === undefined && typeof obj.table === 'string') {
      // The key decides the shard, so the sidecar (not the storage node) picks the uuid.
      const t = parseTable(obj.table);
      key = formatThemisKey({ ...t, table: obj.table, uuid: this.d.random.uuid() });
      const { table: _table, ...rest } = obj;
      body = Buffer.from(JSON.stringify({ ...rest, key }));
    } else {
      throw new ThemisError('INVALID_BODY', 'POST /entities needs "key" (or "table" to generate one) and "blob"');
    }
    return this.toOwner(req, res, tokenOf(parseKey(key)), body);
  }

  /** A verified shard peer's request for this shard's own data. */
  toLocalFromPeer(req: AnyRequest, res: AnyResponse, body: Buffer): Promise<void> {
    return this.toLocal(req, res, body);
  }

  /** The same, for a request taken from the core HTTP/2 API (the mesh port's entity path). */
  async toLocalFromPeerStream(stream: ServerHttp2Stream, method: string, url: string, headers: IncomingHttpHeaders, body: Buffer): Promise<void> {
    const epoch = this.d.topology.current().epoch;
    respondUpstream(stream, await this.local(method, url, headers, body), this.headers(epoch));
  }

  private async toLocal(req: AnyRequest, res: AnyResponse, body: Buffer | Readable | undefined, epoch = this.d.topology.current().epoch): Promise<void> {
    sendUpstream(res, await this.local(req.method!, req.url!, req.headers, body), this.headers(epoch));
  }

  private local(method: string, url: string, headers: IncomingHttpHeaders, body: Buffer | Readable | undefined): Promise<UpstreamResponse> {
    return this.d.local.request({
      method,
      path: url,
      headers: endToEndHeaders(headers, true),
      body: hasBody(method) ? body : undefined,
      extraTimeoutMs: longPollMs(url),
    });
  }

  /** Forwards to the token's owner; `body` is buffered when already read. */
  async toOwner(req: AnyRequest, res: AnyResponse, token: bigint, body: Buffer | undefined, attempt = 0): Promise<void> {
    const topo = this.d.topology.current();
    const owner = topo.ownerOf(token);
    if (owner === this.d.self) {
      // HTTP/1.1 bodies stream to the storage node. HTTP/2 bodies are read first: Node ends an
      // HTTP/2 request stream that the client reset mid-body as if it were complete, and only
      // a read body can be checked against its declared length.
      const local = body ?? (req.httpVersionMajor === 2 && hasBody(req.method) ? await readBody(req, this.d.maxBodyBytes) : (req as Readable));
      return this.toLocal(req, res, local, topo.epoch);
    }
    const endpoint = topo.shards[owner]?.endpoint;
    if (!endpoint) {
      throw new ThemisError('UPSTREAM_UNAVAILABLE', `the topology (epoch ${topo.epoch}) names no endpoint for ${owner}`, { upstream: owner });
    }
    // The signature covers the body's hash, so a forwarded request body is read first.
    const bytes = body ?? (hasBody(req.method) ? await readBody(req, this.d.maxBodyBytes) : Buffer.alloc(0));
    const up = await this.d.peers.get(owner, endpoint).request({
      method: req.method!,
      path: req.url!,
      headers: endToEndHeaders(req.headers, true),
      body: bytes,
      contentSha256: sha256Hex(bytes),
    });
    if (up.status === 421 && attempt === 0) {
      up.body.resume();
      await this.d.topology.refresh();
      // Retry only if there is something new to route by; otherwise the 421 stands.
      if (this.d.topology.current().epoch > topo.epoch) return this.toOwner(req, res, token, bytes, 1);
    }
    sendUpstream(res, up, { [EPOCH_HEADER]: String(topo.epoch), [SHARD_HEADER]: owner });
  }
}

/** A change-feed long poll may legitimately wait up to long_poll_ms (the storage node caps it). */
function longPollMs(url: string): number {
  if (!url.startsWith('/changefeed')) return 0;
  const v = Number(new URLSearchParams(url.slice(url.indexOf('?') + 1)).get('long_poll_ms'));
  return Number.isFinite(v) && v > 0 ? Math.min(v, 300_000) : 0;
}

function hasBody(method: string | undefined): boolean {
  return method !== 'GET' && method !== 'HEAD' && method !== 'DELETE';
}
