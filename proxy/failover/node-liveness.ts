// Whether this shard's storage node answers: a probe of its /health every `everyMs`. Two
// failed probes in a row make it "down" (the sidecar then resigns as acting primary, so a
// replica takes over within about a second of a storage node's death); one answer makes it "up".
import type { LocalUpstream } from '../local-upstream.js';

export class NodeLiveness {
  up = true;
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly listeners: ((up: boolean) => void)[] = [];

  constructor(
    private readonly local: LocalUpstream,
    private readonly everyMs = 200,
  ) {}

  onChange(l: (up: boolean) => void): void {
    this.listeners.push(l);
  }

  start(): void {
    const tick = async () => {
      const ok = await this.local.request({ method: 'GET', path: '/health', headers: {}, timeoutMs: Math.max(100, this.everyMs) }).then(
        (r) => {
          r.body.resume();
          return r.status < 500;
        },
        () => false,
      );
      this.failures = ok ? 0 : this.failures + 1;
      const up = this.failures < 2;
      if (up !== this.up) {
        this.up = up;
        for (const l of this.listeners) l(up);
      }
      if (this.timer) this.timer = setTimeout(() => void tick(), this.everyMs);
    };
    this.timer = setTimeout(() => void tick(), this.everyMs);
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
