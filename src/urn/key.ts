// Entity keys in both spellings ThemisDB accepts, with its validation rules:
//   urn:themis:{model}:{namespace}:{collection}:{uuid}   and   {model}.{namespace}.{collection}:{uuid}
// Pure (no hashing, no server dependency): the sidecar, the storage node and the client SDK
// (src/client) validate keys with this one implementation. The routing token is in urn.ts.
import { ThemisError } from '../errors.js';

export const MODELS = ['relational', 'graph', 'vector', 'timeseries', 'document'] as const;
export type Model = (typeof MODELS)[number];

export interface EntityKey {
  readonly model: Model;
  readonly namespace: string;
  readonly collection: string;
  readonly uuid: string;
  /** `model.namespace.collection` */
  readonly table: string;
}

const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
// Namespace and collection: printable, and free of the separators of either key form.
const NAME_RE = /^[A-Za-z0-9_\-]+$/;
const MAX_KEY_LENGTH = 512;

function invalid(why: string): ThemisError {
  return new ThemisError(
    'INVALID_KEY',
    `${why}; write urn:themis:{model}:{namespace}:{collection}:{uuid} or {model}.{namespace}.{collection}:{uuid}`,
  );
}

function isModel(m: string): m is Model {
  return (MODELS as readonly string[]).includes(m);
}

function checkTable(model: string, namespace: string, collection: string): Model {
  if (!isModel(model)) throw invalid(`unknown model "${model.slice(0, 32)}" (one of ${MODELS.join(', ')})`);
  if (!NAME_RE.test(namespace)) throw invalid('namespace must be non-empty letters, digits, "_" or "-"');
  if (!NAME_RE.test(collection)) throw invalid('collection must be non-empty letters, digits, "_" or "-"');
  return model;
}

/** Parses a table name `model.namespace.collection`. */
export function parseTable(table: string): { model: Model; namespace: string; collection: string } {
  const parts = table.split('.');
  if (parts.length !== 3) throw invalid(`table "${table.slice(0, 64)}" is not model.namespace.collection`);
  const [model, namespace, collection] = parts as [string, string, string];
  return { model: checkTable(model, namespace, collection), namespace, collection };
}

/** Parses either key form; throws ThemisError INVALID_KEY naming what is wrong. */
export function parseKey(text: string): EntityKey {
  if (typeof text !== 'string' || text.length === 0) throw invalid('empty key');
  if (text.length > MAX_KEY_LENGTH) throw invalid(`key longer than ${MAX_KEY_LENGTH} characters`);
  let model: string, namespace: string, collection: string, uuid: string;
  if (text.startsWith('urn:')) {
    const parts = text.split(':');
    if (parts.length !== 6) throw invalid(`a URN has 6 colon-separated parts, this one has ${parts.length}`);
    if (parts[1] !== 'themis') throw invalid('URN namespace must be "themis"');
    [, , model, namespace, collection, uuid] = parts as [string, string, string, string, string, string];
  } else {
    const colon = text.indexOf(':');
    if (colon < 0 || colon !== text.lastIndexOf(':')) throw invalid('key must contain exactly one ":"');
    const tableParts = text.slice(0, colon).split('.');
    if (tableParts.length !== 3) throw invalid('table must be model.namespace.collection');
    [model, namespace, collection] = tableParts as [string, string, string];
    uuid = text.slice(colon + 1);
  }
  const m = checkTable(model, namespace, collection);
  if (!UUID_RE.test(uuid)) throw invalid('uuid must be 8-4-4-4-12 hexadecimal digits');
  return Object.freeze({ model: m, namespace, collection, uuid, table: `${model}.${namespace}.${collection}` });
}

/** `urn:themis:{model}:{namespace}:{collection}:{uuid}` */
export function formatUrn(k: EntityKey): string {
  return `urn:themis:${k.model}:${k.namespace}:${k.collection}:${k.uuid}`;
}

/** ThemisDB's key form `{model}.{namespace}.{collection}:{uuid}` (table:pk). */
export function formatThemisKey(k: EntityKey): string {
  return `${k.table}:${k.uuid}`;
}
