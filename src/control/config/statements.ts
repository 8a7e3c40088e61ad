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

class Cursor {
  i = 0;
  constructor(readonly tokens: readonly Token[]) {}
  peek(): Token | undefined {
    return this.tokens[this.i];
  }
  next(): Token | undefined {
    return this.tokens[this.i++];
  }
  skipEol(): void {
    while (this.peek()?.kind === "eol") this.i++;
  }
  /** Where the input ends (for "unexpected end of file"). */
  endWhere(): Where {
    const last = this.tokens[this.tokens.length - 1];
    return last ? { file: last.file, line: last.line } : { file: "<config>", line: 0 };
  }
}

function parseBlock(c: Cursor, opener: Statement | undefined): Statement[] {
  const out: Statement[] = [];
  for (;;) {
    c.skipEol();
    const t = c.next();
    if (t === undefined) {
      if (opener) {
        throw new ConfigError(
          c.endWhere(),
          `unexpected end of file: expected '}' to close ${opener.keyword} (opened at ${opener.where.file}:${opener.where.line})`,
        );
      }
      return out;
    }
    const where = { file: t.file, line: t.line };
    if (t.kind === "close") {
      if (opener) return out;
      throw new ConfigError(where, "unexpected '}': no block is open");
    }
    if (t.kind === "open") {
      throw new ConfigError(where, "unexpected '{': a block must follow a keyword");
    }
    const st: Statement = { keyword: t.text, args: [], where };
    while (c.peek()?.kind === "word") st.args.push(c.next() as Token);
    // The block may open on this line or on the next non-empty one.
    const save = c.i;
    c.skipEol();
    if (c.peek()?.kind === "open") {
      c.next();
      st.block = parseBlock(c, st);
    } else {
      c.i = save;
    }
    out.push(st);
  }
}

/** The statements of a token stream (see lexer.ts). Throws ConfigError on unbalanced braces. */
export function parseStatements(tokens: readonly Token[]): Statement[] {
  return parseBlock(new Cursor(tokens), undefined);
}
