// What the change-feed follower tests share: NodeClients on their own LocalUpstream pools, and a
// source and a target storage node with a checkpoint folder, all removed after the test file.
import type { Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeClient } from '../../proxy/feed/node-client.js';
import { LocalUpstream } from '../../proxy/local-upstream.js';
import { removeDir, startStorage, type StorageProcess } from './storage-process.js';

export function nodeClients(): { client: (node: { url: string }) => NodeClient; close: () => void } {
  const upstreams: LocalUpstream[] = [];
  return {
    client: (node) => {
      const u = new LocalUpstream({ url: node.url, requestTimeoutMs: 5000 });
      upstreams.push(u);
      return new NodeClient(u);
    },
    close: () => upstreams.forEach((u) => u.close()),
  };
}

export interface FollowerRig {
  source: StorageProcess;
  target: StorageProcess;
  /** A folder for checkpoints. */
  dir: string;
  client: (node: { url: string }) => NodeClient;
}

/** Starts a source (with `sourceArgs`) and a target storage node before the tests of `t`; all is removed after them. */
export function followerRig(t: Test, sourceArgs: string[] = []): FollowerRig {
  const { client, close } = nodeClients();
  const rig = { client } as FollowerRig;
  t.before(async () => {
    [rig.source, rig.target] = await Promise.all([startStorage({ args: sourceArgs }), startStorage()]);
    rig.dir = mkdtempSync(join(tmpdir(), 'themis-follower-'));
  });
  t.teardown(async () => {
    close();
    for (const p of [rig.source, rig.target]) {
      await p?.kill('SIGKILL');
      if (p) removeDir(p.dataDir);
    }
    if (rig.dir) rmSync(rig.dir, { recursive: true, force: true });
  });
  return rig;
}
