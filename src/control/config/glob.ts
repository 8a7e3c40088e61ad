/**
 * File-name patterns for keepalived.conf's `include`, as glob(3) with GLOB_BRACE expands them:
 * `*`, `?` and `[...]` (with `!` or `^` to negate) match within one path component, `{a,b}`
 * alternatives expand first (and nest). A leading dot is only matched explicitly. Matches are
 * returned sorted per alternative, as glob(3) returns them. Node 20 has no fs.glob, and this is all include needs.
 */

import { readdirSync, statSync } from "node:fs";
import { isAbsolute, join, sep } from "node:path";

/** True when `pattern` has glob metacharacters (an `include` of a plain path must exist). */
export function hasGlobMeta(pattern: string): boolean {
  return /[*?[{]/.test(pattern);
}

/** Expand `{a,b}` alternatives (nested ones too); a brace without a comma stays as it is. */
export function expandBraces(pattern: string): string[] {
  let depth = 0;
  let open = -1;
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === "\\") {
      i++;
      continue;
    }
    if (ch === "{") {
      if (depth === 0) open = i;
      depth++;
    } else if (ch === "}" && depth > 0) {
      depth--;
      if (depth === 0) {
        const body = pattern.slice(open + 1, i);
        const alts = splitTopLevel(body);
        if (alts.length < 2) continue; // "{x}" is literal, as in glob(3)
        const head = pattern.slice(0, open);
        const tail = pattern.slice(i + 1);
        return alts.flatMap((a) => expandBraces(head + a + tail));
      }
    }
  }
  return [pattern];
}

function splitTopLevel(body: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < body.length; i++) {
    const ch = body[i];
    if (ch === "\\") i++;
    else if (ch === "{") depth++;
    else if (ch === "}") depth--;
    else if (ch === "," && depth === 0) {
      out.push(body.slice(start, i));
      start = i + 1;
    }
  }
  out.push(body.slice(start));
  return out;
}

/** A regular expression for one path component's pattern. */
function componentRegExp(p: string): RegExp {
  let re = "^";
  for (let i = 0; i < p.length; i++) {
    const ch = p[i] ?? "";
    if (ch === "\\" && i + 1 < p.length) {
      re += escapeRe(p[++i] ?? "");
    } else if (ch === "*") re += "[^/]*";
    else if (ch === "?") re += "[^/]";
    else if (ch === "[") {
      const close = p.indexOf("]", i + 2);
      if (close < 0) {
        re += "\\[";
        continue;
      }
      let set = p.slice(i + 1, close);
      const negate = set.startsWith("!") || set.startsWith("^");
      if (negate) set = set.slice(1);
      re += `[${negate ? "^" : ""}${set.replace(/\\/g, "\\\\").replace(/\]/g, "\\]")}]`;
      i = close;
    } else re += escapeRe(ch);
  }
  return new RegExp(`${re}$`);
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Expand one brace-free pattern, component by component. */
function expandOne(pattern: string): string[] {
  const abs = isAbsolute(pattern);
  const parts = pattern.split(sep).filter((p, i) => p !== "" || i === 0);
  let bases: string[] = [abs ? sep : ""];
  for (const part of parts) {
    if (part === "") continue;
    const next: string[] = [];
    for (const base of bases) {
      if (!/[*?[]/.test(part)) {
        const p = base === "" ? part : join(base, part);
        next.push(p);
        continue;
      }
      const dir = base === "" ? "." : base;
      if (!isDir(dir)) continue;
      const re = componentRegExp(part);
      let names: string[];
      try {
        names = readdirSync(dir);
      } catch {
        continue;
      }
      for (const n of names) {
        if (n.startsWith(".") && !part.startsWith(".")) continue;
        if (re.test(n)) next.push(base === "" ? n : join(base, n));
      }
    }
    bases = next;
  }
  return bases.filter(exists);
}

/**
 * The existing paths `pattern` matches; relative patterns are taken from `cwd`.
 * Directories are returned too (the caller decides what to do with them).
 */
export function globFiles(pattern: string, cwd: string): string[] {
  const out = new Set<string>();
  // glob(3) with GLOB_BRACE: alternatives in their order, each one's matches sorted
  for (const alt of expandBraces(pattern)) {
    const full = isAbsolute(alt) ? alt : join(cwd, alt);
    for (const m of expandOne(full).sort()) out.add(m);
  }
  return [...out];
}
