// What a write to a replicated group's key is acknowledged under (failover.ts, failover-mirror.ts,
// until-held.ts, the ack gate): in a file of its own, so that none of them imports another for it.
/** What a write to a key in a replicated group must prove before it is acknowledged. */
export interface Fence {
  group: string;
  term: number;
  /** The lease the term was held on: a term number met again (etcd restored) on another lease is another term. */
  lease?: string;
}
