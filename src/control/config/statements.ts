/**
 * keepalived.conf's structure: a statement is a keyword, the words after it on its line, and
 * optionally a `{ ... }` block of statements (the `{` may end the line or start the next one;
 * `}` may end a line of words). Only the structure is checked here; what the keywords mean is
 * parser.ts's business.
 */

import type { Token } from "./lexer.js";
import { ConfigError, type Where } from "./types.js";

export interface Statement {
  keyword: string;
  args: Token[];
  block?: Statement[];
  where: Where;
}

/**
 * Builds the statements from tokens as they come (`push`), so a load never holds the token
 * stream of a big file: only the words after keywords are kept, in the statements. The first
 * structural error is kept and thrown by `end()`, after the whole input has been read (so an
 * error found while reading, such as an unterminated quote, is reported first, as when the
 * statements were read from the finished stream).
 */
export class StatementBuilder {
  private readonly top: Statement[] = [];
  /** Open blocks, innermost last: the statement that opened each, and where its parent's statements go. */
  private readonly stack: { opener: Statement; parent: Statement[] }[] = [];
  private out: Statement[] = this.top;
  /** The statement whose words are being read. */
  private cur: Statement | undefined;
  /** A statement whose words ended: a `{` next (after any line ends) opens its block. */
  private pending: Statement | undefined;
  private error: ConfigError | undefined;
  private lastFile = "<config>";
  private lastLine = 0;
  /** The words of `cur`, copied into an array of their size when they end. */
  private readonly words: Token[] = [];

  /**
   * `settle`, when given, sees each top-level statement with a block as soon as its block
   * closes, and may return what to keep in its place (parser.ts reads a virtual_server there
   * and keeps only the result, so a big file's statements are never all held at once).
   */
  constructor(private readonly settle?: (st: Statement) => Statement) {}

  private endWords(): void {
    if (!this.cur) return;
    if (this.words.length > 0) {
      this.cur.args = this.words.slice();
      this.words.length = 0;
    }
    this.pending = this.cur;
    this.cur = undefined;
  }

  push(t: Token): void {
    if (this.error) return;
    this.lastFile = t.file;
    this.lastLine = t.line;
    if (this.cur) {
      if (t.kind === "word") {
        this.words.push(t);
        return;
      }
      this.endWords();
    }
    if (this.pending) {
      if (t.kind === "eol") return;
      const st = this.pending;
      this.pending = undefined;
      if (t.kind === "open") {
        // The block may open on the statement's line or on the next non-empty one.
        st.block = [];
        this.stack.push({ opener: st, parent: this.out });
        this.out = st.block;
        return;
      }
    }
    switch (t.kind) {
      case "eol":
        return;
      case "close": {
        const f = this.stack.pop();
        if (f) {
          this.out = f.parent;
          if (this.settle && this.stack.length === 0) {
            const kept = this.settle(f.opener);
            if (kept !== f.opener) this.top[this.top.length - 1] = kept;
          }
        } else
          this.error = new ConfigError({ file: t.file, line: t.line }, "unexpected '}': no block is open");
        return;
      }
      case "open":
        this.error = new ConfigError(
          { file: t.file, line: t.line },
          "unexpected '{': a block must follow a keyword",
        );
        return;
      case "word": {
        const st: Statement = { keyword: t.text, args: [], where: { file: t.file, line: t.line } };
        this.out.push(st);
        this.cur = st;
        return;
      }
      default: {
        const never: never = t.kind;
        throw new Error(`unknown token kind ${never}`);
      }
    }
  }

  /** The statements. Throws ConfigError on unbalanced braces. */
  end(): Statement[] {
    if (this.error) throw this.error;
    this.endWords();
    const open = this.stack[this.stack.length - 1];
    if (open) {
      const o = open.opener;
      throw new ConfigError(
        { file: this.lastFile, line: this.lastLine },
        `unexpected end of file: expected '}' to close ${o.keyword} (opened at ${o.where.file}:${o.where.line})`,
      );
    }
    return this.top;
  }
}

/** The statements of a token stream (see lexer.ts). Throws ConfigError on unbalanced braces. */
export function parseStatements(tokens: readonly Token[]): Statement[] {
  const b = new StatementBuilder();
  for (const t of tokens) b.push(t);
  return b.end();
}
