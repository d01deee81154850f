// Header hygiene for forwarding: hop-by-hop headers (RFC 9110 §7.6.1, plus any the
// Connection header names) and HTTP/2 pseudo-headers never cross a hop; the mesh's own
// x-themis-* request headers are set only by the sidecar that signs.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
  'proxy-authenticate',
  'proxy-authorization',
  'host',
  'http2-settings',
]);

/** End-to-end headers of an incoming request or response, ready to send on the next hop. */
export function endToEndHeaders(headers: IncomingHttpHeaders, dropThemis: boolean): OutgoingHttpHeaders {
  const connection = headers.connection;
  const listed = typeof connection === 'string' ? connection.toLowerCase().split(',').map((s) => s.trim()) : [];
  const out: OutgoingHttpHeaders = {};
  for (const name in headers) {
    if (name.charCodeAt(0) === 58 /* ':' */ || HOP_BY_HOP.has(name) || listed.includes(name)) continue;
    if (dropThemis && name.startsWith('x-themis-')) continue;
    out[name] = headers[name];
  }
  return out;
}
