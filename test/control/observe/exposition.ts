/**
 * A reader for the Prometheus text exposition format (version 0.0.4) for the metrics tests:
 * families with their HELP, TYPE and samples (labels and value). Strict: a line it does not
 * understand throws, so a malformed scrape fails the test that reads it.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  help: string;
  type: string;
  samples: Sample[];
}

const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/gy;
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$/;

function unescapeLabel(s: string): string {
  return s.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
}

function value(s: string): number {
  if (s === "+Inf") return Number.POSITIVE_INFINITY;
  if (s === "-Inf") return Number.NEGATIVE_INFINITY;
  if (s === "NaN" || s === "Nan") return Number.NaN;
  const v = Number(s);
  if (Number.isNaN(v)) throw new Error(`bad value '${s}'`);
  return v;
}

function labels(text: string | undefined, line: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (text === undefined) return out;
  const body = text.slice(1, -1);
  LABEL.lastIndex = 0;
  let at = 0;
  while (at < body.length) {
    LABEL.lastIndex = at;
    const m = LABEL.exec(body);
    if (!m) throw new Error(`bad labels in '${line}'`);
    out[m[1]!] = unescapeLabel(m[2]!);
    at = LABEL.lastIndex;
  }
  return out;
}

/** Families by name; samples of histograms and summaries go to their family (name without suffix). */
export function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const family = (name: string): Family => {
    let f = families.get(name);
    if (!f) {
      f = { name, help: "", type: "untyped", samples: [] };
      families.set(name, f);
    }
    return f;
  };
  if (!text.endsWith("\n")) throw new Error("the exposition must end with a newline");
  for (const line of text.split("\n")) {
    if (line === "") continue;
    if (line.startsWith("# HELP ")) {
      const sp = line.indexOf(" ", 7);
      family(line.slice(7, sp)).help = line.slice(sp + 1);
      continue;
    }
    if (line.startsWith("# TYPE ")) {
      const [name, type] = line.slice(7).split(" ");
      family(name!).type = type!;
      continue;
    }
    if (line.startsWith("#")) continue;
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`bad sample line '${line}'`);
    const name = m[1]!;
    const base = families.has(name) ? name : name.replace(/_(bucket|sum|count)$/, "");
    family(base).samples.push({ name, labels: labels(m[2], line), value: value(m[3]!) });
  }
  return families;
}

/** The value of the one sample of `name` whose labels include `match`; throws unless exactly one. */
export function sampleValue(
  families: Map<string, Family>,
  name: string,
  match: Record<string, string> = {},
): number {
  const f = families.get(name);
  if (!f) throw new Error(`no family ${name}`);
  const hits = f.samples.filter((s) => Object.entries(match).every(([k, v]) => s.labels[k] === v));
  if (hits.length !== 1) throw new Error(`${name} ${JSON.stringify(match)}: ${hits.length} samples`);
  return hits[0]!.value;
}
