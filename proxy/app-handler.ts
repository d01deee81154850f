// The app port's request handler: classify by the API table, route, and answer every failure
// through proxy/respond.ts. Apps on loopback are trusted with what the sidecar itself may do.
import type { Logger } from '../src/log.js';
import type { SidecarMetrics } from '../src/metrics/sidecar-metrics.js';
import type { Handler } from './app-listener.js';
import { classifyRequest } from './operations.js';
import { replyTo } from './respond.js';
import { RequestWatch } from './request-watch.js';
import type { Router } from './router.js';

export function createAppHandler(router: Router, metrics: SidecarMetrics, log: Logger): Handler {
  const watch = new RequestWatch('app', log);
  return (req, res) => {
    const tracked = metrics.track('app', res);
    const reply = replyTo(req, res);
    let op;
    try {
      op = classifyRequest(req.method!, req.url!);
    } catch (err) {
      reply.error(err, log);
      return;
    }
    tracked.operation = op.kind;
    // Change feeds are long-lived by design; everything else should be answered in seconds.
    if (op.kind !== 'changefeed') res.once('close', watch.add(req.method ?? '', req.url ?? '', () => res.headersSent));
    router.serve(req, reply, op).catch((err: unknown) => reply.error(err, log));
  };
}
