// themis-admin's context: the etcd endpoints, certificates, cluster name and CRLs a command would
// otherwise need as flags, from environment variables (THEMIS_ETCD, …) and a context file
// (kubectl-style: several named contexts, one current). A flag always wins, then the variable,
// then the context file. docs/cli-context.md is the reference.
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { UsageError } from './cli-common.js';

/** Each flag a context can supply: its key in the context file and its environment variable. */
export const CONTEXT_FIELDS = {
  cluster: { key: 'cluster', env: 'THEMIS_CLUSTER', path: false, list: false },
  etcd: { key: 'etcd', env: 'THEMIS_ETCD', path: false, list: true },
  ca: { key: 'ca', env: 'THEMIS_CA', path: true, list: false },
  crls: { key: 'crls', env: 'THEMIS_CRLS', path: true, list: true },
  cert: { key: 'cert', env: 'THEMIS_CERT', path: true, list: false },
  key: { key: 'key', env: 'THEMIS_KEY', path: true, list: false },
  'operator-cert': { key: 'operatorCert', env: 'THEMIS_OPERATOR_CERT', path: true, list: false },
  'operator-key': { key: 'operatorKey', env: 'THEMIS_OPERATOR_KEY', path: true, list: false },
  'key-passphrase-file': { key: 'keyPassphraseFile', env: 'THEMIS_KEY_PASSPHRASE_FILE', path: true, list: false },
} as const;

export type ContextFlag = keyof typeof CONTEXT_FIELDS;

export interface ResolvedValue {
  value: string;
  /** `env THEMIS_ETCD` or `context prod (FILE)`. */
  source: string;
}

export interface CliContext {
  /** The context file read, when there is one. */
  file: string | undefined;
  /** The context in use from that file. */
  name: string | undefined;
  values: Partial<Record<ContextFlag, ResolvedValue>>;
}

/** $THEMIS_CONFIG, else $XDG_CONFIG_HOME/themis/admin.json, else ~/.config/themis/admin.json. */
export function contextFilePath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.THEMIS_CONFIG) return resolve(env.THEMIS_CONFIG);
  const base = env.XDG_CONFIG_HOME && isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : join(homedir(), '.config');
  return join(base, 'themis', 'admin.json');
}

/**
 * Reads the context: `selected` (--context) or $THEMIS_CONTEXT or the file's `current` names the
 * context; a missing file is no context, unless a context is asked for by name.
 */
export function loadContext(selected: string | undefined, env: NodeJS.ProcessEnv = process.env): CliContext {
  const file = contextFilePath(env);
  const wanted = selected ?? env.THEMIS_CONTEXT;
  let text: string | undefined;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // A file not there yet (before cluster init writes it) is no context, unless one is asked for by name.
    if (code !== 'ENOENT' || wanted) throw new UsageError(`context file ${file}: cannot read it (${code ?? (e as Error).message})`);
  }
  const out: CliContext = { file: text === undefined ? undefined : file, name: undefined, values: {} };
  if (text !== undefined) {
    let doc: { current?: unknown; contexts?: Record<string, Record<string, unknown>> };
    try {
      doc = JSON.parse(text);
    } catch (e) {
      throw new UsageError(`context file ${file} is not JSON (${(e as Error).message})`);
    }
    const contexts = doc?.contexts;
    if (!contexts || typeof contexts !== 'object') throw new UsageError(`context file ${file}: needs "contexts": { "NAME": { "cluster": …, "etcd": […], … } }`);
    const name = wanted ?? (typeof doc.current === 'string' ? doc.current : undefined);
    if (name !== undefined) {
      const ctx = Object.hasOwn(contexts, name) ? contexts[name] : undefined;
      if (!ctx || typeof ctx !== 'object') throw new UsageError(`context "${name}" is not in ${file} (it has: ${Object.keys(contexts).join(', ') || 'none'})`);
      out.name = name;
      const known = new Set(Object.values(CONTEXT_FIELDS).map((f) => f.key as string));
      for (const k of Object.keys(ctx)) if (!known.has(k)) throw new UsageError(`context "${name}" in ${file}: unknown field "${k}" (known: ${[...known].join(', ')})`);
      for (const [flag, f] of Object.entries(CONTEXT_FIELDS) as [ContextFlag, (typeof CONTEXT_FIELDS)[ContextFlag]][]) {
        const v = ctx[f.key];
        if (v === undefined) continue;
        const items = f.list && Array.isArray(v) ? v : [v];
        if (!items.every((x) => typeof x === 'string' && x !== '')) throw new UsageError(`context "${name}" in ${file}: "${f.key}" must be ${f.list ? 'a string or a list of strings' : 'a string'}`);
        const fixed = (items as string[]).map((x) => (f.path ? resolve(dirname(file), x) : x));
        out.values[flag] = { value: fixed.join(','), source: `context ${name} (${file})` };
      }
    }
  }
  for (const [flag, f] of Object.entries(CONTEXT_FIELDS) as [ContextFlag, (typeof CONTEXT_FIELDS)[ContextFlag]][]) {
    const v = env[f.env];
    if (v !== undefined && v !== '') out.values[flag] = { value: v, source: `env ${f.env}` };
  }
  return out;
}

/** Takes `--context NAME` (or --context=NAME) out of argv: it selects the context for any command. */
export function takeContextFlag(argv: string[]): { argv: string[]; context: string | undefined } {
  const rest: string[] = [];
  let context: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      rest.push(...argv.slice(i));
      break;
    }
    if (a === '--context') {
      context = argv[++i];
      if (context === undefined || context.startsWith('--')) throw new UsageError('--context needs a context name');
    } else if (a.startsWith('--context=')) context = a.slice('--context='.length);
    else rest.push(a);
  }
  return { argv: rest, context };
}
