// The set of peer sessions: one per (shard, endpoint), created on demand, replaced when a
// topology moves a shard to another endpoint, and cut when a peer's certificate is revoked.
import { PeerSession, type PeerSessionOptions } from './peer-session.js';
import { DRAIN_UNTRUSTED_MS, type SessionVerdict } from './tls-material.js';

export class PeerPool {
  private readonly sessions = new Map<string, PeerSession>();

  constructor(private readonly opts: PeerSessionOptions) {}

  get(shardId: string, endpoint: string): PeerSession {
    const existing = this.sessions.get(shardId);
    if (existing && existing.endpoint === endpoint) return existing;
    existing?.close();
    const s = new PeerSession(shardId, endpoint, this.opts);
    this.sessions.set(shardId, s);
    return s;
  }

  /** Destroys the sessions whose peer is judged 'cut', rolls over those judged 'drain' (GOAWAY, cut after DRAIN_UNTRUSTED_MS); returns the cut. */
  resetWhere(verdict: (chain: readonly Uint8Array[]) => SessionVerdict): { shardId: string; serial: string }[] {
    const cut: { shardId: string; serial: string }[] = [];
    for (const s of this.sessions.values()) {
      if (s.peerChain === undefined || s.state !== 'ready') continue;
      const v = verdict(s.peerChain);
      if (v === 'cut') {
        s.reset('peer certificate no longer valid');
        cut.push({ shardId: s.shardId, serial: s.peerSerial ?? '' });
      } else if (v === 'drain') {
        s.roll(DRAIN_UNTRUSTED_MS);
      }
    }
    return cut;
  }

  /** Moves every peer to a new session with the current credentials (after rotation). */
  rollAll(): void {
    for (const s of this.sessions.values()) s.roll();
  }

  states(): Record<string, string> {
    return Object.fromEntries([...this.sessions].map(([k, s]) => [k, s.state]));
  }

  closeAll(): void {
    for (const s of this.sessions.values()) s.close();
    this.sessions.clear();
  }
}
