// Which Node runs the tests, and the processes they start: on the machine's Node, and in
// `npm test`'s second pass on the release scripts/test-node-release.ts installs
// (THEMIS_EXPECT_NODE_MAJOR), where a wrong binary must fail rather than pass unseen.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const major = Number(process.versions.node.split('.')[0]);

t.test('the Node release is one the package admits, and the one asked for', async (t) => {
  const engines = (JSON.parse(readFileSync('package.json', 'utf8')) as { engines: { node: string } }).engines.node;
  t.ok(major === 20 || major === 22 || major === 24, `Node ${process.versions.node} (engines: ${engines})`);
  const expected = process.env.THEMIS_EXPECT_NODE_MAJOR;
  if (expected) t.equal(major, Number(expected), `the second pass runs on Node ${expected}`);
  const child = spawnSync(process.execPath, ['-p', 'process.versions.node'], { encoding: 'utf8' }).stdout.trim();
  t.equal(child, process.versions.node, 'the processes a test starts run on the same Node');
});
