#!/usr/bin/env node
// `themis-admin`: the operator's cluster tool. Each command family lives in its own file;
// this file only dispatches.
import { runCli, UsageError } from './cli-common.js';
import { topologyCommand, TOPOLOGY_USAGE } from './admin-topology.js';
import { auditCommand, AUDIT_USAGE } from './admin-audit.js';
import { shardsCommand, SHARDS_USAGE } from './admin-shards.js';
import { crlCommand, CRL_USAGE } from './admin-crl.js';

const USAGE = `usage: themis-admin <command> …

${TOPOLOGY_USAGE}
${AUDIT_USAGE}
${SHARDS_USAGE}
${CRL_USAGE}
`;

await runCli('themis-admin', async () => {
  const [cmd, ...rest] = process.argv.slice(2);
  switch (cmd) {
    case 'topology':
      return topologyCommand(rest);
    case 'audit':
      return auditCommand(rest);
    case 'shards':
      return shardsCommand(rest);
    case 'crl':
      return crlCommand(rest);
    case 'help':
    case '--help':
    case '-h':
    case undefined:
      process.stdout.write(USAGE);
      return;
    default:
      throw new UsageError(`unknown command "${cmd}"`);
  }
});
