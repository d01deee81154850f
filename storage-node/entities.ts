// The entity calls: GET/PUT/DELETE /entities/{key} and POST /entities (upsert), with the
// `{blob}` body rules — checked completely before anything is written.
import { ThemisError } from '../src/errors.js';
import type { Random } from '../src/runtime.js';
import { parseKey, parseTable, type EntityKey } from '../src/urn/urn.js';
import type { Answer } from './respond.js';
import type { Store } from './store.js';

// A lone UTF-16 surrogate cannot be stored as UTF-8 without being changed silently.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Decodes the raw `{key}` path segment and parses it (either key form). */
export function keyFromPath(segment: string): { text: string; key: EntityKey } {
  let text: string;
  try {
    text = decodeURIComponent(segment);
  } catch {
    throw new ThemisError('INVALID_KEY', 'the key in the path is not valid percent-encoding; encode it with encodeURIComponent');
  }
  return { text, key: parseKey(text) };
}

/** Checks `blob`: a string (INVALID_BODY), within the size limit (413), and JSON text (INVALID_BLOB). */
export function checkBlob(blob: unknown, maxBlobBytes: number): { blob: string; size: number } {
  if (blob === undefined) throw new ThemisError('INVALID_BODY', 'body needs "blob": a string holding the entity as JSON text');
  if (typeof blob !== 'string') {
    throw new ThemisError('INVALID_BODY', '"blob" must be a string holding JSON text (serialize the entity with JSON.stringify)');
  }
  const size = Buffer.byteLength(blob, 'utf8');
  if (size > maxBlobBytes) {
    throw new ThemisError('PAYLOAD_TOO_LARGE', `blob is ${size} bytes; the limit is ${maxBlobBytes}`, { limit_bytes: maxBlobBytes });
  }
  if (LONE_SURROGATE.test(blob)) throw new ThemisError('INVALID_BLOB', 'blob contains a lone UTF-16 surrogate; send well-formed Unicode');
  try {
    JSON.parse(blob);
  } catch (err) {
    throw new ThemisError('INVALID_BLOB', `blob is not valid JSON text (${(err as Error).message.slice(0, 120)})`);
  }
  return { blob, size };
}

function rejectUnknownFields(body: Record<string, unknown>, known: readonly string[]): void {
  for (const k of Object.keys(body)) {
    if (!known.includes(k)) throw new ThemisError('INVALID_BODY', `unknown field "${k.slice(0, 64)}"; known fields are ${known.join(', ')}`);
  }
}

export async function getEntity(store: Store, segment: string): Promise<Answer> {
  const { text, key } = keyFromPath(segment);
  const blob = await store.get(key.table, key.uuid);
  if (blob === undefined) throw new ThemisError('ENTITY_NOT_FOUND', 'no entity is stored under this key');
  return { status: 200, body: { key: text, blob } };
}

/** PUT /entities/{key} with `{blob}`. The key is checked before the body is read. */
export async function putEntity(
  store: Store,
  segment: string,
  readBody: () => Promise<Record<string, unknown>>,
  maxBlobBytes: number,
): Promise<Answer> {
  const { text, key } = keyFromPath(segment);
  const body = await readBody();
  rejectUnknownFields(body, ['blob']);
  const { blob, size } = checkBlob(body.blob, maxBlobBytes);
  await store.put(key.table, key.uuid, blob);
  return { status: 201, body: { success: true, key: text, blob_size: size } };
}

/** POST /entities with `{key, blob}`, or `{table, blob}` to have a uuid v4 made up. */
export async function postEntity(
  store: Store,
  body: Record<string, unknown>,
  maxBlobBytes: number,
  random: Random,
): Promise<Answer> {
  rejectUnknownFields(body, ['key', 'table', 'blob']);
  let text: string;
  let key: { table: string; uuid: string };
  if (body.table !== undefined && typeof body.table !== 'string') {
    throw new ThemisError('INVALID_BODY', '"table" must be a string "model.namespace.collection"');
  }
  if (body.key !== undefined) {
    if (typeof body.key !== 'string') throw new ThemisError('INVALID_BODY', '"key" must be a string');
    text = body.key;
    key = parseKey(text);
    if (body.table !== undefined && body.table !== key.table) {
      throw new ThemisError('INVALID_BODY', `"table" ${body.table.slice(0, 64)} differs from the key's table ${key.table}; send one of them`);
    }
  } else if (typeof body.table === 'string') {
    parseTable(body.table);
    key = { table: body.table, uuid: random.uuid() };
    text = `${key.table}:${key.uuid}`;
  } else {
    throw new ThemisError('INVALID_BODY', 'body needs "key" (table:uuid or a URN), or "table" to have a uuid made up');
  }
  const { blob, size } = checkBlob(body.blob, maxBlobBytes);
  await store.put(key.table, key.uuid, blob);
  return { status: 201, body: { success: true, key: text, blob_size: size } };
}

export async function deleteEntity(store: Store, segment: string): Promise<Answer> {
  const { text, key } = keyFromPath(segment);
  const r = await store.delete(key.table, key.uuid);
  if (!r.applied) throw new ThemisError('ENTITY_NOT_FOUND', 'no entity is stored under this key');
  return { status: 200, body: { success: true, key: text } };
}
