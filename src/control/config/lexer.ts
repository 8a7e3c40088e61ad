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

export interface LexResult {
  tokens: Token[];
  files: string[];
  warnings: string[];
  /** Errors keepalived reads on past (failed include checks): the file still fails to load. */
  errors: ConfigError[];
}

export { MAX_INCLUDE_DEPTH } from "./preprocess.js";

const BLANK = /[ \t\r\f\v]/;

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
  const isBrace = (c: string): boolean => braces && (c === "{" || c === "}");
  let i = 0;
  while (i < text.length) {
    const ch = text[i] ?? "";
    if (BLANK.test(ch)) {
      i++;
      continue;
    }
    if (comments && (ch === "#" || ch === "!")) break;
    if (isBrace(ch)) {
      out.push({ kind: ch === "{" ? "open" : "close", text: ch, quoted: false, ...where });
      i++;
      continue;
    }
    let word = "";
    let quoted = false;
    while (i < text.length) {
      const c = text[i] ?? "";
      if (BLANK.test(c) || (comments && (c === "#" || c === "!")) || isBrace(c)) break;
      if (c === '"' || c === "'") {
        const q = readQuoted(text, i, where);
        word += q.value;
        quoted = true;
        i = q.end;
      } else {
        word += c;
        i++;
      }
    }
    out.push({ kind: "word", text: word, quoted, ...where });
  }
  return out;
}

export type LexOptions = PreprocessOptions;

/** Tokens of every line the preprocessor lets through. */
function lexWith(read: (pp: Preprocessor) => void, opts: LexOptions): LexResult {
  const tokens: Token[] = [];
  const pp = new Preprocessor((text, where) => {
    for (const t of lexLine(text, where, true, false)) tokens.push(t);
    tokens.push({ kind: "eol", text: "", quoted: false, ...where });
  }, opts);
  read(pp);
  return { tokens, files: pp.files, warnings: pp.warnings, errors: pp.errors };
}

/** The tokens of `path` and everything it includes. Throws ConfigError. */
export function lexFile(path: string, opts: LexOptions = {}): LexResult {
  return lexWith((pp) => pp.readMain(path), opts);
}

/** The tokens of a text given directly (tests); includes are taken from `dir`. */
export function lexText(text: string, name = "<config>", dir = ".", opts: LexOptions = {}): LexResult {
  return lexWith((pp) => pp.readText(text, name, resolve(dir), resolve(dir, name)), opts);
}
