// A recursive-descent parser for the AQL subset the mesh runs as a scatter-gather query:
//   FOR x IN collection [FILTER cond]… [SORT x.f [ASC|DESC]] [LIMIT [offset,] count] RETURN x
// where cond is comparisons (==, <, <=, >, >=) between a field of x and a literal or bind
// parameter, joined by AND (parentheses allowed). Text that is not AQL at all is INVALID_AQL
// (400); AQL that is valid but outside the subset is AQL_NOT_SUPPORTED or, for traversals,
// GRAPH_NOT_SUPPORTED (501), naming the construct. The answer is an AST; aql-translate.ts binds
// parameters and turns it into a /query body.
import { ThemisError } from '../errors.js';
import { syntaxError, tokenize, type Token } from './aql-lexer.js';

export type Position = { readonly line: number; readonly column: number };
export type Literal = string | number | boolean | null;
export type Operand =
  | { readonly kind: 'field'; readonly path: readonly string[]; readonly at: Position }
  | { readonly kind: 'literal'; readonly value: Literal; readonly at: Position }
  | { readonly kind: 'param'; readonly name: string; readonly at: Position };
export type CompareOp = '==' | '<' | '<=' | '>' | '>=';
export interface Comparison {
  readonly op: CompareOp;
  readonly left: Operand;
  readonly right: Operand;
  readonly at: Position;
}
export type CollectionRef = { readonly kind: 'name'; readonly name: string; readonly at: Position } | { readonly kind: 'param'; readonly name: string; readonly at: Position };
/** LIMIT's numbers: literals or bind parameters (checked when bound). */
export type Count = { readonly kind: 'literal'; readonly value: number; readonly at: Position } | { readonly kind: 'param'; readonly name: string; readonly at: Position };

export interface AqlQuery {
  readonly variable: string;
  readonly collection: CollectionRef;
  /** AND-ed. */
  readonly filters: readonly Comparison[];
  readonly sort?: { readonly path: readonly string[]; readonly desc: boolean };
  readonly limit?: { readonly offset?: Count; readonly count: Count };
}

export const SUBSET =
  'the mesh runs FOR x IN collection [FILTER x.f == | < | <= | > | >= value [AND …]] [SORT x.f [ASC|DESC]] [LIMIT [offset,] count] RETURN x, with values as literals or @bind parameters (docs/compatibility.md)';

export function unsupported(what: string, at?: Position): ThemisError {
  return new ThemisError('AQL_NOT_SUPPORTED', `AQL not supported${at ? ` at line ${at.line}, column ${at.column}` : ''}: ${what}; ${SUBSET}`);
}

function graph(at: Position): ThemisError {
  return new ThemisError('GRAPH_NOT_SUPPORTED', `AQL graph traversal at line ${at.line}, column ${at.column} is not supported: the mesh carries no graph queries; ${SUBSET}`);
}

/** AQL's reserved words (case-insensitive): never a variable or collection name here. */
const KEYWORDS = new Set([
  'FOR', 'IN', 'FILTER', 'SORT', 'LIMIT', 'RETURN', 'LET', 'COLLECT', 'WINDOW', 'INSERT', 'UPDATE', 'REPLACE', 'REMOVE', 'UPSERT', 'WITH', 'INTO', 'AGGREGATE',
  'ASC', 'DESC', 'AND', 'OR', 'NOT', 'LIKE', 'DISTINCT', 'GRAPH', 'OUTBOUND', 'INBOUND', 'ANY', 'ALL', 'NONE', 'AT', 'LEAST', 'SHORTEST_PATH', 'K_SHORTEST_PATHS',
  'K_PATHS', 'ALL_SHORTEST_PATHS', 'PRUNE', 'SEARCH', 'OPTIONS', 'TRUE', 'FALSE', 'NULL',
]);
/** Clauses of valid AQL this subset does not run. */
const OTHER_CLAUSES = new Set(['LET', 'COLLECT', 'WINDOW', 'INSERT', 'UPDATE', 'REPLACE', 'REMOVE', 'UPSERT', 'WITH', 'PRUNE', 'SEARCH', 'OPTIONS']);
const COMPARE = new Set(['==', '<', '<=', '>', '>=']);
const ARITHMETIC = new Set(['+', '-', '*', '/', '%', '?', '..']);

class Parser {
  private i = 0;
  constructor(private readonly t: Token[]) {}

  private peek(ahead = 0): Token {
    return this.t[Math.min(this.i + ahead, this.t.length - 1)]!;
  }
  private next(): Token {
    const tok = this.peek();
    if (this.i < this.t.length - 1) this.i++;
    return tok;
  }
  private isWord(tok: Token, word: string): boolean {
    return tok.kind === 'word' && tok.text.toUpperCase() === word;
  }
  private isOp(tok: Token, op: string): boolean {
    return tok.kind === 'op' && tok.text === op;
  }
  private describe(tok: Token): string {
    return tok.kind === 'eof' ? 'the end of the query' : tok.kind === 'string' ? `string ${JSON.stringify(tok.text)}` : `"${tok.text}"`;
  }
  private unexpected(tok: Token, wanted: string): ThemisError {
    return syntaxError(`expected ${wanted}, found ${this.describe(tok)}`, tok);
  }
  private expectWord(word: string): Token {
    const tok = this.next();
    if (!this.isWord(tok, word)) throw this.unexpected(tok, word);
    return tok;
  }
  /** A name (variable), not a reserved word. */
  private name(what: string): Token {
    const tok = this.next();
    if (tok.kind !== 'word' || KEYWORDS.has(tok.text.toUpperCase())) throw this.unexpected(tok, what);
    return tok;
  }

  parse(): AqlQuery {
    const first = this.peek();
    if (first.kind === 'word' && !this.isWord(first, 'FOR')) {
      const w = first.text.toUpperCase();
      if (OTHER_CLAUSES.has(w) || w === 'RETURN') throw unsupported(`a query that does not start with FOR (${w})`, first);
    }
    this.expectWord('FOR');
    const variable = this.name('a variable name after FOR').text;
    if (this.isOp(this.peek(), ',')) throw graph(this.peek());
    this.expectWord('IN');
    const collection = this.collection();
    const filters: Comparison[] = [];
    let sort: AqlQuery['sort'];
    let limit: AqlQuery['limit'];
    for (;;) {
      const tok = this.peek();
      if (this.isWord(tok, 'RETURN')) break;
      if (tok.kind !== 'word') throw this.unexpected(tok, 'FILTER, SORT, LIMIT or RETURN');
      const w = tok.text.toUpperCase();
      if (limit && (w === 'FILTER' || w === 'SORT' || w === 'LIMIT')) throw unsupported(`${w} after LIMIT (it would apply to the limited result)`, tok);
      if (w === 'FILTER') {
        this.next();
        this.condition(variable, filters);
      } else if (w === 'SORT') {
        if (sort) throw unsupported('more than one SORT', tok);
        this.next();
        sort = this.sortKey(variable);
      } else if (w === 'LIMIT') {
        this.next();
        const a = this.count();
        if (this.isOp(this.peek(), ',')) {
          this.next();
          limit = { offset: a, count: this.count() };
        } else {
          limit = { count: a };
        }
      } else if (w === 'FOR') {
        throw unsupported('a second FOR (joins and nested loops)', tok);
      } else if (OTHER_CLAUSES.has(w)) {
        throw unsupported(w, tok);
      } else {
        throw this.unexpected(tok, 'FILTER, SORT, LIMIT or RETURN');
      }
    }
    this.returnClause(variable);
    return { variable, collection, filters, ...(sort ? { sort } : {}), ...(limit ? { limit } : {}) };
  }

  private collection(): CollectionRef {
    const tok = this.peek();
    if (tok.kind === 'number' || this.isWord(tok, 'OUTBOUND') || this.isWord(tok, 'INBOUND') || this.isWord(tok, 'ANY') || this.isWord(tok, 'SHORTEST_PATH')) throw graph(tok);
    if (tok.kind === 'collection-param') {
      this.next();
      return { kind: 'param', name: tok.text, at: tok };
    }
    if (tok.kind === 'quoted-name') {
      this.next();
      return { kind: 'name', name: tok.text, at: tok };
    }
    if (this.isOp(tok, '[') || this.isOp(tok, '(') || tok.kind === 'param') throw unsupported('iterating over anything but a collection (an array, a subquery or a bind parameter)', tok);
    const first = this.name('a collection name after IN');
    if (this.isOp(this.peek(), '(')) throw unsupported(`the function ${first.text}()`, first);
    let name = first.text;
    // model.namespace.collection, written plainly
    while (this.isOp(this.peek(), '.') && this.peek(1).kind === 'word') {
      this.next();
      name += '.' + this.next().text;
    }
    return { kind: 'name', name, at: first };
  }

  /** cond := conj (OR conj)*; only conjunctions are run, so OR is refused. */
  private condition(variable: string, into: Comparison[]): void {
    this.conjunction(variable, into);
    const tok = this.peek();
    if (this.isWord(tok, 'OR') || this.isOp(tok, '||')) throw unsupported('OR (only AND-ed comparisons are run)', tok);
  }

  private conjunction(variable: string, into: Comparison[]): void {
    this.term(variable, into);
    while (this.isWord(this.peek(), 'AND') || this.isOp(this.peek(), '&&')) {
      this.next();
      this.term(variable, into);
    }
  }

  private term(variable: string, into: Comparison[]): void {
    const tok = this.peek();
    if (this.isWord(tok, 'NOT') || this.isOp(tok, '!')) throw unsupported('NOT', tok);
    if (this.isOp(tok, '(')) {
      this.next();
      this.condition(variable, into);
      const close = this.next();
      if (!this.isOp(close, ')')) throw this.unexpected(close, '")"');
      return;
    }
    const left = this.operand(variable);
    const op = this.peek();
    if (op.kind === 'op' && COMPARE.has(op.text)) {
      this.next();
      const right = this.operand(variable);
      this.noArithmetic();
      into.push({ op: op.text as CompareOp, left, right, at: left.at });
      return;
    }
    if (this.isOp(op, '!=')) throw unsupported('the operator !=', op);
    if (this.isOp(op, '=~') || this.isOp(op, '!~') || this.isWord(op, 'LIKE')) throw unsupported(`the operator ${op.text}`, op);
    if (this.isWord(op, 'IN') || (this.isWord(op, 'NOT') && this.isWord(this.peek(1), 'IN'))) throw unsupported('IN', op);
    if (this.isWord(op, 'ALL') || this.isWord(op, 'ANY') || this.isWord(op, 'NONE')) throw unsupported(`array comparison (${op.text.toUpperCase()})`, op);
    if (this.isOp(op, '=')) throw syntaxError('"=" assigns; compare with "=="', op);
    if (op.kind === 'eof' || this.isWord(op, 'AND') || this.isWord(op, 'OR') || this.isOp(op, ')') || (op.kind === 'word' && ['SORT', 'LIMIT', 'RETURN', 'FILTER'].includes(op.text.toUpperCase()))) {
      throw unsupported('a FILTER that is not a comparison (write x.f == value)', left.at);
    }
    throw this.unexpected(op, 'a comparison operator (==, <, <=, >, >=)');
  }

  private noArithmetic(): void {
    const tok = this.peek();
    if (tok.kind === 'op' && ARITHMETIC.has(tok.text)) throw unsupported(`arithmetic or other operators (${tok.text})`, tok);
  }

  private operand(variable: string): Operand {
    const tok = this.next();
    const at = { line: tok.line, column: tok.column };
    let result: Operand;
    if (tok.kind === 'string') result = { kind: 'literal', value: tok.text, at };
    else if (tok.kind === 'number') result = { kind: 'literal', value: Number(tok.text), at };
    else if (tok.kind === 'param') result = { kind: 'param', name: tok.text, at };
    else if (this.isOp(tok, '-') && this.peek().kind === 'number') result = { kind: 'literal', value: -Number(this.next().text), at };
    else if (this.isOp(tok, '[') || this.isOp(tok, '{')) throw unsupported('array and object values', tok);
    else if (this.isOp(tok, '(')) throw unsupported('a subquery or parenthesised value', tok);
    else if (tok.kind === 'collection-param') throw syntaxError(`@@${tok.text} names a collection; compare with a value parameter @name`, tok);
    else if (tok.kind === 'word') {
      const w = tok.text.toUpperCase();
      if (w === 'TRUE' || w === 'FALSE') result = { kind: 'literal', value: w === 'TRUE', at };
      else if (w === 'NULL') result = { kind: 'literal', value: null, at };
      else if (this.isOp(this.peek(), '(')) throw unsupported(`the function ${tok.text}()`, tok);
      else if (KEYWORDS.has(w)) throw this.unexpected(tok, 'a value or a field');
      else if (tok.text !== variable) throw syntaxError(`unknown variable "${tok.text}" (the loop variable is "${variable}")`, tok);
      else result = { kind: 'field', path: this.fieldPath(tok), at };
    } else {
      throw this.unexpected(tok, 'a value or a field');
    }
    this.noArithmetic();
    return result;
  }

  /** After the loop variable: .a.b.c (at least one step); x itself or x[…] is outside the subset. */
  private fieldPath(variable: Token): string[] {
    const path: string[] = [];
    for (;;) {
      const tok = this.peek();
      if (this.isOp(tok, '[')) throw unsupported('[] access (write x.field)', tok);
      if (!this.isOp(tok, '.')) break;
      this.next();
      const part = this.next();
      if (part.kind !== 'word' && part.kind !== 'quoted-name') throw this.unexpected(part, 'a field name after "."');
      path.push(part.text);
    }
    if (path.length === 0) throw unsupported(`the whole document "${variable.text}" as a value (compare one of its fields)`, variable);
    return path;
  }

  private sortKey(variable: string): { path: string[]; desc: boolean } {
    const tok = this.next();
    if (tok.kind !== 'word' || tok.text !== variable) {
      if (tok.kind === 'word' && !KEYWORDS.has(tok.text.toUpperCase()) && !this.isOp(this.peek(), '(')) throw syntaxError(`unknown variable "${tok.text}" (the loop variable is "${variable}")`, tok);
      throw unsupported('SORT by anything but a field of the loop variable', tok);
    }
    const path = this.fieldPath(tok);
    this.noArithmetic();
    let desc = false;
    const dir = this.peek();
    if (this.isWord(dir, 'ASC') || this.isWord(dir, 'DESC')) {
      this.next();
      desc = dir.text.toUpperCase() === 'DESC';
    }
    if (this.isOp(this.peek(), ',')) throw unsupported('SORT by more than one field', this.peek());
    return { path, desc };
  }

  private count(): Count {
    const tok = this.next();
    if (tok.kind === 'param') return { kind: 'param', name: tok.text, at: tok };
    if (tok.kind !== 'number') throw this.unexpected(tok, 'a number or @parameter after LIMIT');
    const value = Number(tok.text);
    if (!Number.isSafeInteger(value)) throw syntaxError(`LIMIT takes whole numbers, not ${tok.text}`, tok);
    return { kind: 'literal', value, at: tok };
  }

  private returnClause(variable: string): void {
    this.expectWord('RETURN');
    const tok = this.next();
    if (this.isWord(tok, 'DISTINCT')) throw unsupported('RETURN DISTINCT', tok);
    if (tok.kind === 'word' && tok.text === variable) {
      const after = this.peek();
      if (after.kind === 'eof') return;
      if (this.isOp(after, '.') || this.isOp(after, '[') || (after.kind === 'op' && ARITHMETIC.has(after.text))) throw unsupported('RETURN of anything but the loop variable (projections)', tok);
      throw this.unexpected(after, 'the end of the query after RETURN');
    }
    if (tok.kind === 'eof') throw this.unexpected(tok, 'an expression after RETURN');
    if (tok.kind === 'word' && !KEYWORDS.has(tok.text.toUpperCase()) && !this.isOp(this.peek(), '(')) throw syntaxError(`unknown variable "${tok.text}" (the loop variable is "${variable}")`, tok);
    throw unsupported('RETURN of anything but the loop variable (projections)', tok);
  }
}

/** Parses AQL text; throws INVALID_AQL, AQL_NOT_SUPPORTED or GRAPH_NOT_SUPPORTED. */
export function parseAql(text: string): AqlQuery {
  return new Parser(tokenize(text)).parse();
}
