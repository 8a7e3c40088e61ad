/**
 * keepalived.conf's line-level language, before any keyword is read (keepalived 2.2's
 * lib/parser.c read_line): comments, `include` and its checked variants, `@ID` / `@^ID`
 * conditional lines, `$NAME=value` parameters (multi-line with a trailing `\`), `$NAME` /
 * `${NAME}` substitution, and `~SEQ(...)` line repetition. Each line that survives is handed to
 * a sink with the file and line it came from.
 *
 * - Comments: `#` or `!` outside quotes to the end of the line; `\#` and `\!` outside quotes
 *   are the characters themselves. Leading and trailing blanks go.
 * - `@ID rest`: the rest is used only when ID is the configuration id (`lvsd --config-id`,
 *   default the host name up to its first dot, as keepalived); `@^ID rest`: only when it is
 *   not. A line that is only `@ID` is dropped.
 * - `$NAME=value` defines NAME (letters, digits, `_`; no blank before `=`); a value ending in
 *   `\` continues on the next lines until one without `\` (or an empty line). Definitions
 *   are replaced where used, `$NAME` (followed by a blank, `,`, `)` or the end) or `${NAME}`,
 *   and the result is read again (so definitions may use definitions). A multi-line value
 *   is only replaced at the end of a line: its first line joins the line, the others follow.
 *   Unknown names are left as they are. Built in: `$_PWD` (the current file's directory),
 *   `$_INSTANCE` (the configuration id), `${_RANDOM [MIN [MAX]]}` (0..32767), `$_HASH` (#),
 *   `$_BANG` (!).
 * - `~SEQ(VAR, END)`, `~SEQ(VAR, START, END)`, `~SEQ(VAR, START, STEP, END)` then text: the
 *   text once per value with $VAR defined as it (`~SEQx`: in hexadecimal); with END alone the
 *   sequence is 1..END (or -1..END when END is negative). Sequences nest.
 * - `include PATTERN`, `includer`, `includem`, `includew`, `includeb`, `includea`: see
 *   `INCLUDE_CHECKS`. Whatever the checks do not make an error is a warning.
 */

import { accessSync, constants, readFileSync, statSync } from "node:fs";
import { hostname } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { expandBraces, globFiles, hasGlobMeta } from "./glob.js";
import { ConfigError, type Where } from "./types.js";

/** How deep includes may nest. */
export const MAX_INCLUDE_DEPTH = 16;
/** Most logical lines one load may process, after ~SEQ and parameter expansion. */
export const MAX_EXPANDED_LINES = 1_000_000;

/**
 * What makes an include fail (keepalived's INCLUDE_R/M/W/B), by the letter after `include`.
 * read: a match that is a directory, not a regular file, executable or unreadable; match: a
 * plain name (or the directory of a pattern) that does not exist; wildcard: a pattern that
 * matches nothing; brace: a `{a,b}` alternative that does not exist. A failed check of the
 * variant is an error; the same problem under plain `include` is a warning, and the file is
 * skipped either way.
 */
export const INCLUDE_CHECKS: Readonly<Record<string, ReadonlySet<"read" | "match" | "wildcard" | "brace">>> =
  {
    "": new Set(),
    r: new Set(["read"]),
    m: new Set(["read", "match"]),
    w: new Set(["read", "match", "wildcard"]),
    b: new Set(["read", "brace"]),
    a: new Set(["read", "match", "wildcard", "brace"]),
  };

/** The configuration id keepalived uses by default: the node name up to its first dot. */
export function defaultConfigId(): string {
  const h = hostname();
  const dot = h.indexOf(".");
  return dot > 0 ? h.slice(0, dot) : h;
}

export interface PreprocessOptions {
  /** `@ID` lines are used when ID is this (default: defaultConfigId()). */
  configId?: string;
}

interface Definition {
  lines: string[];
  multiline: boolean;
  /** Built-in definitions compute their value. */
  fn?: (params: number[]) => string;
  /** How many numeric parameters `${NAME a b}` may have. */
  maxParams?: number;
}

/** Lines longer than this after substitution are refused (a definition that uses itself). */
const MAX_LINE = 1 << 16;

/** What decomment() has to look at character by character: comments, escapes, quotes. */
const DECOMMENT_SPECIAL = /[#!\\"']/;

/** keepalived's decomment(): comments, `\#` / `\!`, leading and trailing blanks. */
export function decomment(line: string): string {
  if (!DECOMMENT_SPECIAL.test(line)) {
    // most lines: only the blanks around them go
    let end = line.length;
    for (let c = line.charCodeAt(end - 1); c === 32 || c === 9; c = line.charCodeAt(end - 1)) end--;
    return line.slice(0, end).trimStart();
  }
  let out = "";
  let quote = "";
  let i = line.length - line.trimStart().length;
  for (; i < line.length; i++) {
    const c = line[i] ?? "";
    if (quote) {
      if (c === "\\" && i + 1 < line.length) {
        out += c + (line[++i] ?? "");
        continue;
      }
      if (c === quote) quote = "";
      out += c;
      continue;
    }
    if (c === '"' || c === "'") {
      quote = c;
      out += c;
    } else if (c === "\\") {
      const n = line[i + 1];
      if (n === "#" || n === "!") {
        out += n;
        i++;
      } else if (n !== undefined) {
        out += c + n;
        i++;
      } else out += c;
    } else if (c === "#" || c === "!") break;
    else out += c;
  }
  return out.replace(/[ \t]+$/, "").replace(/[ \t]+\\$/, "\\");
}

/** Receives each line that survives, already without comments. */
export type LineSink = (text: string, where: Where) => void;

interface Frame {
  /** Real path of the file (include loops). */
  real: string;
  dir: string;
}

export class Preprocessor {
  readonly files: string[] = [];
  readonly warnings: string[] = [];
  /** Problems keepalived reports as errors and reads on past (failed include checks). */
  readonly errors: ConfigError[] = [];
  private readonly configId: string;
  private readonly defs = new Map<string, Definition>();
  private readonly stack: Frame[] = [];
  /** A multi-line definition being read. */
  private pending: Definition | undefined;
  /** Logical lines processed so far (expansions included): bounded by MAX_EXPANDED_LINES. */
  private processed = 0;

  constructor(
    private readonly sink: LineSink,
    opts: PreprocessOptions = {},
  ) {
    this.configId = opts.configId ?? defaultConfigId();
    const std = (name: string, fn: (p: number[]) => string, maxParams = 0): void => {
      this.defs.set(name, { lines: [], multiline: false, fn, maxParams });
    };
    std("_PWD", () => this.stack[this.stack.length - 1]?.dir ?? process.cwd());
    std("_INSTANCE", () => this.configId);
    std(
      "_RANDOM",
      (p) => {
        const min = p[0] ?? 0;
        const max = p.length > 1 ? (p[1] ?? 32767) : 32767;
        return String(min + Math.floor(Math.random() * (max - min + 1)));
      },
      2,
    );
    std("_HASH", () => "#");
    std("_BANG", () => "!");
  }

  private warn(w: Where, msg: string): void {
    this.warnings.push(`${w.file}:${w.line}: ${msg}`);
  }

  /** Read the main file. Throws ConfigError when it cannot be read. */
  readMain(path: string): void {
    this.readFile(path, undefined, "cannot read the configuration");
  }

  private readFile(path: string, from: Where | undefined, what: string): void {
    const real = resolve(path);
    const at = from ?? { file: path, line: 0 };
    if (this.stack.some((f) => f.real === real)) {
      const chain = [
        ...this.stack.slice(this.stack.findIndex((f) => f.real === real)).map((f) => f.real),
        real,
      ];
      throw new ConfigError(at, `include loop: ${chain.join(" -> ")}`);
    }
    if (this.stack.length >= MAX_INCLUDE_DEPTH) {
      throw new ConfigError(at, `includes nest deeper than ${MAX_INCLUDE_DEPTH}`);
    }
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (err) {
      throw new ConfigError(at, `${what}: ${errnoWhy(err)}`);
    }
    this.files.push(path);
    this.readText(text, path, dirname(resolve(path)), real);
  }

  /** Every line of `text` (named `name`; includes and $_PWD from `dir`). */
  readText(text: string, name: string, dir: string, real = resolve(dir, name)): void {
    this.stack.push({ real, dir });
    try {
      const lines = text.split("\n");
      if (lines.length > 1 && lines[lines.length - 1] === "") lines.pop();
      for (let k = 0; k < lines.length; k++) {
        let raw = lines[k] ?? "";
        if (raw.charCodeAt(raw.length - 1) === 13) raw = raw.replace(/\r+$/, "");
        if (this.pending) {
          this.continueDefinition(raw);
          continue;
        }
        const text = decomment(raw);
        if (text !== "") this.process(text, { file: name, line: k + 1 }, 0);
      }
      this.pending = undefined; // a definition does not run on into the next file
    } finally {
      this.stack.pop();
    }
  }

  private continueDefinition(raw: string): void {
    const def = this.pending as Definition;
    if (raw.trim() === "") {
      this.pending = undefined;
      return;
    }
    let line = decomment(raw);
    const more = line.endsWith("\\");
    if (more) line = line.slice(0, -1).replace(/[ \t]+$/, "");
    if (line !== "") def.lines.push(line);
    if (!more) this.pending = undefined;
    if (!this.pending && def.lines.length === 0) def.multiline = false;
  }

  /** One logical line: conditions, definitions, sequences, substitution, include, then the sink. */
  private process(line: string, where: Where, depth: number): void {
    if (depth > 64) throw new ConfigError(where, "~SEQ and multi-line parameters nest deeper than 64");
    // nested ~SEQ can multiply (1,000,000 values each): a load must end, and soon
    if (++this.processed > MAX_EXPANDED_LINES)
      throw new ConfigError(where, `the configuration expands to more than ${MAX_EXPANDED_LINES} lines`);
    let text = line;
    const follow: string[] = [];
    for (let round = 0; ; round++) {
      if (round > 1000)
        throw new ConfigError(where, "parameter substitution does not end (a definition uses itself?)");
      if (text.startsWith("@")) {
        const rev = text[1] === "^";
        const rest = text.slice(rev ? 2 : 1);
        const m = /^([^ \t]*)[ \t]+/.exec(rest);
        if (!m) return; // nothing after the id
        if ((m[1] === this.configId) === rev) return;
        text = rest.slice(m[0].length);
      }
      if (text.startsWith("$") && this.define(text)) return;
      if (text.startsWith("~SEQ")) {
        this.sequence(text, where, depth);
        return;
      }
      if (text.startsWith("~LST")) {
        this.warn(where, "~LST is not supported by lvsd (line ignored)");
        return;
      }
      if (text.startsWith("~")) break;
      if (!text.includes("$")) break;
      const r = this.substitute(text, where);
      if (!r) break;
      text = decomment(r.text);
      follow.unshift(...r.more);
      if (!text.startsWith("@") && !text.includes("$")) break;
    }
    if (text !== "") this.emit(text, where);
    for (const f of follow) this.process(f, where, depth + 1);
  }

  private emit(text: string, where: Where): void {
    if (!text.startsWith("include")) {
      this.sink(text, where);
      return;
    }
    const inc = /^include([rmwba]?)[ \t]+(.*)$/.exec(text);
    if (inc) {
      this.include(inc[1] ?? "", inc[2] ?? "", where);
      return;
    }
    if (text === "include") throw new ConfigError(where, "include: expected a file name or pattern");
    this.sink(text, where);
  }

  /** `$NAME=value`: true when the line is a definition. */
  private define(text: string): boolean {
    const m = /^\$([A-Za-z_][A-Za-z0-9_]*)=[ \t]*(.*)$/.exec(text);
    if (!m) return false;
    const name = m[1] ?? "";
    let value = m[2] ?? "";
    const multiline = value.endsWith("\\");
    if (multiline) value = value.slice(0, -1).replace(/[ \t]+$/, "");
    const def: Definition = { lines: value === "" && multiline ? [] : [value], multiline };
    this.defs.set(name, def);
    if (multiline) this.pending = def;
    return true;
  }

  /**
   * Replace the defined `$NAME` / `${NAME}` in `text` (the replacement is scanned again).
   * Undefined when nothing was replaced.
   */
  private substitute(text: string, where: Where): { text: string; more: string[] } | undefined {
    let s = text;
    let more: string[] = [];
    let found = false;
    let pos = s.indexOf("$");
    let guard = 0;
    while (pos >= 0 && pos + 1 < s.length) {
      if (++guard > 10000 || s.length > MAX_LINE)
        throw new ConfigError(where, "parameter substitution does not end (a definition uses itself?)");
      const hit = this.match(s, pos);
      if (!hit) {
        pos = s.indexOf("$", pos + 1);
        continue;
      }
      found = true;
      const { def, end, params } = hit;
      let value: string;
      if (def.fn) value = def.fn(params);
      else if (def.multiline) {
        value = def.lines[0] ?? "";
        more = def.lines.slice(1);
      } else value = def.lines[0] ?? "";
      s = s.slice(0, pos) + value + s.slice(end);
      if (value.trimStart().startsWith("~")) break;
    }
    return found ? { text: s, more } : undefined;
  }

  /** The definition used at s[pos] (a `$`), with where its use ends. */
  private match(s: string, pos: number): { def: Definition; end: number; params: number[] } | undefined {
    const braces = s[pos + 1] === "{";
    const start = pos + (braces ? 2 : 1);
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(s.slice(start));
    if (!m) return undefined;
    const name = m[0];
    let end = start + name.length;
    let params: number[] = [];
    if (braces) {
      const p = /^((?: +[0-9]+)*)\}/.exec(s.slice(end));
      if (!p) return undefined;
      params = (p[1] ?? "").trim() === "" ? [] : (p[1] ?? "").trim().split(/ +/).map(Number);
      end += p[0].length;
    } else if (end < s.length && !" \t,)".includes(s[end] ?? "")) return undefined;
    const def = this.defs.get(name);
    if (!def) return undefined;
    if (def.multiline && end !== s.length) return undefined;
    if (params.length > 0 && params.length > (def.maxParams ?? 0)) return undefined;
    return { def, end, params };
  }

  /** `~SEQ(VAR, ...) text` / `~SEQx(...)`. */
  private sequence(text: string, where: Where, depth: number): void {
    const m = /^~SEQ(x?)[ \t]*\([ \t]*([^ \t,)]+)[ \t]*,([^)]*)\)[ \t]*(.*)$/.exec(text);
    const bad = (why: string): void => this.warn(where, `invalid ~SEQ specification (${why}): line ignored`);
    if (!m) {
      bad("expected ~SEQ(VAR, [START, [STEP,]] END) TEXT");
      return;
    }
    const hex = m[1] === "x";
    const name = m[2] ?? "";
    const argText = this.substitute(m[3] ?? "", where)?.text ?? m[3] ?? "";
    const nums = argText.split(",").map((a) => parseCInt(a.trim()));
    if (nums.some((n) => n === undefined) || nums.length < 1 || nums.length > 3) {
      bad("expected 1 to 3 integers");
      return;
    }
    const [a, b, c] = nums as number[];
    let start: number;
    let step: number;
    let end: number;
    if (nums.length === 1) {
      end = a ?? 0;
      step = end < 1 ? -1 : 1;
      start = end < 0 ? -1 : 1;
    } else if (nums.length === 2) {
      start = a ?? 0;
      end = b ?? 0;
      step = start <= end ? 1 : -1;
    } else {
      start = a ?? 0;
      step = b ?? 0;
      end = c ?? 0;
      if (step === 0 || (start < end && step < 0) || (start > end && step > 0)) {
        bad("the step does not reach the end");
        return;
      }
    }
    if (hex && (start < 0 || end < 0)) {
      bad("~SEQx is only for positive numbers");
      return;
    }
    if (Math.abs((end - start) / step) > 1_000_000) {
      bad("more than 1000000 values");
      return;
    }
    const body = m[4] ?? "";
    for (let v = start; step > 0 ? v <= end : v >= end; v += step) {
      this.defs.set(name, { lines: [hex ? v.toString(16) : String(v)], multiline: false });
      if (body !== "") this.process(body, where, depth + 1);
    }
  }

  private include(kind: string, rest: string, where: Where): void {
    const checks = INCLUDE_CHECKS[kind] ?? new Set();
    const keyword = `include${kind}`;
    // keepalived takes the rest of the line as one pattern; lvsd also splits it at blanks
    // (quotes group), as lvsd always has.
    const patterns = splitPatterns(rest);
    if (patterns.length === 0) throw new ConfigError(where, `${keyword}: expected a file name or pattern`);
    const dir = this.stack[this.stack.length - 1]?.dir ?? process.cwd();
    for (const pattern of patterns) this.includePattern(keyword, checks, pattern, dir, where);
  }

  private includePattern(
    keyword: string,
    checks: ReadonlySet<string>,
    pattern: string,
    dir: string,
    where: Where,
  ): void {
    const problem = (check: string, msg: string): void => {
      const text = `${keyword} ${pattern}: ${msg}`;
      if (checks.has(check)) this.errors.push(new ConfigError(where, text));
      else this.warnings.push(`${where.file}:${where.line}: ${text}`);
    };
    const full = (p: string): string => (isAbsolute(p) ? p : join(dir, p));
    let matches: string[];
    if (!hasGlobMeta(pattern)) {
      matches = exists(full(pattern)) ? [full(pattern)] : [];
      if (matches.length === 0) {
        problem("match", "no such file (nothing included)");
        return;
      }
    } else {
      const alts = expandBraces(pattern);
      const hasBraces = alts.length > 1;
      // an alternative (or the directory of a pattern) that does not exist
      const missing = alts.filter((a) => {
        const f = full(a);
        return /[*?[]/.test(a) ? !exists(dirname(f)) : !exists(f);
      });
      matches = globFiles(pattern, dir);
      if (matches.length === 0) {
        if (missing.length > 0) problem(hasBraces ? "brace" : "match", "no such file (nothing included)");
        else problem("wildcard", "no file matches (nothing included)");
        return;
      }
      if (missing.length > 0) {
        const text = `${keyword} ${pattern}: some files are missing: ${missing.join(", ")}`;
        if (checks.has("brace")) {
          this.errors.push(new ConfigError(where, `${text} (nothing included)`));
          return;
        }
        this.warnings.push(`${where.file}:${where.line}: ${text}`);
      }
    }
    for (const m of matches) {
      let st: ReturnType<typeof statSync>;
      try {
        st = statSync(m);
      } catch (err) {
        problem("read", `${m}: ${errnoWhy(err)} (skipped)`);
        continue;
      }
      if (st.isDirectory()) {
        problem("read", `${m === full(pattern) ? "" : `${m} `}is a directory (skipped)`.trimStart());
        continue;
      }
      if (!st.isFile() || (st.mode & 0o111) !== 0) {
        problem("read", `${m} is not a regular non-executable file (skipped)`);
        continue;
      }
      try {
        accessSync(m, constants.R_OK);
      } catch (err) {
        problem("read", `${m}: ${errnoWhy(err)} (skipped)`);
        continue;
      }
      this.readFile(m, where, `${keyword} ${m}`);
    }
  }
}

function exists(p: string): boolean {
  try {
    statSync(p);
    return true;
  } catch {
    return false;
  }
}

function errnoWhy(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e.code === "ENOENT"
    ? "no such file"
    : e.code === "EACCES"
      ? "permission denied"
      : e.code === "EISDIR"
        ? "is a directory"
        : e.message;
}

/** strtol(s, 0): decimal, 0x hex or 0 octal, with a sign. */
function parseCInt(s: string): number | undefined {
  const m = /^([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(s);
  if (!m) return undefined;
  const body = m[2] ?? "0";
  const v =
    body.startsWith("0x") || body.startsWith("0X")
      ? Number.parseInt(body.slice(2), 16)
      : body.length > 1 && body.startsWith("0")
        ? Number.parseInt(body, 8)
        : Number(body);
  return m[1] === "-" ? -v : v;
}

/** The words of an include line: blanks separate, quotes group. */
function splitPatterns(rest: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quote = "";
  let inWord = false;
  for (const c of rest) {
    if (quote) {
      if (c === quote) quote = "";
      else cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (c === " " || c === "\t") {
      if (inWord) out.push(cur);
      cur = "";
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) out.push(cur);
  return out;
}
