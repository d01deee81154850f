// Keys for the client: both forms, checked by the sidecar's own rules (src/urn/key.ts) before any
// request is sent, so a malformed key fails at once with INVALID_KEY and a message saying why.
import { ThemisError } from '../errors.js';
import { parseKey as parseServerKey, parseTable as parseServerTable, formatUrn, formatThemisKey, MODELS, type EntityKey, type Model } from '../urn/key.js';
import { ThemisClientError } from './errors.js';

export { MODELS, type EntityKey, type Model };

/** Re-throws the shared rules' ThemisError as the client's error class (same code and message). */
function asClientError<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof ThemisError) throw new ThemisClientError(e.code, e.message);
    throw e;
  }
}

/** Parses either key form; throws ThemisClientError INVALID_KEY. */
export function parseKey(key: string): EntityKey {
  if (typeof key !== 'string') throw new ThemisClientError('INVALID_KEY', `a key is a string, not ${typeof key}`);
  return asClientError(() => parseServerKey(key));
}

/** Checks a table name `model.namespace.collection`; throws INVALID_KEY. */
export function parseTable(table: string): { model: Model; namespace: string; collection: string; table: string } {
  if (typeof table !== 'string') throw new ThemisClientError('INVALID_KEY', `a table is a string, not ${typeof table}`);
  return { ...asClientError(() => parseServerTable(table)), table };
}

/**
 * The URN `urn:themis:{model}:{namespace}:{collection}:{uuid}` of an entity, validated:
 * `urn('document.shop.orders', uuid)` or `urn({model, namespace, collection}, uuid)`.
 */
export function urn(table: string | { model: Model; namespace: string; collection: string }, uuid: string): string {
  const t = typeof table === 'string' ? table : `${table.model}.${table.namespace}.${table.collection}`;
  return formatUrn(parseKey(`${t}:${uuid}`));
}

/** ThemisDB's form `{model}.{namespace}.{collection}:{uuid}` of a key written in either form. */
export function themisKey(key: string): string {
  return formatThemisKey(parseKey(key));
}
