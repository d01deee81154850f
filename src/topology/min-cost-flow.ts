// Minimum-cost maximum flow with bigint capacities and small integer costs (successive
// shortest paths, Dijkstra with potentials): how the planner finds the least tokens to move.

interface Edge {
  to: number;
  cap: bigint;
  cost: number;
  /** Index of the reverse edge in graph[to]. */
  rev: number;
}

export class FlowGraph {
  private readonly graph: Edge[][];

  constructor(readonly nodes: number) {
    this.graph = Array.from({ length: nodes }, () => []);
  }

  /** Adds an edge; returns a handle for `flowOn`. Costs must be ≥ 0. */
  add(from: number, to: number, cap: bigint, cost: number): [number, number] {
    this.graph[from]!.push({ to, cap, cost, rev: this.graph[to]!.length });
    this.graph[to]!.push({ to: from, cap: 0n, cost: -cost, rev: this.graph[from]!.length - 1 });
    return [from, this.graph[from]!.length - 1];
  }

  /** Flow on an edge after `run` (the capacity of its reverse edge). */
  flowOn([from, i]: [number, number]): bigint {
    const e = this.graph[from]![i]!;
    return this.graph[e.to]![e.rev]!.cap;
  }

  /** Sends as much as it can from `s` to `t` at the least total cost; returns the amount sent. */
  run(s: number, t: number): bigint {
    const n = this.nodes;
    const potential = new Array<number>(n).fill(0);
    let sent = 0n;
    for (;;) {
      const dist = new Array<number>(n).fill(Infinity);
      const prev = new Array<[number, number] | undefined>(n).fill(undefined);
      dist[s] = 0;
      const heap: [number, number][] = [[0, s]];
      while (heap.length) {
        const [d, u] = popMin(heap);
        if (d > dist[u]!) continue;
        this.graph[u]!.forEach((e, i) => {
          if (e.cap === 0n) return;
          const nd = d + e.cost + potential[u]! - potential[e.to]!;
          if (nd < dist[e.to]!) {
            dist[e.to] = nd;
            prev[e.to] = [u, i];
            pushHeap(heap, [nd, e.to]);
          }
        });
      }
      if (dist[t] === Infinity) return sent;
      for (let v = 0; v < n; v++) if (dist[v]! < Infinity) potential[v]! += dist[v]!;
      let push: bigint | undefined;
      for (let v = t; v !== s; v = prev[v]![0]) {
        const [u, i] = prev[v]!;
        const cap = this.graph[u]![i]!.cap;
        if (push === undefined || cap < push) push = cap;
      }
      for (let v = t; v !== s; v = prev[v]![0]) {
        const [u, i] = prev[v]!;
        const e = this.graph[u]![i]!;
        e.cap -= push!;
        this.graph[e.to]![e.rev]!.cap += push!;
      }
      sent += push!;
    }
  }
}

function pushHeap(h: [number, number][], x: [number, number]): void {
  h.push(x);
  for (let i = h.length - 1; i > 0; ) {
    const p = (i - 1) >> 1;
    if (h[p]![0] <= h[i]![0]) break;
    [h[p], h[i]] = [h[i]!, h[p]!];
    i = p;
  }
}

function popMin(h: [number, number][]): [number, number] {
  const top = h[0]!;
  const last = h.pop()!;
  if (h.length) {
    h[0] = last;
    for (let i = 0; ; ) {
      const l = 2 * i + 1;
      let m = i;
      if (l < h.length && h[l]![0] < h[m]![0]) m = l;
      if (l + 1 < h.length && h[l + 1]![0] < h[m]![0]) m = l + 1;
      if (m === i) break;
      [h[m], h[i]] = [h[i]!, h[m]!];
      i = m;
    }
  }
  return top;
}
