// `node dist/scripts/test-node-release.js 24`: the integration tests that lean hardest on Node's
// own TLS, HTTP/2, crypto, child processes and node:cluster, run again on another Node release
// (from the npm registry, scripts/node-release.ts): tap's runner, the tests and every process
// they start (storage nodes, sidecars, the CLIs: all spawned with process.execPath) run on it.
// Part of `npm test`; the whole suite runs on the machine's Node before it.
import { nodeRelease } from './node-release.js';
import { runTap } from './run-tap.js';

/** Chosen for the Node APIs they cover, and kept to a few minutes. */
export const RELEASE_TESTS = [
  'test/integration/node-release.test.ts', // says which Node runs, and that it is the one asked for
  'test/integration/mesh-tls.test.ts', // TLS 1.3, client certificates, CRLs
  'test/integration/mesh-signed-requests.test.ts', // HTTP/2 sessions, signatures, replay
  'test/integration/sidecar-workers.test.ts', // node:cluster, IPC, signals
  'test/integration/app-tls.test.ts', // TLS on the app port, HTTP/1.1 and HTTP/2 by ALPN
  'test/integration/etcd-crl-file.test.ts', // etcd3 (gRPC over TLS), CRLs from etcd
  'test/integration/storage-node-entities.test.ts', // classic-level (LevelDB), the storage API
  'test/unit/proxy/read-answer.test.ts', // HTTP/2 answers read after their stream closed (end-of-stream changed in 24)
  'test/unit/client/mesh-transport.test.ts', // the same for the SDK's HTTP/2 transport
];

const major = Number(process.argv[2] ?? 24);
let bin: string;
try {
  bin = nodeRelease(major);
} catch (e) {
  process.stderr.write(`test-node-release: ${(e as Error).message}\n`);
  process.exit(1);
}
process.stdout.write(`\n# the tests of ${RELEASE_TESTS.length} files that depend most on Node, again on Node ${major} (${bin})\n`);
// As the main pass: the compiled tests (dist/test/, built by `npm test` before this runs).
const compiled = RELEASE_TESTS.map((f) => f.replace(/^test\//, 'dist/test/').replace(/\.ts$/, '.js'));
process.exit(runTap(bin, compiled, { THEMIS_EXPECT_NODE_MAJOR: String(major) }));
