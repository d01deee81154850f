// The local storage node's change log as Prometheus sees it, read from its /health at each
// scrape (the storage node has no metrics endpoint of its own): the log's extent and size, and
// each registered follower's lag against it and whether it fell behind the horizon.
import client from 'prom-client';

/** What the storage node's /health reports under `changefeed` (storage-node/retention.ts). */
export interface ChangefeedReport {
  oldest_seq: number;
  last_seq: number;
  records: number;
  followers_cut_off: number;
  followers: { id: string; lag: number; behind_horizon: boolean }[];
}

export function registerChangefeedMetrics(registry: client.Registry, read: () => Promise<ChangefeedReport | undefined>): void {
  let pending: Promise<ChangefeedReport | undefined> | undefined;
  // The gauges of one scrape share one /health read.
  const report = () => (pending ??= read().catch(() => undefined).finally(() => setTimeout(() => (pending = undefined), 100)));
  const gauge = (name: string, help: string, pick: (r: ChangefeedReport) => number) =>
    new client.Gauge({
      name,
      help,
      registers: [registry],
      async collect() {
        const r = await report();
        if (r) this.set(pick(r));
      },
    });
  gauge('themis_changefeed_oldest_seq', "Oldest sequence number the local storage node's change log still holds (its horizon + 1)", (r) => r.oldest_seq);
  gauge('themis_changefeed_last_seq', "Newest sequence number of the local storage node's change log", (r) => r.last_seq);
  gauge('themis_changefeed_records', "Records the local storage node's change log holds", (r) => r.records);
  gauge('themis_changefeed_followers_cut_off', 'Registered followers the change log was trimmed past at its hard cap (they must make a full copy), since the node started', (r) => r.followers_cut_off);
  for (const [name, help, pick] of [
    ['themis_changefeed_follower_lag', "Changes of the local change log a registered follower has not read yet, per follower", (f: ChangefeedReport['followers'][number]) => f.lag],
    ['themis_changefeed_follower_behind_horizon', '1 when a registered follower needs changes the log no longer holds (a full copy follows)', (f: ChangefeedReport['followers'][number]) => (f.behind_horizon ? 1 : 0)],
  ] as const) {
    new client.Gauge({
      name,
      help,
      labelNames: ['follower'],
      registers: [registry],
      async collect() {
        const r = await report();
        this.reset();
        for (const f of r?.followers ?? []) this.set({ follower: f.id }, pick(f));
      },
    });
  }
}
