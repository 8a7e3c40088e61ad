/**
 * keepalived.conf's words: lines of blank-separated words, `{` and `}` as tokens of their own,
 * comments from `#` or `!` to the end of the line, strings in "..." or '...' (quotes removed,
 * blanks kept, a quoted part glued to the text around it, as in keepalived). Each line ends with
 * an `eol` token: keepalived's keywords take the rest of their line.
 *
 * `include PATTERN...` lines are replaced by the words of the files they name (relative names
 * are taken from the including file's directory; `*`, `?`, `[...]` and `{a,b}` expand as
 * glob(3) does). A plain name that does not exist is an error; a pattern that matches nothing
 * is a warning, as an optional conf.d directory is common. Include loops are refused.
 */

import { readFileSync, statSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { globFiles, hasGlobMeta } from "./glob.js";
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
}

/** How deep includes may nest. */
export const MAX_INCLUDE_DEPTH = 16;

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
export function lexLine(text: string, where: Where, braces = true): Token[] {
  const out: Token[] = [];
  const isBrace = (c: string): boolean => braces && (c === "{" || c === "}");
  let i = 0;
  while (i < text.length) {
    const ch = text[i] ?? "";
    if (BLANK.test(ch)) {
      i++;
      continue;
    }
    if (ch === "#" || ch === "!") break;
    if (isBrace(ch)) {
      out.push({ kind: ch === "{" ? "open" : "close", text: ch, quoted: false, ...where });
      i++;
      continue;
    }
    let word = "";
    let quoted = false;
    while (i < text.length) {
      const c = text[i] ?? "";
      if (BLANK.test(c) || c === "#" || c === "!" || isBrace(c)) break;
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

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function readText(path: string, where: Where | undefined, what: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why =
      e.code === "ENOENT"
        ? "no such file"
        : e.code === "EACCES"
          ? "permission denied"
          : e.code === "EISDIR"
            ? "is a directory"
            : e.message;
    throw new ConfigError(where ?? { file: path, line: 0 }, `${what}: ${why}`);
  }
}

interface LexState {
  tokens: Token[];
  files: string[];
  warnings: string[];
  /** Real paths of the files being read, outermost first (include loops). */
  stack: string[];
}

function lexInto(path: string, st: LexState, from: Where | undefined, what: string): void {
  const real = resolve(path);
  if (st.stack.includes(real)) {
    const chain = [...st.stack.slice(st.stack.indexOf(real)), real].join(" -> ");
    throw new ConfigError(from ?? { file: path, line: 0 }, `include loop: ${chain}`);
  }
  if (st.stack.length >= MAX_INCLUDE_DEPTH) {
    throw new ConfigError(from ?? { file: path, line: 0 }, `includes nest deeper than ${MAX_INCLUDE_DEPTH}`);
  }
  const text = readText(path, from, what);
  st.files.push(path);
  st.stack.push(real);
  lexLines(text, path, dirname(path), st);
  st.stack.pop();
}

/** Tokens of every line of `text` (named `name`), with includes taken from `dir`. */
function lexLines(text: string, name: string, dir: string, st: LexState): void {
  const lines = text.split("\n");
  if (lines.length > 1 && lines[lines.length - 1] === "") lines.pop(); // the final newline
  for (let k = 0; k < lines.length; k++) {
    const where: Where = { file: name, line: k + 1 };
    const line = lines[k] ?? "";
    if (/^[ \t]*include([ \t]|$)/.test(line)) {
      const words = lexLine(line, where, false).slice(1);
      if (words.length === 0) throw new ConfigError(where, "include: expected a file name or pattern");
      for (const w of words) includePattern(w.text, dir, where, st);
      continue;
    }
    for (const t of lexLine(line, where)) st.tokens.push(t);
    st.tokens.push({ kind: "eol", text: "", quoted: false, ...where });
  }
}

function includePattern(pattern: string, dir: string, where: Where, st: LexState): void {
  if (!hasGlobMeta(pattern)) {
    const p = isAbsolute(pattern) ? pattern : join(dir, pattern);
    if (isDirectory(p)) {
      st.warnings.push(`${where.file}:${where.line}: include ${pattern}: is a directory (nothing included)`);
      return;
    }
    lexInto(p, st, where, `include ${pattern}`);
    return;
  }
  const matches = globFiles(pattern, dir).filter((m) => !isDirectory(m));
  if (matches.length === 0) {
    st.warnings.push(`${where.file}:${where.line}: include ${pattern}: no file matches (nothing included)`);
    return;
  }
  for (const m of matches) lexInto(m, st, where, `include ${m}`);
}

/** The tokens of `path` and everything it includes. Throws ConfigError. */
export function lexFile(path: string): LexResult {
  const st: LexState = { tokens: [], files: [], warnings: [], stack: [] };
  lexInto(path, st, undefined, "cannot read the configuration");
  return { tokens: st.tokens, files: st.files, warnings: st.warnings };
}

/** The tokens of a text given directly (tests); includes are taken from `dir`. */
export function lexText(text: string, name = "<config>", dir = "."): LexResult {
  const st: LexState = { tokens: [], files: [], warnings: [], stack: [] };
  lexLines(text, name, dir, st);
  return { tokens: st.tokens, files: st.files, warnings: st.warnings };
}
