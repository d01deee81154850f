// The shipped Grafana dashboard as data for tests: every PromQL expression of its panels (rows'
// nested panels included), with Grafana's variables replaced by values Prometheus can parse, and
// the metric names they use.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './cli.js';

export const DASHBOARD = join(ROOT, 'deploy/grafana/themis-mesh.json');

export interface PanelQuery {
  panel: string;
  refId: string;
  expr: string;
}

interface Panel {
  title: string;
  type: string;
  panels?: Panel[];
  targets?: { refId: string; expr: string }[];
}

/** What Grafana substitutes at query time, as the test substitutes it. */
export function substitute(expr: string): string {
  return expr.replaceAll('$__rate_interval', '5m').replaceAll('${instance}', '.*').replaceAll('$instance', '.*');
}

export function dashboardQueries(file = DASHBOARD): PanelQuery[] {
  const dash = JSON.parse(readFileSync(file, 'utf8')) as { panels: Panel[] };
  const out: PanelQuery[] = [];
  const walk = (ps: Panel[]) => {
    for (const p of ps) {
      if (p.panels) walk(p.panels);
      for (const t of p.targets ?? []) out.push({ panel: p.title, refId: t.refId, expr: t.expr });
    }
  };
  walk(dash.panels);
  return out;
}

/** A rules file holding every query as a recording rule (JSON is YAML), for `promtool check rules`. */
export function asRecordingRules(queries: PanelQuery[]): string {
  return JSON.stringify({ groups: [{ name: 'grafana-dashboard', rules: queries.map((q, i) => ({ record: `dashboard:query_${i}_${q.refId.toLowerCase()}`, expr: substitute(q.expr) })) }] }, null, 2);
}

/** The metric names of a query: identifiers of the sidecar's families (themis_*, process_*, nodejs_*). */
export function metricNames(expr: string): string[] {
  return [...new Set([...expr.matchAll(/\b(?:themis|process|nodejs)_[a-z0-9_]+\b/g)].map((m) => m[0]))];
}

/** Every name a /metrics text answers to: each family's, and a histogram's _bucket, _sum and _count. */
export function exportedNames(metricsText: string): Set<string> {
  const names = new Set<string>();
  for (const [, name, type] of metricsText.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    names.add(name!);
    if (type === 'histogram' || type === 'summary') for (const s of ['_bucket', '_sum', '_count']) names.add(name! + s);
  }
  return names;
}
