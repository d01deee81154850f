// How many requests this process is serving right now (app and mesh ports; change-feed long
// polls, which wait rather than work, left out), and what `signing.threadpool` makes of it:
// `"auto"` sends a signature to libuv's thread pool only while the process serves enough other
// requests for the event loop to have something to do meanwhile. With one request at a time the
// hand-off to a pool thread and back only adds latency (docs/performance.md), so it is signed
// and verified in place.
export class InFlight {
  count = 0;
}

/** Requests in flight from which `"auto"` offloads: below it the event loop has nothing else to do. */
export const AUTO_OFFLOAD_MIN = 4;

/** Whether the next signature goes to the thread pool, for `signing.threadpool`. */
export function signatureOffload(mode: boolean | 'auto', inFlight: InFlight): () => boolean {
  if (mode === 'auto') return () => inFlight.count >= AUTO_OFFLOAD_MIN;
  return mode ? () => true : () => false;
}
