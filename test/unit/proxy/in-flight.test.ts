// signing.threadpool's decision (proxy/in-flight.ts) and the count it reads, kept by the
// listeners' request watches: "auto" offloads only with enough requests in flight.
import t from 'tap';
import { AUTO_OFFLOAD_MIN, InFlight, signatureOffload } from '../../../proxy/in-flight.js';
import { RequestWatch } from '../../../proxy/request-watch.js';
import { silentLogger } from '../../../src/log.js';

t.test('true and false are fixed; "auto" offloads from AUTO_OFFLOAD_MIN requests in flight', async (t) => {
  const n = new InFlight();
  t.equal(signatureOffload(true, n)(), true);
  t.equal(signatureOffload(false, n)(), false);
  const auto = signatureOffload('auto', n);
  t.equal(AUTO_OFFLOAD_MIN, 4, 'the documented threshold (docs/sidecar.md)');
  for (let i = 0; i < AUTO_OFFLOAD_MIN; i++) {
    n.count = i;
    t.equal(auto(), false, `${i} in flight: signed in place`);
  }
  n.count = AUTO_OFFLOAD_MIN;
  t.equal(auto(), true, `${AUTO_OFFLOAD_MIN} in flight: the thread pool`);
  n.count = 100;
  t.equal(signatureOffload(false, n)(), false, 'false stays false under load');
});

t.test('the app and mesh watches keep one count; a request is counted out once', async (t) => {
  const n = new InFlight();
  const app = new RequestWatch('app', silentLogger, n);
  const mesh = new RequestWatch('mesh', silentLogger, n);
  const closes = [app.add('GET', '/a', () => false), app.add('PUT', '/b', () => false), mesh.add('GET', '/c', () => true)];
  t.equal(n.count, 3);
  closes[0]!();
  closes[0]!(); // 'close' twice must not count twice
  t.equal(n.count, 2);
  closes[1]!();
  closes[2]!();
  t.equal(n.count, 0);
});
