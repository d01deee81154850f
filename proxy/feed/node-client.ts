// The storage API calls a change-feed follower makes, typed: read a node's change feed and scan
// it (through any Upstream: this node's storage node, or a peer sidecar over the mesh with the
// `replicate` capability), and write or delete one entity on a target node.
import { ThemisError } from '../../src/errors.js';
import { sha256Hex } from '../../src/signing/sign.js';
import { readAnswer, type Upstream } from '../upstream.js';

/** One record of GET /changefeed (docs/storage-api.md). */
export interface Change {
  operation: 'PUT' | 'DELETE';
  key: string; // table:uuid
  sequence: number;
  new_val: string | null;
}

export interface ChangePage {
  changes: Change[];
  /** Pass as the next from_seq. Below the from_seq asked: the source has less than we had. */
  lastSeq: number;
  latestSeq: number;
}

export interface ScanPage {
  entities: { key: string; blob: string }[];
  /** The `after` of the next page; null at the end. */
  next: string | null;
}

const MAX_ANSWER = 256 * 1024 * 1024;

export class NodeClient {
  /** `upstream`: the node, or a function giving it at each call (a peer session the topology may move). */
  constructor(private readonly node: Upstream | (() => Upstream)) {}

  get upstream(): Upstream {
    return typeof this.node === 'function' ? this.node() : this.node;
  }

  private async call(method: string, path: string, body?: unknown, extraTimeoutMs?: number, headers: Record<string, string> = {}): Promise<{ status: number; json: any }> {
    const bytes = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const upstream = this.upstream;
    const up = await upstream.request({
      method,
      path,
      headers: bytes ? { ...headers, 'content-type': 'application/json' } : headers,
      ...(bytes ? { body: bytes, contentSha256: sha256Hex(bytes) } : {}),
      ...(extraTimeoutMs !== undefined ? { extraTimeoutMs } : {}),
    });
    const text = await readAnswer(up, MAX_ANSWER);
    let json: any;
    try {
      json = text.length ? JSON.parse(text.toString('utf8')) : undefined;
    } catch {
      throw new ThemisError('UPSTREAM_PROTOCOL_ERROR', `${upstream.name} answered ${method} ${path.split('?')[0]} with status ${up.status} and a body that is not JSON`, { upstream: upstream.name });
    }
    return { status: up.status, json };
  }

  private fail(what: string, r: { status: number; json: any }): ThemisError {
    const code = typeof r.json?.code === 'string' ? r.json.code : `status ${r.status}`;
    return new ThemisError('UPSTREAM_UNAVAILABLE', `${this.upstream.name}: ${what} failed (${code})`, { upstream: this.upstream.name, status: r.status });
  }

  /** `headers`: e.g. a replica's announcement of its position (replication/positions.ts). */
  async changes(fromSeq: number, limit: number, longPollMs: number, headers?: Record<string, string>): Promise<ChangePage> {
    const r = await this.call('GET', `/changefeed?from_seq=${fromSeq}&limit=${limit}&long_poll_ms=${longPollMs}`, undefined, longPollMs, headers);
    if (r.status === 410 && r.json?.code === 'CHANGEFEED_TRIMMED') {
      throw new ThemisError('CHANGEFEED_TRIMMED', `${this.upstream.name}: ${r.json.message}`, { oldest_seq: r.json.oldest_seq, trimmed_through: r.json.trimmed_through, from_seq: fromSeq });
    }
    if (r.status !== 200) throw this.fail('reading the change feed', r);
    return { changes: r.json.changes as Change[], lastSeq: r.json.last_seq as number, latestSeq: r.json.latest_seq as number };
  }

  /**
   * Registers (or refreshes) at the node the checkpoint this follower still needs: the node's
   * log is not trimmed past it (up to its hard cap) while the registration lives.
   */
  async register(id: string, seq: number | null): Promise<void> {
    const r = await this.call('POST', '/changefeed/followers', { id, seq });
    if (r.status !== 200) throw this.fail('registering a change-feed checkpoint', r);
  }

  /** The newest sequence number of the node. */
  async head(): Promise<number> {
    return (await this.changes(Number.MAX_SAFE_INTEGER, 1, 0)).latestSeq;
  }

  async scan(after: string | null, limit: number): Promise<ScanPage> {
    const r = await this.call('GET', `/entities?limit=${limit}${after ? `&after=${encodeURIComponent(after)}` : ''}`);
    if (r.status !== 200) throw this.fail('scanning', r);
    return { entities: r.json.entities, next: r.json.next };
  }

  async put(key: string, blob: string): Promise<void> {
    const r = await this.call('PUT', `/entities/${encodeURIComponent(key)}`, { blob });
    if (r.status !== 201) throw this.fail(`writing ${key}`, r);
  }

  /** The blob stored under `key`, or undefined when there is none; through a peer, its copy whoever owns the key. */
  async get(key: string): Promise<string | undefined> {
    const r = await this.call('GET', `/entities/${encodeURIComponent(key)}`, undefined, undefined, { 'x-themis-read-copy': '1' });
    if (r.status === 404 && r.json?.code === 'ENTITY_NOT_FOUND') return undefined;
    if (r.status !== 200) throw this.fail(`reading ${key}`, r);
    return r.json.blob as string;
  }

  /** Deletes `key`; a key that is not there is fine (the change is already in effect). */
  async delete(key: string): Promise<void> {
    const r = await this.call('DELETE', `/entities/${encodeURIComponent(key)}`);
    if (r.status !== 200 && !(r.status === 404 && r.json?.code === 'ENTITY_NOT_FOUND')) throw this.fail(`deleting ${key}`, r);
  }
}
