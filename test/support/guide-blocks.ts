// The shell blocks of a Markdown guide (deploy/README.md), with where each is meant to run. A
// block meant to be run says so in its fence's info string:
//   ```sh on=operator                           the operator machine
//   ```sh on=10.0.1.11,10.0.1.12,10.0.1.13      as root on each of these hosts (at once)
//   ```sh on=none                               shown, not run (the prose says why)
// Every `sh` block of a section the guide test covers must carry one of these, so that a new
// block cannot be skipped silently.
import { readFileSync } from 'node:fs';

export interface GuideBlock {
  /** The `## ` heading above the block. */
  section: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** 'operator', the host addresses, 'none', or undefined when the fence has no on=. */
  on: 'operator' | 'none' | string[] | undefined;
  code: string;
}

export function guideBlocks(file: string): GuideBlock[] {
  const lines = readFileSync(file, 'utf8').split('\n');
  const blocks: GuideBlock[] = [];
  let section = '';
  for (let i = 0; i < lines.length; i++) {
    const heading = /^## (.+)$/.exec(lines[i]!);
    if (heading) section = heading[1]!.trim();
    const fence = /^```(\S*)(.*)$/.exec(lines[i]!);
    if (!fence) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) body.push(lines[i]!);
    if (fence[1] !== 'sh') continue;
    const on = /(?:^|\s)on=(\S+)/.exec(fence[2]!)?.[1];
    blocks.push({
      section,
      line: start + 1,
      on: on === undefined ? undefined : on === 'operator' || on === 'none' ? on : on.split(','),
      code: body.join('\n'),
    });
  }
  return blocks;
}
