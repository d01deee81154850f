// Tokens of AQL text (ArangoDB's query language, as ThemisDB's POST /query/aql takes it): words,
// numbers, quoted strings, bind parameters (@name, @@name), operators and punctuation, with
// line/column positions. Comments (// and /* */) and white space are skipped. Anything that is
// not AQL at all (an unterminated string, a stray character) is INVALID_AQL, naming the place.
import { ThemisError } from '../errors.js';

export type TokenKind = 'word' | 'number' | 'string' | 'param' | 'collection-param' | 'quoted-name' | 'op' | 'eof';

export interface Token {
  readonly kind: TokenKind;
  /** The word as written, the string's value, the number's text, the parameter's name, or the operator. */
  readonly text: string;
  readonly line: number;
  readonly column: number;
}

/** AQL text longer than this is refused (the clients' queries are a few hundred bytes). */
export const MAX_AQL_LENGTH = 64 * 1024;

// Longest first, so that `<=` is not read as `<` then `=`.
const OPERATORS = ['..', '==', '!=', '<=', '>=', '=~', '!~', '&&', '||', '<', '>', '=', '!', '(', ')', '[', ']', '{', '}', ',', '.', ':', '+', '-', '*', '/', '%', '?'];

export function syntaxError(message: string, at?: { line: number; column: number }): ThemisError {
  return new ThemisError('INVALID_AQL', `AQL syntax error${at ? ` at line ${at.line}, column ${at.column}` : ''}: ${message}`);
}

const isDigit = (c: string | undefined) => c !== undefined && c >= '0' && c <= '9';
const isWordStart = (c: string | undefined) => c !== undefined && /[A-Za-z_]/.test(c);
const isWordChar = (c: string | undefined) => c !== undefined && /[A-Za-z0-9_]/.test(c);

const ESCAPES: Record<string, string> = { n: '\n', r: '\r', t: '\t', b: '\b', f: '\f', '\\': '\\', "'": "'", '"': '"', '/': '/' };

export function tokenize(text: string): Token[] {
  if (text.length > MAX_AQL_LENGTH) throw syntaxError(`the query is longer than ${MAX_AQL_LENGTH} characters`);
  const out: Token[] = [];
  let i = 0;
  let line = 1;
  let lineStart = 0;
  const here = () => ({ line, column: i - lineStart + 1 });
  const push = (kind: TokenKind, value: string, at: { line: number; column: number }) => out.push({ kind, text: value, ...at });
  while (i < text.length) {
    const c = text[i]!;
    if (c === '\n') {
      i++;
      line++;
      lineStart = i;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r') {
      i++;
      continue;
    }
    if (c === '/' && text[i + 1] === '/') {
      while (i < text.length && text[i] !== '\n') i++;
      continue;
    }
    if (c === '/' && text[i + 1] === '*') {
      const at = here();
      const end = text.indexOf('*/', i + 2);
      if (end < 0) throw syntaxError('unterminated /* comment', at);
      for (let j = i; j < end; j++) {
        if (text[j] === '\n') {
          line++;
          lineStart = j + 1;
        }
      }
      i = end + 2;
      continue;
    }
    const at = here();
    if (c === '"' || c === "'") {
      let value = '';
      i++;
      for (;;) {
        const d = text[i];
        if (d === undefined || d === '\n') throw syntaxError('unterminated string', at);
        i++;
        if (d === c) break;
        if (d !== '\\') {
          value += d;
          continue;
        }
        const e = text[i++];
        if (e === 'u' && /^[0-9A-Fa-f]{4}$/.test(text.slice(i, i + 4))) {
          value += String.fromCharCode(parseInt(text.slice(i, i + 4), 16));
          i += 4;
        } else if (e !== undefined && ESCAPES[e] !== undefined) {
          value += ESCAPES[e];
        } else {
          throw syntaxError(`unknown escape \\${e ?? ''} in a string`, at);
        }
      }
      push('string', value, at);
      continue;
    }
    if (c === '`' || c === '´') {
      const end = text.indexOf(c, i + 1);
      if (end < 0 || text.slice(i + 1, end).includes('\n')) throw syntaxError('unterminated quoted name', at);
      push('quoted-name', text.slice(i + 1, end), at);
      i = end + 1;
      continue;
    }
    if (isDigit(c) || (c === '.' && isDigit(text[i + 1]) && text[i - 1] !== '.')) {
      const m = /^(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][+-]?\d+)?/.exec(text.slice(i))!;
      if (isWordChar(text[i + m[0].length])) throw syntaxError(`malformed number "${text.slice(i, i + m[0].length + 1)}"`, at);
      push('number', m[0], at);
      i += m[0].length;
      continue;
    }
    if (c === '@') {
      const collection = text[i + 1] === '@';
      const start = i + (collection ? 2 : 1);
      let j = start;
      while (isWordChar(text[j])) j++;
      if (j === start) throw syntaxError('a bind parameter needs a name after @', at);
      push(collection ? 'collection-param' : 'param', text.slice(start, j), at);
      i = j;
      continue;
    }
    if (isWordStart(c)) {
      let j = i + 1;
      while (isWordChar(text[j])) j++;
      push('word', text.slice(i, j), at);
      i = j;
      continue;
    }
    const op = OPERATORS.find((o) => text.startsWith(o, i));
    if (op === undefined) throw syntaxError(`unexpected character ${JSON.stringify(c)}`, at);
    push('op', op, at);
    i += op.length;
  }
  push('eof', '', here());
  return out;
}
