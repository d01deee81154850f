// The control plane's etcd client, which always authenticates with a certificate (etcd runs
// with --client-cert-auth). The key schema is in etcd-keys.ts, which loads no etcd client: a
// worker process, which never talks to etcd, does not load gRPC (proxy/cluster/).
import { isIP } from 'node:net';
import { checkServerIdentity } from 'node:tls';
import { createRequire } from 'node:module';
import type { Channel, ChannelCredentials, ChannelOptions } from '@grpc/grpc-js';
import type { Etcd3 } from 'etcd3';
import { ExponentialBackoff } from 'cockatiel';

type Grpc = typeof import('@grpc/grpc-js');
type Etcd3Module = typeof import('etcd3');

/**
 * gRPC and etcd3 (both CommonJS) are loaded on the first connection: about a third of a second
 * of start-up and 25 MB that a command or process which never talks to etcd should not pay.
 */
let loaded: { grpc: Grpc; etcd3: Etcd3Module } | undefined;
function load(): { grpc: Grpc; etcd3: Etcd3Module } {
  const require = createRequire(import.meta.url);
  return (loaded ??= { grpc: require('@grpc/grpc-js') as Grpc, etcd3: require('etcd3') as Etcd3Module });
}

type WatchBackoff = NonNullable<NonNullable<ConstructorParameters<Etcd3Module['Etcd3']>[0]>['faultHandling']>['watchBackoff'];

export interface EtcdConnection {
  endpoints: string[];
  /** PEM text: this party's certificate chain, its (unencrypted) key, and the root CA. */
  certPem: string;
  keyPem: string;
  caPem: string;
}

/** The TLS server name sent to an etcd dialled by IP address (SNI may not carry an IP, RFC 6066). */
export const ETCD_IP_SERVER_NAME = 'etcd.themis.invalid';

/**
 * gRPC sends the host it dials as the TLS server name, and Node warns (DEP0123) on every call
 * when that is an IP address. For an endpoint given by IP, the channel sends a plain name
 * instead and checks the server certificate against the IP itself (its IP SANs), as before;
 * an endpoint given by name is left to gRPC.
 */
function ipAwareChannel(grpc: Grpc, c: EtcdConnection) {
  const byIp = (ip: string) =>
    grpc.credentials.createSsl(Buffer.from(c.caPem), Buffer.from(c.keyPem), Buffer.from(c.certPem), { checkServerIdentity: (_name, cert) => checkServerIdentity(ip, cert) });
  return (address: string, credentials: ChannelCredentials, options: ChannelOptions): Channel => {
    const { channelFactoryOverride: _factory, ...rest } = options as ChannelOptions & { channelFactoryOverride?: unknown };
    const host = address.replace(/^\[(.*)\](:\d+)?$/, '$1').replace(/^([^:]+):\d+$/, '$1');
    if (!isIP(host)) return new grpc.Channel(address, credentials, rest);
    return new grpc.Channel(address, byIp(host), { ...rest, 'grpc.ssl_target_name_override': ETCD_IP_SERVER_NAME });
  };
}

export function connectEtcd(c: EtcdConnection): Etcd3 {
  const { grpc, etcd3 } = load();
  // etcd3 hands one options object to every gRPC client it makes, and gRPC deletes
  // channelFactoryOverride from the object it is given: keep it for the next one.
  const grpcOptions = new Proxy(
    {
      // Come back quickly after an etcd outage: gRPC's own reconnect back-off grows to two
      // minutes and etcd3's watch back-off to 30 s by default, which left a sidecar that
      // started while etcd was down without a watch for that long after etcd returned.
      'grpc.initial_reconnect_backoff_ms': 250,
      'grpc.max_reconnect_backoff_ms': 2000,
      channelFactoryOverride: ipAwareChannel(grpc, c),
    },
    { deleteProperty: () => true },
  );
  return new etcd3.Etcd3({
    hosts: c.endpoints,
    credentials: { rootCertificate: Buffer.from(c.caPem), privateKey: Buffer.from(c.keyPem), certChain: Buffer.from(c.certPem) },
    dialTimeout: 3000,
    grpcOptions,
    // etcd3 1.1's typings name an older cockatiel interface; it calls next() on this at run time,
    // exactly as on its own default (an ExponentialBackoff).
    faultHandling: { watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 2000 }) as unknown as WatchBackoff },
  });
}

export { answerWithin, etcdKeys } from './etcd-keys.js';
