// A watch over requests a listener holds open: any still open after STILL_MS is logged once,
// with whether its answer's headers went out (an answer whose body stalls looks different
// from one never given). Swept once a second, with no timer per request. A diagnostic for
// requests that hang. The watches also keep the process's count of requests in flight
// (in-flight.ts), by which `signing.threadpool: "auto"` decides where signatures run.
import type { Logger } from '../src/log.js';
import type { InFlight } from './in-flight.js';

const STILL_MS = 5000;

interface Open {
  method: string;
  url: string;
  started: number;
  headersSent: () => boolean;
  warned: boolean;
}

export class RequestWatch {
  private readonly open = new Set<Open>();
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    private readonly listener: 'app' | 'mesh',
    private readonly log: Logger,
    /** The process's count of requests in flight, kept by every listener's watch. */
    private readonly inFlight?: InFlight,
  ) {}

  /** Watches one request until `close` is called (on its answer's 'close'). */
  add(method: string, url: string, headersSent: () => boolean): () => void {
    const o: Open = { method, url, started: performance.now(), headersSent, warned: false };
    this.open.add(o);
    if (this.inFlight) this.inFlight.count++;
    this.sweeper ??= setInterval(() => this.sweep(), 1000).unref();
    return () => {
      if (this.open.delete(o) && this.inFlight) this.inFlight.count--;
    };
  }

  private sweep(): void {
    const now = performance.now();
    for (const o of this.open) {
      if (o.warned || now - o.started < STILL_MS) continue;
      o.warned = true;
      this.log.warn({ listener: this.listener, method: o.method, url: o.url, ms: Math.round(now - o.started), headers_sent: o.headersSent() }, `${this.listener} request still open after ${STILL_MS / 1000} s`);
    }
  }
}
