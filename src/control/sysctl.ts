/**
 * `lvsadm --sysctl [NAME[=VALUE]]`: lvsd's run-time knobs under the kernel's
 * /proc/sys/net/ipv4/vs names (and rp_filter, Linux's net.ipv4.conf.*.rp_filter), listed as `sysctl` prints them ("net.ipv4.vs.NAME = VALUE") and
 * set with the same names and value syntax (the `net.ipv4.vs.` prefix is optional). Values are
 * checked as the kernel's proc handlers check them.
 */
import type { Sysctl } from "../tables/sysctl.js";
import type { ExecResult } from "./types.js";

const PREFIX = "net.ipv4.vs.";

interface Knob {
  name: string;
  get(s: Sysctl): string;
  /** Returns an error message, or undefined when set. */
  set(s: Sysctl, words: readonly number[]): string | undefined;
  arity: number;
}

/** The Sysctl fields that hold numbers. */
type NumericKey = { [K in keyof Sysctl]: Sysctl[K] extends number ? K : never }[keyof Sysctl];

function flag(name: string, key: NumericKey, max = 1): Knob {
  return {
    name,
    arity: 1,
    get: (s) => String(s[key]),
    set: (s, [v]) => {
      if (v! < 0 || v! > max) return `${name} takes 0..${max}`;
      s[key] = v!;
      return undefined;
    },
  };
}

/** A knob of the defence (src/control/defense.ts): set, then the defence is re-evaluated at once. */
function defense(name: string, key: NumericKey, max: number): Knob {
  const k = flag(name, key, max);
  return {
    ...k,
    set: (s, w) => {
      const e = k.set(s, w);
      if (e === undefined) s.onDefenseChange?.();
      return e;
    },
  };
}

const KNOBS: readonly Knob[] = [
  defense("am_droprate", "amDroprate", 0x7fffffff),
  defense("amemthresh", "amemthresh", 0x7fffffff),
  flag("conn_reuse_mode", "connReuseMode", 3),
  {
    name: "embryonic_share",
    arity: 1,
    get: (s) => String(s.embryonicShare),
    set: (s, [v]) => {
      if (v! < 1 || v! > 100) return "embryonic_share takes a percentage of the connection table, 1..100";
      s.embryonicShare = v!;
      return undefined;
    },
  },
  defense("drop_entry", "dropEntry", 3),
  defense("drop_packet", "dropPacket", 3),
  flag("expire_nodest_conn", "expireNodestConn"),
  flag("expire_quiescent_template", "expireQuiescentTemplate"),
  flag("rp_filter", "rpFilter", 2),
  defense("secure_tcp", "secureTcp", 3),
  flag("sloppy_tcp", "sloppyTcp"),
  flag("sync_persist_mode", "syncPersistMode"),
  {
    name: "sync_refresh_period",
    arity: 1,
    get: (s) => String(s.syncRefreshPeriod),
    set: (s, [v]) => {
      if (v! < 0 || v! > 0x7fffffff) return "sync_refresh_period takes seconds, 0 or more";
      s.syncRefreshPeriod = v!;
      return undefined;
    },
  },
  flag("sync_retries", "syncRetries", 3),
  {
    // the kernel's pair "threshold period": threshold < period unless period is 0
    name: "sync_threshold",
    arity: 2,
    get: (s) => `${s.syncThreshold}\t${s.syncPeriod}`,
    set: (s, [t, p]) => {
      if (t! < 0 || p! < 0 || (p !== 0 && t! >= p!))
        return "sync_threshold takes 'THRESHOLD PERIOD' with THRESHOLD < PERIOD (or PERIOD 0)";
      s.syncThreshold = t!;
      s.syncPeriod = p!;
      return undefined;
    },
  },
];

function line(k: Knob, s: Sysctl): string {
  return `${PREFIX}${k.name} = ${k.get(s)}\n`;
}

/** Run `--sysctl` with its argument (undefined: list all). */
export function runSysctl(arg: string | undefined, s: Sysctl | undefined, prog: string): ExecResult {
  const fail = (m: string): ExecResult => ({ stdout: "", stderr: `${prog}: --sysctl: ${m}\n`, code: 2 });
  if (!s) return fail("this director has no run-time knobs");
  if (arg === undefined) return { stdout: KNOBS.map((k) => line(k, s)).join(""), stderr: "", code: 0 };
  const eq = arg.indexOf("=");
  const raw = (eq < 0 ? arg : arg.slice(0, eq)).trim();
  const name = raw.startsWith(PREFIX) ? raw.slice(PREFIX.length) : raw;
  const k = KNOBS.find((x) => x.name === name);
  if (!k) return fail(`unknown name '${raw}' (known: ${KNOBS.map((x) => x.name).join(", ")})`);
  if (eq < 0) return { stdout: line(k, s), stderr: "", code: 0 };
  const words = arg
    .slice(eq + 1)
    .trim()
    .split(/[\s,]+/)
    .filter((w) => w !== "");
  if (words.length !== k.arity || !words.every((w) => /^\d+$/.test(w)))
    return fail(`${k.name} takes ${k.arity === 1 ? "one integer" : `${k.arity} integers`}`);
  const e = k.set(
    s,
    words.map((w) => Number(w)),
  );
  if (e) return fail(e);
  // as `sysctl -w` echoes what it wrote (an automatic defence mode may already read 2)
  return { stdout: `${PREFIX}${k.name} = ${words.map((w) => Number(w)).join("\t")}\n`, stderr: "", code: 0 };
}
