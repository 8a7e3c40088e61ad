/**
 * keepalived.conf's words: lines of blank-separated words, `{` and `}` as tokens of their own,
 * comments from `#` or `!` to the end of the line, strings in "..." or '...' (quotes removed,
 * blanks kept, a quoted part glued to the text around it, as in keepalived). Each line ends with
 * an `eol` token: keepalived's keywords take the rest of their line.
 *
 * The lines come from preprocess.ts (includes, `@` conditions, `$` parameters, `~SEQ`), without
 * their comments.
 */

import { resolve } from "node:path";
import { type PreprocessOptions, Preprocessor } from "./preprocess.js";
import { ConfigError, type Where } from "./types.js";

export type TokenKind = "word" | "open" | "close" | "eol";

export interface Token {
  kind: TokenKind;
  text: string;
  /** True when any part of the word was quoted (so `"{"` is a word, not a brace). */
  quoted: boolean;
  file: string;
  line: number;
}

/** Where tokens go: an array, or a StatementBuilder (statements.ts) that keeps only what it needs. */
export interface TokenSink {
  push(t: Token): unknown;
}

/** What reading the files found, besides the tokens. */
export interface LexInfo {
  files: string[];
  warnings: string[];
  /** Errors keepalived reads on past (failed include checks): the file still fails to load. */
  errors: ConfigError[];
}

export interface LexResult extends LexInfo {
  tokens: Token[];
}

export { MAX_INCLUDE_DEPTH } from "./preprocess.js";

/** A blank: space, tab, CR, form feed, vertical tab. */
function isBlank(c: number): boolean {
  return c === 32 || c === 9 || c === 13 || c === 12 || c === 11;
}

/**
 * A quoted part starting at text[i] (the quote). Inside it a backslash escapes the quote, a
 * backslash, n, t, r and xHH; any other backslash stays as it is (scripts see it).
 */
function readQuoted(text: string, i: number, where: Where): { value: string; end: number } {
  const quote = text[i] ?? "";
  let value = "";
  let j = i + 1;
  for (;;) {
    if (j >= text.length) throw new ConfigError(where, `unterminated quoted string (missing ${quote})`);
    const c = text[j] ?? "";
    if (c === quote) return { value, end: j + 1 };
    if (c === "\\" && j + 1 < text.length) {
      const e = text[j + 1] ?? "";
      const hex = e === "x" ? /^[0-9a-fA-F]{1,2}/.exec(text.slice(j + 2))?.[0] : undefined;
      if (hex !== undefined) {
        value += String.fromCharCode(Number.parseInt(hex, 16));
        j += 2 + hex.length;
        continue;
      }
      const simple: Record<string, string> = { n: "\n", t: "\t", r: "\r", "\\": "\\", [quote]: quote };
      if (simple[e] !== undefined) {
        value += simple[e];
        j += 2;
        continue;
      }
    }
    value += c;
    j++;
  }
}

/**
 * The tokens of one line. With `braces` false (include lines), `{` and `}` are ordinary
 * characters, so brace patterns reach the globber whole.
 */
export function lexLine(text: string, where: Where, braces = true, comments = true): Token[] {
  const out: Token[] = [];
  lexInto(out, text, where, braces, comments);
  return out;
}

/**
 * lexLine into `out`. A loop over character codes that slices words out of the line: a load of
 * a 5 MB file lexes half a million lines, so no per-character strings or regular expressions.
 */
function lexInto(out: TokenSink, text: string, where: Where, braces: boolean, comments: boolean): void {
  const { file, line } = where;
  const n = text.length;
  let i = 0;
  while (i < n) {
    const ch = text.charCodeAt(i);
    if (isBlank(ch)) {
      i++;
      continue;
    }
    if (comments && (ch === 35 || ch === 33)) break; // # !
    if (braces && (ch === 123 || ch === 125)) {
      const open = ch === 123;
      out.push({ kind: open ? "open" : "close", text: open ? "{" : "}", quoted: false, file, line });
      i++;
      continue;
    }
    let word = "";
    let quoted = false;
    let from = i;
    while (i < n) {
      const c = text.charCodeAt(i);
      if (isBlank(c) || (comments && (c === 35 || c === 33)) || (braces && (c === 123 || c === 125))) break;
      if (c === 34 || c === 39) {
        // " or ': the quoted part joins the word, without its quotes
        const q = readQuoted(text, i, where);
        word += text.slice(from, i) + q.value;
        quoted = true;
        i = q.end;
        from = i;
      } else i++;
    }
    word = word === "" ? text.slice(from, i) : word + text.slice(from, i);
    out.push({ kind: "word", text: word, quoted, file, line });
  }
}

export type LexOptions = PreprocessOptions;

/** Tokens of every line the preprocessor lets through, into `sink`. */
function lexWith(sink: TokenSink, read: (pp: Preprocessor) => void, opts: LexOptions): LexInfo {
  const pp = new Preprocessor((text, where) => {
    lexInto(sink, text, where, true, false);
    sink.push({ kind: "eol", text: "", quoted: false, file: where.file, line: where.line });
  }, opts);
  read(pp);
  return { files: pp.files, warnings: pp.warnings, errors: pp.errors };
}

/** The tokens of `path` and everything it includes, into `sink`. Throws ConfigError. */
export function lexFileTo(sink: TokenSink, path: string, opts: LexOptions = {}): LexInfo {
  return lexWith(sink, (pp) => pp.readMain(path), opts);
}

/** The tokens of a text given directly (tests), into `sink`; includes are taken from `dir`. */
export function lexTextTo(
  sink: TokenSink,
  text: string,
  name = "<config>",
  dir = ".",
  opts: LexOptions = {},
): LexInfo {
  return lexWith(sink, (pp) => pp.readText(text, name, resolve(dir), resolve(dir, name)), opts);
}

/** The tokens of `path` and everything it includes. Throws ConfigError. */
export function lexFile(path: string, opts: LexOptions = {}): LexResult {
  const tokens: Token[] = [];
  return { tokens, ...lexFileTo(tokens, path, opts) };
}

/** The tokens of a text given directly (tests); includes are taken from `dir`. */
export function lexText(text: string, name = "<config>", dir = ".", opts: LexOptions = {}): LexResult {
  const tokens: Token[] = [];
  return { tokens, ...lexTextTo(tokens, text, name, dir, opts) };
}
