// Reports CRLs past their nextUpdate, loudly: an error log line per stale CRL on every check
// (once a minute by default) until a fresh one is in force. The sidecar keeps failing closed
// for chains through that CA — see docs/security-model.md "A stale CRL".
import type { ParsedCrl } from '../../src/pki/crl.js';
import type { Logger } from '../../src/log.js';
import type { Clock } from '../../src/runtime.js';

export interface StaleCrl {
  issuer: string;
  nextUpdate: Date;
}

export function staleCrls(crls: Iterable<ParsedCrl>, now: number): StaleCrl[] {
  const out: StaleCrl[] = [];
  for (const c of crls) if (c.nextUpdate && c.nextUpdate.getTime() < now) out.push({ issuer: c.issuer, nextUpdate: c.nextUpdate });
  return out;
}

export class CrlWatchdog {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly crls: () => Iterable<ParsedCrl>,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly everyMs = 60_000,
  ) {}

  /** Logs every stale CRL now; returns them. */
  check(): StaleCrl[] {
    const stale = staleCrls(this.crls(), this.clock.now());
    for (const s of stale) {
      this.log.error(
        { issuer: s.issuer, next_update: s.nextUpdate.toISOString() },
        'CRL past its nextUpdate: certificates issued by this CA are refused until a fresh CRL is published (themis-pki crl, then themis-admin crl publish)',
      );
    }
    return stale;
  }

  start(): void {
    this.check();
    this.timer = setInterval(() => this.check(), this.everyMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
