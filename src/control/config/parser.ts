/**
 * keepalived.conf → KeepalivedConfig: the `virtual_server` and `virtual_server_group` blocks
 * with keepalived's keywords, defaults and inheritance (virtual server → real server → checker).
 *
 * - Syntax errors, bad values and features lvsd cannot carry (IPv6, SCTP, tunnel types other
 *   than ipip) throw ConfigError "FILE:LINE: what was expected". What keepalived 2.2 reports
 *   and reads past (an unknown block, scheduler or protocol, a weight out of range, a duplicate
 *   virtual_server, a bad virtual_server_group entry) is a warning and read past here too
 *   (docs/keepalived.md, "Differences from keepalived 2.2"). A real server whose checker lvsd
 *   cannot run gets an UNRUNNABLE checker: held down, never assumed up.
 * - The line language (includes, `@` conditions, `$` parameters, `~SEQ`) is preprocess.ts.
 * - `vrrp_instance` blocks (docs/ha.md, docs/keepalived.md) and global_defs' `vrrp_version`
 *   and `vrrp_garp_*`; with notify_* / notify, track_script (vrrp_script blocks),
 *   track_interface and garp_master_*; `vrrp_sync_group` blocks; VRRP keywords not
 *   implemented yet (track_process/file/bfd, use_vmac, ...) are warnings naming them.
 * - Unknown keywords, and keywords lvsd knows but does not implement, are warnings
 *   "FILE:LINE: ..." and are ignored; so are the blocks of the other keepalived subsystems
 *   (the rest of global_defs, static_*).
 *
 * Nothing here touches the service table: applying a configuration is src/control/health/manager.ts.
 */

import { isIPv6 } from "node:net";
import { FORWARDING_METHODS } from "../../datapath/modes/index.js";
import { allSchedulerFlags, getScheduler, schedulerNames } from "../../datapath/schedulers/index.js";
import { AddrError, ipToU32, u32ToIp } from "../../lib/addr.js";
import { IPPROTO_TCP, IPPROTO_UDP } from "../../lib/proto.js";
import { DEFAULT_PERSIST_TIMEOUT, FwdMethod, SVC_F_ONEPACKET, SVC_F_PERSISTENT } from "../../tables/model.js";
import { MAX_PERSIST_TIMEOUT, MAX_WEIGHT, type ServiceKey, serviceKey } from "../../tables/services.js";
import { parseSchedFlagsIpvsadm } from "../sched.js";
import type { Token } from "./lexer.js";
import { type LexInfo, lexFileTo, lexTextTo, type TokenSink } from "./lexer.js";
import { type Statement, StatementBuilder } from "./statements.js";
import {
  CHECKER_TYPES,
  type CheckerConfig,
  type CheckerType,
  type CheckTiming,
  ConfigError,
  type KeepalivedConfig,
  type LvsSyncDaemonSpec,
  type ProbeTarget,
  type RealServerConfig,
  type SorryServerConfig,
  type UrlCheck,
  type VirtualServerConfig,
  type VrrpGarpSpec,
  type VrrpInstanceSpec,
  type VrrpNotifySpec,
  type VrrpScriptSpec,
  type VrrpSyncGroupSpec,
  type VrrpTrackInterface,
  type Where,
} from "./types.js";

/** keepalived's defaults. */
export const DEFAULTS = {
  delayLoop: 60,
  connectTimeout: 5,
  retry: 1,
  miscRetry: 0,
  delayBeforeRetry: 1,
  httpDelayBeforeRetry: 3,
  quorum: 1,
  hysteresis: 0,
  weight: 1,
  maxReplyLength: 255,
  dnsRetry: 3,
  smtpHelo: "smtpchecker.keepalived.org",
  dnsType: 6,
} as const;

/** keepalived's largest weight (IPVS_WEIGHT_MAX, the kernel's int). */
export const KEEPALIVED_MAX_WEIGHT = 2147483647;

/** DNS_CHECK `type` names (keepalived's table). */
export const DNS_TYPES: Readonly<Record<string, number>> = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  RRSIG: 46,
  DNSKEY: 48,
};

/** The largest virtual_server_group address range we expand. */
export const MAX_GROUP_RANGE = 256;
const MAX_THRESHOLD = 2147483647;

/** Blocks of keepalived's other subsystems: skipped with one warning each. */
const OTHER_SUBSYSTEMS = new Set([
  "vrrp_script",
  "vrrp_track_process",
  "static_ipaddress",
  "static_routes",
  "static_rules",
  "linkbeat_interfaces",
  "interface_up_down_delays",
  "track_group",
  "bfd_instance",
  "garp_group",
  "net_namespace",
  "net_namespace_ipvs",
  "instance",
  "use_pid_dir",
  "linkbeat_use_polling",
  "child_wait_time",
  "SSL",
]);

/** Checkers keepalived has and lvsd does not run: a real server with one is held down. */
const OTHER_CHECKERS = new Set(["BFD_CHECK"]);

/** Keywords known and deliberately ignored (no effect in lvsd), per block. */
const IGNORED: Readonly<Record<string, ReadonlySet<string>>> = {
  virtual_server: new Set(["smtp_alert", "snmp_name", "ha_suspend", "nat_mask", "ip_family"]),
  real_server: new Set(["smtp_alert", "snmp_name"]),
  checker: new Set(["bind_if", "fwmark", "user", "enable_sni", "sni_name", "tls_compliant"]),
  url: new Set([
    "regex",
    "regex_no_match",
    "regex_options",
    "regex_stack",
    "regex_min_offset",
    "regex_max_offset",
  ]),
};

/** keepalived's names for the forwarding methods (the registry's lbKind: NAT, DR, TUN). */
const METHODS: ReadonlyMap<string, FwdMethod> = new Map(
  FORWARDING_METHODS.flatMap((m) => (m.lbKind === null ? [] : [[m.lbKind, m.fwd] as const])),
);

/** "NAT, DR or TUN" */
const METHOD_NAMES = [...METHODS.keys()].join(", ").replace(/, ([^,]*)$/, " or $1");

/** A top-level `track_file NAME { file PATH; weight W [reverse]; init_file [VALUE] [overwrite] }`. */
interface TrackFileSpec {
  where: Where;
  name: string;
  path?: string;
  weight: number;
  reverse: boolean;
  init?: { value: number; overwrite: boolean };
}

// ---- value helpers ----

class Ctx {
  readonly warnings: string[] = [];
  /** Top-level track_file blocks, by name (FILE_CHECK refers to them). */
  readonly trackFiles = new Map<string, TrackFileSpec>();
  warn(w: Where, msg: string): void {
    this.warnings.push(`${w.file}:${w.line}: ${msg}`);
  }
}

function fail(w: Where, msg: string): never {
  throw new ConfigError(w, msg);
}

/** Exactly `n` words after the keyword. */
function args(st: Statement, n: number, what: string): string[] {
  if (st.args.length === n) return st.args.map((a) => a.text);
  if (st.args.length < n) fail(st.where, `${st.keyword}: expected ${what}`);
  fail(st.where, `${st.keyword}: expected ${what}, got ${st.args.length} values`);
}

function one(st: Statement, what: string): string {
  const a = st.args[0];
  if (a !== undefined && st.args.length === 1) return a.text;
  return args(st, 1, what)[0] ?? "";
}

function noBlock(st: Statement): void {
  if (st.block) fail(st.where, `${st.keyword} does not take a block`);
}

function needBlock(st: Statement): Statement[] {
  if (!st.block) fail(st.where, `${st.keyword}: expected '{' to open its block`);
  return st.block;
}

function int(st: Statement, text: string, min: number, max: number): number {
  const v = /^[0-9]+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(v) || v < min || v > max) {
    fail(st.where, `${st.keyword}: expected an integer ${min}..${max}, got '${text}'`);
  }
  return v;
}

function intArg(st: Statement, min: number, max: number): number {
  return int(st, one(st, `an integer ${min}..${max}`), min, max);
}

/** keepalived's <TIMER>: seconds, fractions allowed. */
function timerArg(st: Statement, positive: boolean): number {
  const text = one(st, "a time in seconds");
  const v = /^([0-9]+(\.[0-9]*)?|\.[0-9]+)$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isFinite(v) || (positive && v <= 0) || v > 86400 * 31) {
    fail(
      st.where,
      `${st.keyword}: expected a time in seconds (like 5 or 0.5${positive ? ", above 0" : ""}), got '${text}'`,
    );
  }
  return v;
}

/** A flag that may carry keepalived's <BOOL> (on|off|true|false|yes|no); bare means on. */
function boolArg(st: Statement): boolean {
  if (st.args.length === 0) return true;
  const v = one(st, "on|off|true|false|yes|no").toLowerCase();
  if (v === "on" || v === "true" || v === "yes") return true;
  if (v === "off" || v === "false" || v === "no") return false;
  fail(st.where, `${st.keyword}: expected on|off|true|false|yes|no, got '${v}'`);
}

function ip(st: Statement, text: string, what = "an IPv4 address"): number {
  if (text.includes(":") && isIPv6(text))
    fail(st.where, `${st.keyword}: IPv6 is not supported by lvsd ('${text}')`);
  try {
    return ipToU32(text);
  } catch (err) {
    if (err instanceof AddrError) fail(st.where, `${st.keyword}: expected ${what}, got '${text}'`);
    throw err;
  }
}

function port(st: Statement, text: string): number {
  return int(st, text, 0, 65535);
}

/**
 * A script with its arguments, as keepalived splits it: blanks separate words, '...' and "..."
 * group them, a backslash escapes the next character.
 */
export function splitCommand(s: string): string[] {
  const out: string[] = [];
  let cur = "";
  let inWord = false;
  let quote = "";
  for (let i = 0; i < s.length; i++) {
    const c = s[i] ?? "";
    if (quote) {
      if (c === quote) quote = "";
      else if (c === "\\" && quote === '"' && i + 1 < s.length) cur += s[++i];
      else cur += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === "\\" && i + 1 < s.length) {
      cur += s[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
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

/** notify_up, quorum_down, misc_path...: one (usually quoted) command; a user is not supported. */
function commandArg(ctx: Ctx, st: Statement): string[] {
  if (st.args.length === 0)
    fail(st.where, `${st.keyword}: expected a script (quote it when it has arguments)`);
  if (st.args.length > 1) {
    ctx.warn(
      st.where,
      `${st.keyword}: running scripts as user '${st.args[1]?.text}' is not supported by lvsd (it runs as lvsd's user)`,
    );
  }
  const argv = splitCommand(st.args[0]?.text ?? "");
  if (argv.length === 0) fail(st.where, `${st.keyword}: expected a script, got an empty string`);
  return argv;
}

/** lvs_method / lb_kind NAT|DR|TUN [...] (FULLNAT has no keepalived name). */
function methodArg(st: Statement): FwdMethod {
  const name = (st.args[0]?.text ?? "").toUpperCase();
  const m = METHODS.get(name);
  if (m === undefined)
    fail(st.where, `${st.keyword}: expected ${METHOD_NAMES}, got '${st.args[0]?.text ?? ""}'`);
  const extra = st.args.slice(1).map((a) => a.text);
  if (m === FwdMethod.TUNNEL && extra.length > 0) {
    // keepalived: TUN [type ipip|gue port N|gre] [nocsum|csum|remcsum]; the data path has ipip
    if (extra[0] !== "type" || extra[1] !== "ipip" || extra.length > 2) {
      fail(
        st.where,
        `${st.keyword} TUN ${extra.join(" ")}: only ipip tunnels are available (TUN or TUN type ipip)`,
      );
    }
  } else if (extra.length > 0) {
    fail(st.where, `${st.keyword} ${name}: expected no more values, got '${extra.join(" ")}'`);
  }
  return m;
}

/** Hex strings as UDP_CHECK reads them: words of hex digits, each read in pairs (an odd last digit is one byte). */
function hexArg(
  st: Statement,
  words: readonly Token[],
  wildcards: boolean,
): { bytes: Uint8Array; mask: Uint8Array } {
  const bytes: number[] = [];
  const mask: number[] = [];
  const re = wildcards ? /^[0-9a-fA-FxX]+$/ : /^[0-9a-fA-F]+$/;
  for (const w of words) {
    if (!re.test(w.text)) fail(st.where, `${st.keyword}: expected hex digits, got '${w.text}'`);
    for (let i = 0; i < w.text.length; i += 2) {
      const pair = w.text.slice(i, i + 2);
      const nib = pair.length === 2 ? [pair[0] ?? "0", pair[1] ?? "0"] : ["0", pair[0] ?? "0"];
      let b = 0;
      let m = 0;
      for (const [k, ch] of nib.entries()) {
        const shift = k === 0 ? 4 : 0;
        if (ch === "x" || ch === "X") continue;
        b |= Number.parseInt(ch, 16) << shift;
        m |= 0xf << shift;
      }
      bytes.push(b);
      mask.push(m);
    }
  }
  return { bytes: Uint8Array.from(bytes), mask: Uint8Array.from(mask) };
}

/** status_code 200 | 200-299 | several of them. */
function statusArg(st: Statement): [number, number][] {
  if (st.args.length === 0) fail(st.where, `${st.keyword}: expected status codes (like 200 or 200-299)`);
  return st.args.map((a) => {
    const m = /^([0-9]{3})(?:-([0-9]{3}))?$/.exec(a.text);
    const lo = m ? Number(m[1]) : Number.NaN;
    const hi = m?.[2] !== undefined ? Number(m[2]) : lo;
    if (!m || lo < 100 || hi > 599 || hi < lo) {
      fail(
        st.where,
        `${st.keyword}: expected a status code 100..599 or a range like 200-299, got '${a.text}'`,
      );
    }
    return [lo, hi] as [number, number];
  });
}

// ---- inheritance ----

/** Options a virtual server passes to its real servers, and they to their checkers. */
interface Inherit {
  delayLoop?: number;
  connectTimeout?: number;
  retry?: number;
  delayBeforeRetry?: number;
  warmup?: number;
  alpha?: boolean;
  inhibit?: boolean;
  virtualhost?: string;
  logAllFailures?: boolean;
}

/** Handle one inheritable keyword; false when `st` is not one. */
function inheritable(st: Statement, into: Inherit): boolean {
  switch (st.keyword) {
    case "delay_loop":
      into.delayLoop = timerArg(st, true);
      return true;
    case "connect_timeout":
      into.connectTimeout = timerArg(st, true);
      return true;
    case "retry":
      into.retry = intArg(st, 0, 1_000_000);
      return true;
    case "delay_before_retry":
      into.delayBeforeRetry = timerArg(st, false);
      return true;
    case "warmup":
      into.warmup = timerArg(st, false);
      return true;
    case "alpha":
      into.alpha = boolArg(st);
      return true;
    case "virtualhost":
      into.virtualhost = one(st, "a host name");
      return true;
    default:
      return false;
  }
}

function merged(...levels: Inherit[]): Inherit {
  const out: Record<string, unknown> = {};
  for (const l of levels) {
    const r = l as Record<string, unknown>;
    for (const k in r) if (r[k] !== undefined) out[k] = r[k];
  }
  return out as Inherit;
}

function timingFor(type: CheckerType, o: Inherit): CheckTiming {
  const delayLoop = o.delayLoop ?? DEFAULTS.delayLoop;
  const http = type === "HTTP_GET" || type === "SSL_GET";
  const retry =
    type === "MISC_CHECK" ? DEFAULTS.miscRetry : type === "DNS_CHECK" ? DEFAULTS.dnsRetry : DEFAULTS.retry;
  // DNS_CHECK: delay_before_retry defaults to delay_loop (keepalived)
  const dbr = http
    ? DEFAULTS.httpDelayBeforeRetry
    : type === "DNS_CHECK"
      ? delayLoop
      : DEFAULTS.delayBeforeRetry;
  return {
    delayLoop,
    connectTimeout: o.connectTimeout ?? DEFAULTS.connectTimeout,
    retry: o.retry ?? retry,
    delayBeforeRetry: o.delayBeforeRetry ?? dbr,
    warmup: o.warmup ?? delayLoop,
    alpha: o.alpha ?? false,
  };
}

// ---- checkers ----

interface RsContext {
  addr: number;
  port: number;
  inherit: Inherit;
  label: string;
  weight: number;
}

function parseUrl(ctx: Ctx, st: Statement): UrlCheck {
  let path: string | undefined;
  const url: Omit<UrlCheck, "path" | "status"> & { status?: [number, number][] } = {};
  for (const s of needBlock(st)) {
    noBlock(s);
    switch (s.keyword) {
      case "path":
        path = one(s, "a path (like /health)");
        break;
      case "digest": {
        const d = one(s, "an MD5 digest (32 hex digits)").toLowerCase();
        if (!/^[0-9a-f]{32}$/.test(d))
          fail(s.where, `digest: expected an MD5 digest (32 hex digits), got '${d}'`);
        url.digest = d;
        break;
      }
      case "status_code":
        url.status = statusArg(s);
        break;
      case "virtualhost":
        url.virtualhost = one(s, "a host name");
        break;
      default:
        if (IGNORED.url?.has(s.keyword)) ctx.warn(s.where, `${s.keyword} is not supported by lvsd (ignored)`);
        else ctx.warn(s.where, `unknown keyword '${s.keyword}' in url (ignored)`);
    }
  }
  if (path === undefined) fail(st.where, "url: expected a path (like path /health) in the block");
  return { ...url, path, status: url.status ?? [[200, 299]] };
}

function parseChecker(ctx: Ctx, st: Statement, type: CheckerType, rs: RsContext): CheckerConfig {
  const own: Inherit = {};
  let connectIp: number | undefined;
  let connectPort: number | undefined;
  let bindto: number | undefined;
  let bindPort: number | undefined;
  const urls: UrlCheck[] = [];
  let protocol: "1.0" | "1.0C" | "1.1" = "1.0";
  let payload: Uint8Array = new Uint8Array(0);
  let requireReply = false;
  let reply: { bytes: Uint8Array; mask: Uint8Array } | undefined;
  let minReply = 0;
  let maxReply: number = DEFAULTS.maxReplyLength;
  let miscPath: string[] | undefined;
  let miscTimeout: number | undefined;
  let miscDynamic = false;
  let heloName: string = DEFAULTS.smtpHelo;
  let qtype: number = DEFAULTS.dnsType;
  let qname: string | undefined;
  let trackFile: TrackFileSpec | undefined;
  let fileWeight: { weight: number; reverse: boolean } | undefined;
  const isMisc = type === "MISC_CHECK";
  const isHttp = type === "HTTP_GET" || type === "SSL_GET";
  const isFile = type === "FILE_CHECK";

  for (const s of st.block ?? []) {
    if (s.keyword !== "url" && s.keyword !== "host") noBlock(s);
    if (isFile && s.keyword !== "track_file" && s.keyword !== "weight") {
      ctx.warn(s.where, `unknown keyword '${s.keyword}' in FILE_CHECK (ignored)`);
      continue;
    }
    if (inheritable(s, own)) continue;
    const conn = !isMisc;
    switch (s.keyword) {
      case "nb_get_retry":
        // keepalived 2.x: a deprecated synonym of retry in HTTP_GET/SSL_GET only
        if (!isHttp) {
          ctx.warn(
            s.where,
            `unknown keyword 'nb_get_retry' in ${type} (ignored, as keepalived 2.x does: only HTTP_GET and SSL_GET take it; use retry)`,
          );
          continue;
        }
        ctx.warn(s.where, "nb_get_retry is deprecated: use retry");
        own.retry = intArg(s, 0, 1_000_000);
        continue;
      case "helo_name":
        if (type !== "SMTP_CHECK") break;
        if (s.args.length === 0) {
          ctx.warn(s.where, "SMTP_CHECK helo_name: missing name (ignored)");
          continue;
        }
        heloName = s.args.map((a) => a.text).join(" ");
        continue;
      case "host":
        if (type !== "SMTP_CHECK") break;
        ctx.warn(
          s.where,
          "SMTP_CHECK host blocks are not supported by lvsd (block ignored; keepalived deprecates them: write one SMTP_CHECK per host)",
        );
        continue;
      case "type": {
        if (type !== "DNS_CHECK") break;
        const t =
          DNS_TYPES[one(s, "a DNS type (A, NS, CNAME, SOA, MX, TXT, AAAA, RRSIG, DNSKEY)").toUpperCase()];
        if (t === undefined) ctx.warn(s.where, `unknown DNS_CHECK type '${s.args[0]?.text}' (ignored)`);
        else qtype = t;
        continue;
      }
      case "name": {
        if (type !== "DNS_CHECK") break;
        const n = one(s, "a domain name");
        if (qname !== undefined) ctx.warn(s.where, "DNS_CHECK name already given (ignored)");
        else if ((n.startsWith(".") && n !== ".") || n.includes(".."))
          ctx.warn(s.where, `DNS_CHECK name '${n}' has an empty label (ignored)`);
        else qname = n;
        continue;
      }
      case "track_file": {
        const name = one(s, "a track_file name");
        trackFile = ctx.trackFiles.get(name);
        if (!trackFile) ctx.warn(s.where, `FILE_CHECK: track_file ${name} not found (ignored)`);
        continue;
      }
      case "weight":
        if (!isFile) break;
        fileWeight = trackWeight(ctx, s, "FILE_CHECK", -KEEPALIVED_MAX_WEIGHT, KEEPALIVED_MAX_WEIGHT, true);
        continue;
      case "connect_ip":
        if (!conn) break;
        connectIp = ip(s, one(s, "an IPv4 address"));
        continue;
      case "connect_port":
        if (!conn) break;
        connectPort = port(s, one(s, "a port"));
        continue;
      case "bindto":
        if (!conn) break;
        bindto = ip(s, one(s, "an IPv4 address"));
        continue;
      case "bind_port":
        if (!conn) break;
        bindPort = port(s, one(s, "a port"));
        continue;
      case "log_all_failures":
        own.logAllFailures = boolArg(s);
        continue;
      case "url":
        if (!isHttp) break;
        urls.push(parseUrl(ctx, s));
        continue;
      case "http_protocol": {
        if (!isHttp) break;
        const v = one(s, "1.0, 1.0C or 1.1");
        if (v !== "1.0" && v !== "1.0C" && v !== "1.1")
          fail(s.where, `http_protocol: expected 1.0, 1.0C or 1.1, got '${v}'`);
        protocol = v;
        continue;
      }
      case "fast_recovery":
        if (!isHttp) break;
        boolArg(s); // every probe checks every url already
        continue;
      case "payload":
        if (type !== "UDP_CHECK") break;
        if (s.args.length === 0) fail(s.where, "payload: expected hex digits");
        payload = hexArg(s, s.args, false).bytes;
        continue;
      case "require_reply":
        if (type !== "UDP_CHECK") break;
        requireReply = true;
        if (s.args.length > 0) reply = hexArg(s, s.args, true);
        continue;
      case "min_reply_length":
        if (type !== "UDP_CHECK") break;
        minReply = intArg(s, 0, 65507);
        continue;
      case "max_reply_length":
        if (type !== "UDP_CHECK") break;
        maxReply = intArg(s, 0, 65507);
        continue;
      case "misc_path":
        if (!isMisc) break;
        miscPath = commandArg(ctx, s);
        continue;
      case "misc_timeout":
        if (!isMisc) break;
        miscTimeout = timerArg(s, true);
        continue;
      case "misc_dynamic":
        if (!isMisc) break;
        miscDynamic = boolArg(s);
        continue;
    }
    if (IGNORED.checker?.has(s.keyword)) ctx.warn(s.where, `${s.keyword} is not supported by lvsd (ignored)`);
    else ctx.warn(s.where, `unknown keyword '${s.keyword}' in ${type} (ignored)`);
  }

  const inh = merged(rs.inherit, own);
  const timing = timingFor(type, inh);
  const where = st.where;
  if (isFile) {
    // keepalived watches the file with inotify; lvsd reads it every second.
    const fileTiming: CheckTiming = { ...timing, delayLoop: 1, retry: 0, warmup: 0, alpha: true };
    if (!trackFile?.path) {
      return unrunnable(where, "FILE_CHECK", "FILE_CHECK has no usable track_file", timing);
    }
    const w = fileWeight ?? { weight: trackFile.weight, reverse: trackFile.reverse };
    return {
      type: "FILE_CHECK",
      where,
      timing: fileTiming,
      trackFile: trackFile.name,
      path: trackFile.path,
      weight: w.weight,
      reverse: w.reverse,
      baseWeight: rs.weight,
      ...(trackFile.init ? { init: trackFile.init } : {}),
    };
  }
  const target: ProbeTarget = {
    addr: connectIp ?? rs.addr,
    port: connectPort ?? rs.port,
    ...(bindto !== undefined ? { bindto } : {}),
    ...(bindPort !== undefined ? { bindPort } : {}),
  };
  const extra = inh.logAllFailures ? { logAllFailures: true } : {};
  switch (type) {
    case "TCP_CHECK":
      return { type, where, timing, target, ...extra };
    case "SMTP_CHECK":
      return { type, where, timing, target, heloName, ...extra };
    case "DNS_CHECK":
      return { type, where, timing, target, qtype, name: qname ?? "", ...extra };
    case "PING_CHECK":
      return { type, where, timing, target, ...extra };
    case "HTTP_GET":
    case "SSL_GET": {
      if (urls.length === 0) fail(where, `${type}: expected at least one url { path ... } block`);
      const vhost = inh.virtualhost;
      const withHost = urls.map((u) =>
        u.virtualhost === undefined && vhost !== undefined ? { ...u, virtualhost: vhost } : u,
      );
      return { type, where, timing, target, urls: withHost, protocol, ...extra };
    }
    case "UDP_CHECK":
      if (minReply > maxReply)
        fail(where, `UDP_CHECK: min_reply_length ${minReply} is above max_reply_length ${maxReply}`);
      return {
        type,
        where,
        timing,
        target,
        payload,
        requireReply,
        ...(reply ? { reply } : {}),
        minReplyLength: minReply,
        maxReplyLength: maxReply,
        ...extra,
      };
    case "MISC_CHECK":
      if (!miscPath) fail(where, "MISC_CHECK: expected misc_path with the script to run");
      return {
        type,
        where,
        timing,
        argv: miscPath,
        timeout: miscTimeout ?? timing.delayLoop,
        dynamic: miscDynamic,
        ...extra,
      };
  }
}

/** A checker that holds its real server down (see UnrunnableCheckConfig). */
function unrunnable(where: Where, keyword: string, why: string, timing: CheckTiming): CheckerConfig {
  return { type: "UNRUNNABLE", where, keyword, why, timing: { ...timing, warmup: 0, alpha: true } };
}

/** `weight W [reverse|noreverse]` of FILE_CHECK / track_file; undefined (warned) when invalid. */
function trackWeight(
  ctx: Ctx,
  s: Statement,
  what: string,
  min: number,
  max: number,
  noreverse: boolean,
): { weight: number; reverse: boolean } | undefined {
  const w = s.args[0]?.text ?? "";
  const v = /^-?[0-9]+$/.test(w) ? Number(w) : Number.NaN;
  if (!Number.isInteger(v) || v < min || v > max) {
    ctx.warn(s.where, `${what} weight must be an integer ${min}..${max}, got '${w}' (ignored)`);
    return undefined;
  }
  const opt = s.args[1]?.text;
  if (opt === undefined || (opt === "noreverse" && noreverse)) return { weight: v, reverse: false };
  if (opt === "reverse") return { weight: v, reverse: true };
  ctx.warn(s.where, `${what} weight: unknown option '${opt}' (ignored)`);
  return noreverse ? undefined : { weight: v, reverse: false };
}

/** A top-level track_file block (keepalived: weight -254..254, default 1). */
function parseTrackFile(ctx: Ctx, st: Statement): TrackFileSpec {
  const name = one(st, "a track_file name");
  const tf: TrackFileSpec = { where: st.where, name, weight: 1, reverse: false };
  for (const s of needBlock(st)) {
    noBlock(s);
    switch (s.keyword) {
      case "file":
        if (tf.path !== undefined) ctx.warn(s.where, `track_file ${name}: file already given (ignored)`);
        else tf.path = one(s, "a file name");
        break;
      case "weight": {
        const w = trackWeight(ctx, s, `track_file ${name}`, -254, 254, false);
        tf.weight = w?.weight ?? 1;
        tf.reverse = w?.reverse ?? false;
        break;
      }
      case "init_file": {
        let value = 0;
        let overwrite = false;
        for (const a of s.args) {
          if (/^-?[0-9]+$/.test(a.text)) value = Number(a.text);
          else if (a.text === "overwrite") overwrite = true;
          else ctx.warn(s.where, `track_file ${name}: unknown init_file option '${a.text}' (ignored)`);
        }
        tf.init = { value, overwrite };
        break;
      }
      default:
        ctx.warn(s.where, `unknown keyword '${s.keyword}' in track_file (ignored)`);
    }
  }
  if (tf.path === undefined) ctx.warn(st.where, `track_file ${name} has no file (ignored)`);
  return tf;
}

/**
 * weight: keepalived takes 0..2^31-1 and, outside that, warns and keeps the default (1). The
 * service table holds 0..65535 (ipvsadm's range): a larger weight is lowered to 65535, warned.
 */
function weightArg(ctx: Ctx, s: Statement): number | undefined {
  const text = s.args[0]?.text ?? "";
  const v = /^[0-9]+$/.test(text) && s.args.length === 1 ? Number(text) : Number.NaN;
  if (!Number.isInteger(v) || v > KEEPALIVED_MAX_WEIGHT) {
    ctx.warn(
      s.where,
      `weight '${text}' is outside 0..${KEEPALIVED_MAX_WEIGHT} (ignored, weight stays ${DEFAULTS.weight})`,
    );
    return undefined;
  }
  if (v > MAX_WEIGHT) {
    ctx.warn(s.where, `weight ${v} is above ${MAX_WEIGHT}, the largest lvs-ts holds: using ${MAX_WEIGHT}`);
    return MAX_WEIGHT;
  }
  return v;
}

// ---- real servers ----

function parseRealServer(ctx: Ctx, st: Statement, vs: VsContext): RealServerConfig {
  if (st.args.length < 1 || st.args.length > 2)
    fail(st.where, "real_server: expected an IPv4 address and a port");
  const addr = ip(st, st.args[0]?.text ?? "");
  const rport = st.args[1] !== undefined ? port(st, st.args[1].text) : vs.port;
  const own: Inherit = {};
  let weight: number = DEFAULTS.weight;
  let uThreshold = 0;
  let lThreshold = 0;
  let notifyUp: string[] | undefined;
  let notifyDown: string[] | undefined;
  let fwd = vs.fwd;
  const checkerStmts: Statement[] = [];
  for (const s of needBlock(st)) {
    if (s.block && !isCheckerKeyword(s.keyword)) {
      if (REAL_SERVER_KEYWORDS.has(s.keyword)) fail(s.where, `${s.keyword} does not take a block`);
      // a misspelled checker (TCP_CHEK { ... }): keepalived reports it and runs no check; lvsd
      // holds the real server down rather than send traffic to a server nothing checks
      checkerStmts.push(s);
      continue;
    }
    if (inheritable(s, own)) continue;
    switch (s.keyword) {
      case "weight":
        weight = weightArg(ctx, s) ?? weight;
        break;
      case "uthreshold":
        uThreshold = intArg(s, 0, MAX_THRESHOLD);
        break;
      case "lthreshold":
        lThreshold = intArg(s, 0, MAX_THRESHOLD);
        break;
      case "inhibit_on_failure":
        own.inhibit = boolArg(s);
        break;
      case "notify_up":
        notifyUp = commandArg(ctx, s);
        break;
      case "notify_down":
        notifyDown = commandArg(ctx, s);
        break;
      case "lvs_method":
        fwd = methodArg(s);
        break;
      default:
        if (isCheckerKeyword(s.keyword)) {
          if (!s.block) fail(s.where, `${s.keyword}: expected '{' to open its block`);
          checkerStmts.push(s);
        } else if (IGNORED.real_server?.has(s.keyword)) {
          ctx.warn(s.where, `${s.keyword} is not supported by lvsd (ignored)`);
        } else {
          ctx.warn(s.where, `unknown keyword '${s.keyword}' in real_server (ignored)`);
        }
    }
  }
  if (lThreshold > uThreshold)
    fail(st.where, `real_server: lthreshold ${lThreshold} is above uthreshold ${uThreshold}`);
  const inherit = merged(vs.inherit, own);
  const label = `${u32ToIp(addr)}:${rport}`;
  const rs: RsContext = { addr, port: rport, inherit, label, weight };
  const checkers: CheckerConfig[] = [];
  for (const s of checkerStmts) {
    if (!isCheckerKeyword(s.keyword) || OTHER_CHECKERS.has(s.keyword)) {
      const known = OTHER_CHECKERS.has(s.keyword);
      const why = known ? `${s.keyword} is not supported by lvsd` : `unknown checker '${s.keyword}'`;
      ctx.warn(
        s.where,
        `${known ? why : `unknown keyword '${s.keyword}' in real_server`} (block ignored): real_server ${label} is held down, as no check can show it is up`,
      );
      checkers.push(unrunnable(s.where, s.keyword, why, timingFor("TCP_CHECK", inherit)));
      continue;
    }
    const c = parseChecker(ctx, s, s.keyword as CheckerType, rs);
    if (c.type === "UNRUNNABLE")
      ctx.warn(s.where, `${c.why}: real_server ${label} is held down, as no check can show it is up`);
    checkers.push(c);
  }
  return {
    where: st.where,
    addr,
    port: rport,
    fwd,
    weight,
    uThreshold,
    lThreshold,
    inhibit: inherit.inhibit ?? false,
    ...(notifyUp ? { notifyUp } : {}),
    ...(notifyDown ? { notifyDown } : {}),
    checkers,
  };
}

const CHECKER_KEYWORDS: ReadonlySet<string> = new Set<string>(CHECKER_TYPES);

function isCheckerKeyword(k: string): boolean {
  return CHECKER_KEYWORDS.has(k) || OTHER_CHECKERS.has(k);
}

/** real_server's own keywords (none takes a block). */
const REAL_SERVER_KEYWORDS = new Set([
  "weight",
  "uthreshold",
  "lthreshold",
  "inhibit_on_failure",
  "notify_up",
  "notify_down",
  "lvs_method",
  "delay_loop",
  "connect_timeout",
  "retry",
  "delay_before_retry",
  "warmup",
  "alpha",
  "virtualhost",
]);

// ---- virtual servers ----

interface VsContext {
  port: number;
  inherit: Inherit;
  fwd: FwdMethod;
}

interface GroupEntry {
  addr: number;
  port: number;
  /** A `fwmark N` entry (addr and port 0). */
  fwmark?: number;
  where: Where;
}

/**
 * `virtual_server_group NAME { IP [PORT]; IP-RANGE [PORT]; IP/PREFIX [PORT]; fwmark N }`: as
 * keepalived, an entry it cannot read is warned and skipped, and a missing port (or 0) is
 * port 0 (a service for every port, which must be persistent).
 */
function parseGroup(ctx: Ctx, st: Statement): { name: string; entries: GroupEntry[] } {
  const name = one(st, "a group name");
  const entries: GroupEntry[] = [];
  for (const s of needBlock(st)) {
    noBlock(s);
    const skip = (why: string): void =>
      ctx.warn(s.where, `virtual_server_group ${name}: ${why} (entry skipped)`);
    if (s.keyword === "fwmark") {
      const t = s.args[0]?.text ?? "";
      const mark = /^[0-9]+$/.test(t) ? Number(t) : Number.NaN;
      if (!Number.isInteger(mark) || mark < 1 || mark > 0xffffffff) {
        skip(`fwmark '${t}' must be in 1..4294967295`);
        continue;
      }
      const fam = s.args[1]?.text;
      if (fam === "inet6") {
        skip(`fwmark ${mark} inet6: IPv6 is not supported by lvsd`);
        continue;
      }
      if (fam !== undefined && fam !== "inet") {
        skip(`fwmark ${mark}: unknown family '${fam}'`);
        continue;
      }
      entries.push({ addr: 0, port: 0, fwmark: mark, where: s.where });
      continue;
    }
    const words = [s.keyword, ...s.args.map((a) => a.text)];
    if (words.length > 2) {
      skip(`expected an address (or range) and a port, got '${words.join(" ")}'`);
      continue;
    }
    const [spec = "", portText = "0"] = words;
    const p = /^[0-9]+$/.test(portText) ? Number(portText) : Number.NaN;
    if (!Number.isInteger(p) || p > 65535) {
      skip(`invalid port '${portText}'`);
      continue;
    }
    const r = expandRange(spec);
    if (typeof r === "string") {
      skip(r);
      continue;
    }
    for (const addr of r) entries.push({ addr, port: p, where: s.where });
  }
  if (entries.length === 0) ctx.warn(st.where, `virtual_server_group ${name} has no usable entry`);
  return { name, entries };
}

/** 10.0.0.1, 10.0.0.1-10, 10.0.0.250-10.0.1.5 or 10.0.0.8/29; a string says why not. */
function expandRange(spec: string): number[] | string {
  let lo: number;
  let hi: number;
  const cidr = /^([^/]+)\/([0-9]+)$/.exec(spec);
  const dash = /^([0-9.]+)-([0-9.]+)$/.exec(spec);
  const addr = (t: string): number | undefined => {
    if (isIPv6(t)) return undefined;
    try {
      return ipToU32(t);
    } catch {
      return undefined;
    }
  };
  const base = addr(cidr ? (cidr[1] ?? "") : dash ? (dash[1] ?? "") : spec);
  if (base === undefined)
    return isIPv6(spec.split("/")[0] ?? "")
      ? `${spec}: IPv6 is not supported by lvsd`
      : `invalid address '${spec}'`;
  if (cidr) {
    const bits = Number(cidr[2]);
    if (bits < 1 || bits > 32) return `invalid prefix in ${spec}`;
    const size = 2 ** (32 - bits);
    if (base % size !== 0) return `${spec} has host bits set`;
    lo = base;
    hi = lo + size - 1;
  } else if (dash) {
    lo = base;
    const end = dash[2] ?? "";
    if (end.includes(".")) {
      const e = addr(end);
      if (e === undefined) return `invalid range end in ${spec}`;
      hi = e;
      if (hi < lo) return `range ${spec} ends before it starts`;
    } else {
      const last = /^[0-9]+$/.test(end) ? Number(end) : Number.NaN;
      if (!(last <= 255)) return `invalid range end in ${spec}`;
      if ((lo & 0xff) >= last) return `range ${spec} does not end after it starts`;
      hi = ((lo & 0xffffff00) >>> 0) + last;
    }
  } else {
    lo = hi = base;
  }
  if (hi - lo + 1 > MAX_GROUP_RANGE) {
    return `range ${spec} has ${hi - lo + 1} addresses (lvsd takes at most ${MAX_GROUP_RANGE})`;
  }
  const out: number[] = [];
  for (let a = lo; a <= hi; a++) out.push(a >>> 0);
  return out;
}

function protoName(p: number): string {
  return p === IPPROTO_UDP ? "UDP" : "TCP";
}

/** A service's identity for duplicate checks: fwmark services by their mark. */
function keyId(k: ServiceKey): number {
  return k.fwmark ? -k.fwmark : serviceKey(k.proto, k.addr, k.port);
}

function keyName(k: ServiceKey): string {
  return k.fwmark ? `fwmark ${k.fwmark}` : `${protoName(k.proto)} ${u32ToIp(k.addr)}:${k.port}`;
}

/** virtual_server's own keywords that take no block. */
const VS_KEYWORDS = new Set([
  "lvs_sched",
  "lb_algo",
  "lvs_method",
  "lb_kind",
  "sorry_server_lvs_method",
  "persistence_timeout",
  "persistence_granularity",
  "persistence_engine",
  "protocol",
  "ops",
  "syn_proxy",
  "quorum",
  "hysteresis",
  "quorum_up",
  "quorum_down",
  "sorry_server",
  "sorry_server_inhibit",
  "omega",
  "inhibit_on_failure",
  "delay_loop",
  "connect_timeout",
  "retry",
  "delay_before_retry",
  "warmup",
  "alpha",
  "virtualhost",
]);

function parseVirtualServer(
  ctx: Ctx,
  st: Statement,
  groups: ReadonlyMap<string, { entries: GroupEntry[] }>,
): VirtualServerConfig {
  const a = st.args.map((t) => t.text);
  let addrs: { addr: number; port: number; fwmark?: number }[];
  let groupName: string | undefined;
  let mark: number | undefined;
  if (a[0] === "fwmark") {
    const t = a[1] ?? "";
    mark = /^[0-9]+$/.test(t) ? Number(t) : Number.NaN;
    if (a.length !== 2 || !Number.isInteger(mark) || mark < 1 || mark > 0xffffffff)
      fail(st.where, `virtual_server fwmark: expected a mark 1..4294967295, got '${a.slice(1).join(" ")}'`);
    addrs = [{ addr: 0, port: 0, fwmark: mark }];
  } else if (a[0] === "group") {
    if (a.length !== 2) fail(st.where, "virtual_server group: expected a group name");
    groupName = a[1] ?? "";
    const g = groups.get(groupName);
    if (!g)
      fail(
        st.where,
        `virtual_server group ${groupName}: no virtual_server_group ${groupName} is defined before it`,
      );
    addrs = g.entries.map((e) => ({ addr: e.addr, port: e.port, ...(e.fwmark ? { fwmark: e.fwmark } : {}) }));
  } else {
    if (a.length < 1 || a.length > 2) {
      fail(st.where, "virtual_server: expected an IPv4 address and a port, 'fwmark N' or 'group NAME'");
    }
    addrs = [
      {
        addr: ip(st, a[0] ?? "", "an IPv4 address, 'fwmark' or 'group'"),
        port: a[1] !== undefined ? port(st, a[1]) : 0,
      },
    ];
  }
  const inherit: Inherit = {};
  let sched = "wlc";
  let schedWhere: Statement | undefined;
  let proto: number | undefined;
  let flags = 0;
  let timeout = 0;
  let netmask = 0xffffffff;
  const schedFlags: string[] = [];
  let quorum: number = DEFAULTS.quorum;
  let hysteresis: number = DEFAULTS.hysteresis;
  let quorumUp: string[] | undefined;
  let quorumDown: string[] | undefined;
  let sorry: SorryServerConfig | undefined;
  let sorryInhibit = false;
  let omega = false;
  let opsWhere: Statement | undefined;
  let synProxyWhere: Statement | undefined;
  let fwd: FwdMethod = FwdMethod.MASQ; // keepalived's default method is NAT
  let sorryFwd: FwdMethod | undefined;
  const rsStmts: Statement[] = [];

  for (const s of needBlock(st)) {
    if (isCheckerKeyword(s.keyword)) fail(s.where, `${s.keyword} belongs in a real_server block`);
    if (s.block && s.keyword !== "real_server" && !VS_KEYWORDS.has(s.keyword)) {
      // keepalived: "Unknown keyword", and it reads on; lvsd skips the whole block
      ctx.warn(s.where, `unknown keyword '${s.keyword}' in virtual_server (block ignored)`);
      continue;
    }
    if (s.keyword !== "real_server") noBlock(s);
    if (inheritable(s, inherit)) continue;
    switch (s.keyword) {
      case "lvs_sched":
      case "lb_algo": {
        const name = one(s, "a scheduler name");
        if (!getScheduler(name)) {
          // keepalived: "Invalid lvs_scheduler - ignoring" (its default, wlc, stays)
          ctx.warn(
            s.where,
            `${s.keyword} ${name}: no such scheduler (ignored, ${sched} stays; available: ${schedulerNames().join(", ")})`,
          );
          break;
        }
        sched = name;
        schedWhere = s;
        break;
      }
      case "lvs_method":
      case "lb_kind":
        fwd = methodArg(s);
        break;
      case "sorry_server_lvs_method":
        sorryFwd = methodArg(s);
        break;
      case "persistence_timeout":
        flags |= SVC_F_PERSISTENT;
        timeout = s.args.length === 0 ? DEFAULT_PERSIST_TIMEOUT : intArg(s, 1, MAX_PERSIST_TIMEOUT);
        break;
      case "persistence_granularity":
        netmask = ip(s, one(s, "a netmask (like 255.255.255.0)"), "a netmask (like 255.255.255.0)");
        break;
      case "persistence_engine":
        fail(s.where, "persistence_engine: persistence engines are not supported by lvsd");
        break;
      case "protocol": {
        const p = one(s, "TCP or UDP").toUpperCase();
        if (p === "TCP") proto = IPPROTO_TCP;
        else if (p === "UDP") proto = IPPROTO_UDP;
        else if (p === "SCTP") fail(s.where, "protocol SCTP is not supported by lvsd (TCP or UDP)");
        else ctx.warn(s.where, `protocol: unknown protocol '${p}' (ignored)`);
        break;
      }
      case "ops":
        flags |= SVC_F_ONEPACKET;
        opsWhere = s;
        break;
      case "syn_proxy":
        // DPVS's keepalived keyword (lvs-ts: src/datapath/synproxy.ts)
        if (s.args.length > 0) fail(s.where, "syn_proxy takes no argument");
        synProxyWhere = s;
        break;
      case "quorum":
        quorum = intArg(s, 0, 2 ** 31 - 1);
        break;
      case "hysteresis":
        hysteresis = intArg(s, 0, 2 ** 31 - 1);
        break;
      case "quorum_up":
        quorumUp = commandArg(ctx, s);
        break;
      case "quorum_down":
        quorumDown = commandArg(ctx, s);
        break;
      case "sorry_server": {
        if (s.args.length < 1 || s.args.length > 2)
          fail(s.where, "sorry_server: expected an IPv4 address and a port");
        const saddr = ip(s, s.args[0]?.text ?? "");
        const sport = s.args[1] !== undefined ? port(s, s.args[1].text) : (addrs[0]?.port ?? 0);
        sorry = { addr: saddr, port: sport, fwd: FwdMethod.MASQ, weight: 1, inhibit: false };
        break;
      }
      case "sorry_server_inhibit":
        sorryInhibit = boolArg(s);
        break;
      case "omega":
        omega = boolArg(s);
        break;
      case "inhibit_on_failure":
        inherit.inhibit = boolArg(s);
        break;
      case "real_server":
        rsStmts.push(s);
        break;
      default:
        // Scheduler flags are keywords of their own (flag-1..3, sh-port, mh-fallback, ...).
        if (allSchedulerFlags().includes(s.keyword)) schedFlags.push(s.keyword);
        else if (IGNORED.virtual_server?.has(s.keyword))
          ctx.warn(s.where, `${s.keyword} is not supported by lvsd (ignored)`);
        else ctx.warn(s.where, `unknown keyword '${s.keyword}' in virtual_server (ignored)`);
    }
  }

  if (mark !== undefined && proto !== undefined)
    ctx.warn(
      st.where,
      `virtual_server fwmark ${mark}: protocol specified for fwmark (ignored, as keepalived)`,
    );
  if (proto === undefined) {
    // keepalived 2.2: a virtual server without protocol is UDP (with a configuration error);
    // for a fwmark service it says nothing
    if (mark === undefined)
      ctx.warn(st.where, `virtual_server ${a.join(" ")}: no protocol set, defaulting to UDP (as keepalived)`);
    proto = IPPROTO_UDP;
  }
  if (schedFlags.length > 0) {
    const r = parseSchedFlagsIpvsadm(sched, schedFlags.join(","));
    if (typeof r === "string") fail((schedWhere ?? st).where, `${r} for scheduler ${sched}`);
    flags |= r;
  }
  if (opsWhere && proto !== IPPROTO_UDP)
    fail(opsWhere.where, "ops: one-packet scheduling is only for UDP virtual servers");
  const first = addrs[0] ?? { addr: 0, port: 0 };
  if (addrs.some((x) => x.port === 0 && !x.fwmark) && (flags & SVC_F_PERSISTENT) === 0) {
    fail(
      st.where,
      "virtual_server: a service without a port (port 0) must be persistent (persistence_timeout)",
    );
  }
  if (sorry) {
    sorry.inhibit = sorryInhibit;
    sorry.fwd = sorryFwd ?? fwd;
  }
  const name =
    groupName !== undefined
      ? `group ${groupName} (${protoName(proto)})`
      : mark !== undefined
        ? `FWM ${mark}`
        : `${protoName(proto)} ${u32ToIp(first.addr)}:${first.port}`;
  const vsCtx: VsContext = { port: first.port, inherit, fwd };
  const realServers: RealServerConfig[] = [];
  const seen = new Map<string, Where>();
  for (const s of rsStmts) {
    const rs = parseRealServer(ctx, s, vsCtx);
    const key = `${rs.addr}:${rs.port}`;
    const prev = seen.get(key);
    if (prev) {
      fail(
        s.where,
        `real_server ${u32ToIp(rs.addr)}:${rs.port} is given twice in virtual_server ${name} (first at line ${prev.line})`,
      );
    }
    seen.set(key, s.where);
    realServers.push(rs);
  }
  if (synProxyWhere) {
    if (proto !== IPPROTO_TCP && mark === undefined)
      fail(synProxyWhere.where, "syn_proxy: the SYN proxy is only for TCP virtual servers");
    const bad = realServers.find((rs) => rs.fwd !== FwdMethod.MASQ && rs.fwd !== FwdMethod.FULLNAT);
    if (bad)
      fail(
        synProxyWhere.where,
        `syn_proxy: real server ${u32ToIp(bad.addr)}:${bad.port} is not NAT (lb_kind NAT): the director must see the real servers' replies`,
      );
  }
  const p = proto;
  const keys: ServiceKey[] = addrs.map((x) => ({
    proto: p,
    addr: x.addr,
    port: x.port,
    ...(x.fwmark ? { fwmark: x.fwmark } : {}),
  }));
  return {
    where: st.where,
    name,
    keys,
    opts: { sched, flags, timeout, netmask, synProxy: synProxyWhere !== undefined },
    quorum,
    hysteresis,
    ...(quorumUp ? { quorumUp } : {}),
    ...(quorumDown ? { quorumDown } : {}),
    ...(sorry ? { sorry } : {}),
    omega,
    realServers,
  };
}

// ---- vrrp_instance ----

/** vrrp_instance keywords keepalived has that lvsd does not implement yet (warned, ignored). */
const VRRP_NOT_YET = new Set([
  "track_process",
  "track_file",
  "track_bfd",
  "notify_deleted",
  "notify_master_rx_lower_pri",
  "smtp_alert",
  "use_vmac",
  "vmac_xmit_base",
  "native_ipv6",
  "dont_track_primary",
  "lvs_sync_daemon_interface",
  "strict_mode",
  "accept",
  "no_accept",
  "skip_check_adv_addr",
  "lower_prio_no_advert",
  "higher_prio_send_advert",
  "virtual_routes",
  "virtual_rules",
  "unicast_chksum_compat",
  "mcast_src_ip",
  "kernel_rx_buf_size",
  "debug",
]);

/** virtual_ipaddress words after the address that only matter to the kernel's address (ignored). */
const VIP_OPTIONS = new Set(["dev", "label", "brd", "broadcast", "scope", "no_track", "preferred_lft"]);

/** An address of virtual_ipaddress: ADDR[/PREFIX] [dev X] [label X] ... */
function vipEntry(ctx: Ctx, st: Statement): number {
  noBlock(st);
  const [addr, prefix] = st.keyword.split("/") as [string, string | undefined];
  if (prefix !== undefined) int(st, prefix, 0, 32);
  const a = ip({ ...st, keyword: "virtual_ipaddress" }, addr);
  const words = st.args.map((t) => t.text);
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (VIP_OPTIONS.has(w)) {
      if (w !== "no_track") i++;
    } else {
      ctx.warn(st.where, `virtual_ipaddress ${st.keyword}: '${w}' is not supported by lvsd (ignored)`);
      break;
    }
  }
  return a;
}

function vrrpVersion(st: Statement): 2 | 3 {
  const v = one(st, "2 or 3");
  if (v !== "2" && v !== "3") fail(st.where, `${st.keyword}: expected 2 or 3, got '${v}'`);
  return v === "2" ? 2 : 3;
}

/** A track_script entry before the vrrp_script blocks are known (they may come later in the file). */
interface PendingTrackScript {
  spec: VrrpInstanceSpec;
  name: string;
  weight: number | undefined;
  reverse: boolean;
  where: Where;
}

/** `NAME [weight W [reverse]]` in track_script / track_interface. */
function trackEntry(
  ctx: Ctx,
  s: Statement,
  what: string,
): { name: string; weight: number | undefined; reverse: boolean } {
  noBlock(s);
  const words = s.args.map((a) => a.text);
  let weight: number | undefined;
  let reverse = false;
  if (words.length > 0) {
    if (words[0] !== "weight" || words.length < 2)
      fail(s.where, `${what} ${s.keyword}: expected 'weight N [reverse]', got '${words.join(" ")}'`);
    const w = words[1]!;
    const v = /^-?[0-9]+$/.test(w) ? Number(w) : Number.NaN;
    if (!Number.isInteger(v) || v < -253 || v > 253)
      fail(s.where, `${what} ${s.keyword}: weight must be an integer -253..253, got '${w}'`);
    weight = v;
    if (words.length > 2) {
      if (words[2] === "reverse" && words.length === 3) reverse = true;
      else
        ctx.warn(
          s.where,
          `${what} ${s.keyword}: unknown weight option '${words.slice(2).join(" ")}' (ignored)`,
        );
    }
  }
  return { name: s.keyword, weight, reverse };
}

/** `vrrp_script NAME { script ...; interval; timeout; weight; rise; fall; user; init_fail }`. */
function parseVrrpScript(ctx: Ctx, st: Statement): VrrpScriptSpec {
  const name = one(st, "a script name");
  let argv: string[] | undefined;
  let interval = 1;
  let timeout: number | undefined;
  let weight = 0;
  let reverse = false;
  let rise = 1;
  let fall = 1;
  let initFail = false;
  for (const s of needBlock(st)) {
    switch (s.keyword) {
      case "script":
        noBlock(s);
        argv = commandArg(ctx, s);
        break;
      case "interval":
        noBlock(s);
        interval = Math.max(1, intArg(s, 0, 86400));
        break;
      case "timeout":
        noBlock(s);
        timeout = Math.max(1, intArg(s, 0, 86400));
        break;
      case "weight": {
        noBlock(s);
        const e = trackEntry(
          ctx,
          { ...s, keyword: name, args: [{ ...s.args[0]!, text: "weight" }, ...s.args] },
          "vrrp_script",
        );
        weight = e.weight ?? 0;
        reverse = e.reverse;
        break;
      }
      case "rise":
        noBlock(s);
        rise = intArg(s, 1, 2147483647);
        break;
      case "fall":
        noBlock(s);
        fall = intArg(s, 1, 2147483647);
        break;
      case "init_fail":
        noBlock(s);
        initFail = true;
        break;
      case "user":
        ctx.warn(
          s.where,
          `vrrp_script ${name}: running scripts as user '${s.args[0]?.text ?? ""}' is not supported by lvsd (it runs as lvsd's user)`,
        );
        break;
      default:
        ctx.warn(s.where, `unknown keyword '${s.keyword}' in vrrp_script (ignored)`);
    }
  }
  if (argv === undefined) fail(st.where, `vrrp_script ${name}: no script`);
  return {
    where: st.where,
    name,
    argv,
    interval,
    timeout: timeout ?? interval,
    weight,
    reverse,
    rise,
    fall,
    initFail,
  };
}

function parseVrrpInstance(
  ctx: Ctx,
  st: Statement,
  globals: VrrpGlobals,
  pending: PendingTrackScript[],
): VrrpInstanceSpec {
  const globalVersion = globals.version;
  const name = one(st, "an instance name");
  const block = needBlock(st);
  let iface: { name: string; where: Where } | undefined;
  let vrid: number | undefined;
  const notify: VrrpNotifySpec = {};
  const trackInterfaces: VrrpTrackInterface[] = [];
  const trackScripts: { name: string; weight: number | undefined; reverse: boolean; where: Where }[] = [];
  const garp: Partial<VrrpGarpSpec> = {};
  const out: Omit<VrrpInstanceSpec, "where" | "name" | "interface" | "interfaceWhere" | "vrid"> = {
    vips: [],
    vipsExcluded: [],
    nopreempt: false,
    unicastPeers: [],
    ...(globalVersion !== undefined ? { version: globalVersion } : {}),
  };
  for (const s of block) {
    switch (s.keyword) {
      case "state": {
        noBlock(s);
        const v = one(s, "MASTER or BACKUP").toUpperCase();
        if (v !== "MASTER" && v !== "BACKUP") fail(s.where, `state: expected MASTER or BACKUP, got '${v}'`);
        out.state = v;
        break;
      }
      case "interface":
        noBlock(s);
        iface = { name: one(s, "an interface name"), where: s.where };
        break;
      case "virtual_router_id":
        noBlock(s);
        vrid = intArg(s, 1, 255);
        break;
      case "priority":
        noBlock(s);
        out.priority = intArg(s, 1, 255);
        break;
      case "advert_int":
        noBlock(s);
        out.advertInt = timerArg(s, true);
        break;
      // keepalived's instance keyword is `version`; `vrrp_version` (global_defs') is accepted too
      case "version":
      case "vrrp_version":
        noBlock(s);
        out.version = vrrpVersion(s);
        break;
      case "nopreempt":
        noBlock(s);
        out.nopreempt = boolArg(s);
        break;
      case "preempt":
        noBlock(s);
        out.nopreempt = !boolArg(s);
        break;
      case "preempt_delay": {
        noBlock(s);
        const d = timerArg(s, false);
        if (d > 1000) fail(s.where, `preempt_delay: expected 0..1000 seconds, got '${d}'`);
        out.preemptDelay = d;
        break;
      }
      case "down_timer_adverts":
        noBlock(s);
        out.downTimerAdverts = intArg(s, 1, 100);
        break;
      case "unicast_src_ip":
        noBlock(s);
        out.unicastSrcIp = ip(s, one(s, "an IPv4 address"));
        break;
      case "unicast_peer":
        for (const p of needBlock(s)) {
          noBlock(p);
          out.unicastPeers.push(ip({ ...p, keyword: "unicast_peer" }, p.keyword));
          if (p.args.length > 0)
            ctx.warn(
              p.where,
              `unicast_peer ${p.keyword}: '${p.args[0]!.text}' is not supported by lvsd (ignored)`,
            );
        }
        break;
      case "virtual_ipaddress":
        for (const a of needBlock(s)) out.vips.push(vipEntry(ctx, a));
        break;
      case "virtual_ipaddress_excluded":
        for (const a of needBlock(s)) out.vipsExcluded.push(vipEntry(ctx, a));
        break;
      case "authentication":
        for (const a of needBlock(s)) {
          noBlock(a);
          if (a.keyword === "auth_type") {
            const t = one(a, "PASS").toUpperCase();
            if (t === "AH") fail(a.where, "auth_type AH is not supported by lvsd (use PASS or none)");
            if (t !== "PASS") fail(a.where, `auth_type: expected PASS, got '${t}'`);
          } else if (a.keyword === "auth_pass") {
            out.authPass = one(a, "a password");
          } else {
            ctx.warn(a.where, `unknown keyword '${a.keyword}' in authentication (ignored)`);
          }
        }
        break;
      case "notify_master":
      case "notify_backup":
      case "notify_fault":
      case "notify_stop":
      case "notify":
        notifyKeyword(ctx, s, notify);
        break;
      case "track_script":
        for (const t of needBlock(s))
          trackScripts.push({ ...trackEntry(ctx, t, "track_script"), where: t.where });
        break;
      case "track_interface":
        for (const t of needBlock(s)) {
          const e = trackEntry(ctx, t, "track_interface");
          trackInterfaces.push({ where: t.where, name: e.name, weight: e.weight ?? 0, reverse: e.reverse });
        }
        break;
      case "garp_master_delay":
      case "garp_master_repeat":
      case "garp_master_refresh":
      case "garp_master_refresh_repeat":
        noBlock(s);
        garpKeyword(ctx, s, s.keyword, garp);
        break;
      default:
        if (VRRP_NOT_YET.has(s.keyword) || s.keyword.startsWith("garp_") || s.keyword.startsWith("notify"))
          ctx.warn(s.where, `${s.keyword} is not implemented by lvsd yet (ignored)`);
        else ctx.warn(s.where, `unknown keyword '${s.keyword}' in vrrp_instance (ignored)`);
    }
  }
  if (iface === undefined) fail(st.where, `vrrp_instance ${name}: no interface`);
  if (vrid === undefined) fail(st.where, `vrrp_instance ${name}: no virtual_router_id`);
  const spec: VrrpInstanceSpec = {
    where: st.where,
    name,
    interface: iface.name,
    interfaceWhere: iface.where,
    vrid,
    ...out,
    notify,
    trackScripts: [],
    trackInterfaces,
  };
  // Only when something was configured: absent means keepalived's defaults (manager.ts).
  if (Object.keys(garp).length > 0 || Object.keys(globals.garp).length > 0)
    spec.garp = { ...GARP_DEFAULTS, ...globals.garp, ...garp };
  for (const t of trackScripts) pending.push({ spec, ...t });
  return spec;
}

/** keepalived 2.2's gratuitous ARP defaults (vrrp.h VRRP_GARP_*; vrrp_garp_interval 0). */
export const GARP_DEFAULTS: Readonly<VrrpGarpSpec> = {
  delay: 5,
  repeat: 5,
  refresh: 0,
  refreshRepeat: 1,
  interval: 0,
};

/** What global_defs gives the VRRP instances. */
interface VrrpGlobals {
  version: 2 | 3 | undefined;
  /** lvs_sync_daemon, when given. */
  lvsSync?: LvsSyncDaemonSpec;
  /** vrrp_garp_master_* and vrrp_garp_interval given in global_defs. */
  garp: Partial<VrrpGarpSpec>;
}

/**
 * garp_master_delay / _repeat / _refresh / _refresh_repeat (`key` without a vrrp_ prefix) and
 * vrrp_garp_interval into `out`. keepalived: whole seconds for delay and refresh, a repeat of 0
 * becomes 1 (with its warning); the interval is seconds with microseconds.
 */
function garpKeyword(ctx: Ctx, s: Statement, key: string, out: Partial<VrrpGarpSpec>): void {
  switch (key) {
    case "garp_master_delay":
      out.delay = intArg(s, 0, 86400);
      break;
    case "garp_master_refresh":
      out.refresh = intArg(s, 0, 86400 * 31);
      break;
    case "garp_master_repeat":
    case "garp_master_refresh_repeat": {
      let n = intArg(s, 0, 1000);
      if (n === 0) {
        ctx.warn(s.where, `${s.keyword} must be greater than 0, setting to 1`);
        n = 1;
      }
      if (key === "garp_master_repeat") out.repeat = n;
      else out.refreshRepeat = n;
      break;
    }
    case "garp_interval":
      out.interval = timerArg(s, false);
      if (out.interval > 1) fail(s.where, `${s.keyword}: expected at most 1 second, got '${out.interval}'`);
      break;
  }
}

/** notify_master / _backup / _fault / _stop and notify, of an instance or a sync group. */
function notifyKeyword(ctx: Ctx, s: Statement, notify: VrrpNotifySpec): void {
  noBlock(s);
  if (s.keyword === "notify") notify.any = commandArg(ctx, s);
  else notify[s.keyword.slice(7) as "master" | "backup" | "fault" | "stop"] = commandArg(ctx, s);
}

/** global_defs: vrrp_version and the vrrp_garp_* defaults matter to lvsd; one warning for the rest. */
function globalVrrp(ctx: Ctx, st: Statement): VrrpGlobals {
  let version: 2 | 3 | undefined;
  const garp: Partial<VrrpGarpSpec> = {};
  let used = 0;
  let minGarp = false;
  let others = 0;
  let lvsSync: LvsSyncDaemonSpec | undefined;
  for (const s of st.block ?? []) {
    if (s.keyword === "vrrp_version") {
      version = vrrpVersion(s);
      used++;
    } else if (
      s.keyword === "vrrp_garp_master_delay" ||
      s.keyword === "vrrp_garp_master_repeat" ||
      s.keyword === "vrrp_garp_master_refresh" ||
      s.keyword === "vrrp_garp_master_refresh_repeat" ||
      s.keyword === "vrrp_garp_interval"
    ) {
      noBlock(s);
      garpKeyword(ctx, s, s.keyword.slice(5), garp);
      used++;
    } else if (s.keyword === "lvs_sync_daemon") {
      noBlock(s);
      lvsSync = parseLvsSyncDaemon(s);
      used++;
    } else if (s.keyword === "vrrp_min_garp") {
      noBlock(s);
      minGarp = boolArg(s);
      used++;
    } else if (s.keyword.startsWith("vrrp_") || s.keyword.startsWith("garp_"))
      ctx.warn(s.where, `global_defs ${s.keyword} is not implemented by lvsd yet (ignored)`);
    else others++;
  }
  // vrrp_min_garp: one gratuitous ARP on becoming MASTER, no second burst, no refresh (keepalived
  // changes only the values still at their defaults).
  if (minGarp) {
    garp.repeat ??= 1;
    garp.delay ??= 0;
    garp.refresh ??= 0;
  }
  if (others > 0)
    ctx.warn(
      st.where,
      used === 0
        ? "global_defs is not supported by lvsd (block ignored)"
        : "global_defs: only vrrp_version, lvs_sync_daemon and the vrrp_garp_* keywords are used by lvsd (the rest of the block is ignored)",
    );
  return { version, garp, ...(lvsSync ? { lvsSync } : {}) };
}

/**
 * `lvs_sync_daemon IFACE VRRP_INSTANCE [id N] [maxlen N] [port N] [ttl N] [group ADDR]`
 * (keepalived's ranges). The instance is checked once every vrrp_instance is read.
 */
function parseLvsSyncDaemon(st: Statement): LvsSyncDaemonSpec {
  const a = st.args.map((t) => t.text);
  if (a.length < 2)
    fail(
      st.where,
      `${st.keyword}: expected INTERFACE VRRP_INSTANCE [id N] [maxlen N] [port N] [ttl N] [group ADDR]`,
    );
  const spec: LvsSyncDaemonSpec = { where: st.where, interface: a[0]!, instance: a[1]! };
  for (let i = 2; i < a.length; i += 2) {
    const k = a[i]!;
    const v = a[i + 1];
    if (v === undefined) fail(st.where, `${st.keyword}: ${k} needs a value`);
    switch (k) {
      case "id":
        spec.syncid = int(st, v, 0, 255);
        break;
      case "maxlen":
        spec.maxlen = int(st, v, 1, 65507);
        break;
      case "port":
        spec.port = int(st, v, 1, 65535);
        break;
      case "ttl":
        spec.ttl = int(st, v, 1, 255);
        break;
      case "group": {
        const g = ip(st, v, "a multicast group address");
        if (g >>> 28 !== 0xe) fail(st.where, `${st.keyword}: group ${v} is not a multicast address`);
        spec.group = g;
        break;
      }
      default:
        fail(st.where, `${st.keyword}: unknown option '${k}' (id, maxlen, port, ttl, group)`);
    }
  }
  return spec;
}

/** `vrrp_sync_group NAME { group { VI_1 VI_2 ... } notify_* ...; sync_group_tracking_weight }`. */
function parseVrrpSyncGroup(ctx: Ctx, st: Statement): VrrpSyncGroupSpec {
  const name = one(st, "a group name");
  const members: string[] = [];
  const notify: VrrpNotifySpec = {};
  let trackingWeight = false;
  for (const s of needBlock(st)) {
    switch (s.keyword) {
      case "group":
        for (const m of needBlock(s)) {
          noBlock(m);
          for (const w of [m.keyword, ...m.args.map((a) => a.text)]) members.push(w);
        }
        break;
      case "notify_master":
      case "notify_backup":
      case "notify_fault":
      case "notify_stop":
      case "notify":
        notifyKeyword(ctx, s, notify);
        break;
      case "sync_group_tracking_weight":
        noBlock(s);
        trackingWeight = boolArg(s);
        break;
      case "smtp_alert":
      case "global_tracking":
        ctx.warn(s.where, `${s.keyword} is not supported by lvsd (ignored)`);
        break;
      default:
        if (s.keyword.startsWith("track_") || s.keyword.startsWith("notify"))
          ctx.warn(s.where, `vrrp_sync_group ${name}: ${s.keyword} is not implemented by lvsd yet (ignored)`);
        else ctx.warn(s.where, `unknown keyword '${s.keyword}' in vrrp_sync_group (ignored)`);
    }
  }
  return { where: st.where, name, members, notify, trackingWeight };
}

/**
 * keepalived's vrrp_sync_set_group checks: a member that is no instance, or already in another
 * group, is reported and left out; a group left empty is removed; one member is reported.
 */
function checkSyncGroups(
  ctx: Ctx,
  groups: VrrpSyncGroupSpec[],
  instances: VrrpInstanceSpec[],
): VrrpSyncGroupSpec[] {
  const taken = new Map<string, string>();
  const out: VrrpSyncGroupSpec[] = [];
  for (const g of groups) {
    const members: string[] = [];
    for (const m of g.members) {
      if (!instances.some((i) => i.name === m)) {
        ctx.warn(g.where, `vrrp_sync_group ${g.name}: vrrp_instance ${m} does not exist (ignored)`);
        continue;
      }
      const other = taken.get(m);
      if (other !== undefined) {
        ctx.warn(
          g.where,
          `vrrp_sync_group ${g.name}: vrrp_instance ${m} is already in vrrp_sync_group ${other} (ignored)`,
        );
        continue;
      }
      taken.set(m, g.name);
      members.push(m);
    }
    if (members.length === 0) {
      ctx.warn(g.where, `vrrp_sync_group ${g.name} has no existing member (group ignored)`);
      continue;
    }
    if (members.length === 1)
      ctx.warn(g.where, `vrrp_sync_group ${g.name} has only 1 member: this probably isn't what you want`);
    out.push({ ...g, members });
  }
  return out;
}

// ---- top level ----

function interpret(ctx: Ctx, statements: readonly Statement[], files: string[]): KeepalivedConfig {
  const groups = new Map<string, { entries: GroupEntry[] }>();
  const virtualServers: VirtualServerConfig[] = [];
  const services = new Map<number, { vs: string; where: Where }>();
  const vsNames = new Set<string>(); // a Set, not a scan of virtualServers: 25k blocks load in linear time
  const vrrpInstances: VrrpInstanceSpec[] = [];
  const vrrpScripts = new Map<string, VrrpScriptSpec>();
  const syncGroups: VrrpSyncGroupSpec[] = [];
  const pendingTracks: PendingTrackScript[] = [];
  const globals: VrrpGlobals = { version: undefined, garp: {} };
  for (const st of statements)
    if (st.keyword === "global_defs") {
      const g = globalVrrp(ctx, st);
      globals.version = g.version ?? globals.version;
      if (g.lvsSync) globals.lvsSync = g.lvsSync;
      Object.assign(globals.garp, g.garp);
    }
  // track_file blocks may come after the FILE_CHECKs that use them
  for (const st of statements) {
    if (st.keyword !== "track_file" && st.keyword !== "vrrp_track_file") continue;
    const tf = parseTrackFile(ctx, st);
    if (ctx.trackFiles.has(tf.name))
      ctx.warn(st.where, `track_file ${tf.name} is defined twice (the first is used)`);
    else ctx.trackFiles.set(tf.name, tf);
  }
  for (const st of statements) {
    switch (st.keyword) {
      case "track_file":
      case "vrrp_track_file":
        break; // read above
      case "virtual_server_group": {
        const g = parseGroup(ctx, st);
        if (groups.has(g.name)) fail(st.where, `virtual_server_group ${g.name} is defined twice`);
        groups.set(g.name, g);
        break;
      }
      case "virtual_server": {
        const pre = (st as Partial<PreRead>).pre;
        let vs: VirtualServerConfig;
        if (pre) {
          // read while the file was read (preRead): its warnings and error come here, in order
          for (const w of pre.warnings) ctx.warnings.push(w);
          if (pre.error !== undefined) throw pre.error;
          vs = pre.vs as VirtualServerConfig;
        } else vs = parseVirtualServer(ctx, st, groups);
        // keepalived 2.2 says nothing and gives both blocks to the kernel, whose second add of
        // the service fails; lvsd keeps the first block and skips the other, with a warning
        const dup = vs.keys.map((k) => ({ k, prev: services.get(keyId(k)) })).find((d) => d.prev);
        if (dup?.prev) {
          ctx.warn(
            st.where,
            `virtual_server ${keyName(dup.k)} is declared twice (first at ${dup.prev.where.file}:${dup.prev.where.line}): this block is ignored`,
          );
          break;
        }
        if (vsNames.has(vs.name)) {
          ctx.warn(st.where, `virtual_server ${vs.name} is declared twice: this block is ignored`);
          break;
        }
        for (const k of vs.keys) services.set(keyId(k), { vs: vs.name, where: st.where });
        virtualServers.push(vs);
        vsNames.add(vs.name);
        break;
      }
      case "global_defs":
        break; // read above
      case "vrrp_instance": {
        const vi = parseVrrpInstance(ctx, st, globals, pendingTracks);
        for (const o of vrrpInstances) {
          if (o.name === vi.name)
            fail(
              st.where,
              `vrrp_instance ${vi.name} is defined twice (first at ${o.where.file}:${o.where.line})`,
            );
          if (o.vrid === vi.vrid && o.interface === vi.interface)
            fail(
              st.where,
              `vrrp_instance ${vi.name}: virtual_router_id ${vi.vrid} on ${vi.interface} is already used by ${o.name} (${o.where.file}:${o.where.line})`,
            );
        }
        vrrpInstances.push(vi);
        break;
      }
      case "vrrp_sync_group": {
        const g = parseVrrpSyncGroup(ctx, st);
        const prev = syncGroups.find((x) => x.name === g.name);
        if (prev)
          fail(
            st.where,
            `vrrp_sync_group ${g.name} is defined twice (first at ${prev.where.file}:${prev.where.line})`,
          );
        syncGroups.push(g);
        break;
      }
      case "vrrp_script": {
        const vs = parseVrrpScript(ctx, st);
        const prev = vrrpScripts.get(vs.name);
        if (prev)
          fail(
            st.where,
            `vrrp_script ${vs.name} is defined twice (first at ${prev.where.file}:${prev.where.line})`,
          );
        vrrpScripts.set(vs.name, vs);
        break;
      }
      default:
        if (st.keyword.startsWith("vrrp_") || st.keyword === "garp_group") {
          ctx.warn(
            st.where,
            `${st.keyword} is not implemented by lvsd yet (${st.block ? "block" : "line"} ignored)`,
          );
        } else if (OTHER_SUBSYSTEMS.has(st.keyword)) {
          ctx.warn(
            st.where,
            `${st.keyword} is not supported by lvsd (${st.block ? "block" : "line"} ignored)`,
          );
        } else {
          ctx.warn(st.where, `unknown keyword '${st.keyword}' (ignored)`);
        }
    }
  }
  // track_script names refer to vrrp_script blocks anywhere in the file (keepalived: an unknown
  // one is reported and ignored).
  for (const t of pendingTracks) {
    const script = vrrpScripts.get(t.name);
    if (script === undefined) {
      ctx.warn(t.where, `vrrp_instance ${t.spec.name}: track_script ${t.name} not found (ignored)`);
      continue;
    }
    t.spec.trackScripts!.push({
      where: t.where,
      script,
      weight: t.weight ?? script.weight,
      reverse: t.weight !== undefined ? t.reverse : script.reverse,
    });
  }
  const vrrpSyncGroups = checkSyncGroups(ctx, syncGroups, vrrpInstances);
  // lvs_sync_daemon follows a vrrp_instance; its sync id defaults to the instance's VRID.
  let lvsSyncDaemon: LvsSyncDaemonSpec | undefined;
  const ls = globals.lvsSync;
  if (ls) {
    const vi = vrrpInstances.find((x) => x.name === ls.instance);
    if (!vi)
      ctx.warn(
        ls.where,
        `lvs_sync_daemon: vrrp_instance ${ls.instance} is not defined (sync daemon disabled)`,
      );
    else lvsSyncDaemon = { ...ls, syncid: ls.syncid ?? vi.vrid };
  }
  return {
    files,
    virtualServers,
    vrrpInstances,
    ...(vrrpSyncGroups.length > 0 ? { vrrpSyncGroups } : {}),
    ...(lvsSyncDaemon ? { lvsSyncDaemon } : {}),
    warnings: ctx.warnings,
  };
}

export interface ParseOptions {
  /** keepalived's config id for `@ID` lines (lvsd --config-id; default the host name). */
  configId?: string;
}

/** What `lvsd --config-test` reports: every warning and error, and the result when there is no error. */
export interface ConfigCheck {
  /** "FILE:LINE: ..." */
  warnings: string[];
  /** Their messages are "FILE:LINE: ...". */
  errors: ConfigError[];
  config?: KeepalivedConfig;
}

/** A top-level virtual_server read as soon as its block closed (see preRead). */
interface PreRead extends Statement {
  pre: { vs?: VirtualServerConfig; warnings: string[]; error?: unknown };
}

const NO_GROUPS: ReadonlyMap<string, { entries: GroupEntry[] }> = new Map();

function mentions(sts: readonly Statement[] | undefined, keyword: string): boolean {
  for (const st of sts ?? []) if (st.keyword === keyword || mentions(st.block, keyword)) return true;
  return false;
}

/**
 * A top-level statement whose block just closed, while the file is still being read. A
 * virtual_server that depends on nothing defined elsewhere in the file (no `group`, no
 * FILE_CHECK and its track_file) is read now and only the result kept, with its warnings or
 * its error, which interpret() reports when it reaches the statement, as if it read it then:
 * a 25,000-service file never holds all its statements (their garbage was most of a load's time).
 */
function preRead(st: Statement): Statement {
  if (st.keyword !== "virtual_server" || st.args[0]?.text === "group" || mentions(st.block, "FILE_CHECK"))
    return st;
  const sub = new Ctx();
  const pre: PreRead["pre"] = { warnings: sub.warnings };
  try {
    pre.vs = parseVirtualServer(sub, st, NO_GROUPS);
  } catch (err) {
    pre.error = err;
  }
  const kept: PreRead = { keyword: st.keyword, args: st.args, where: st.where, pre };
  return kept;
}

function run(lex: (sink: TokenSink) => LexInfo, extraFiles: string[]): ConfigCheck {
  const ctx = new Ctx();
  // the statements are built while the files are read: a big file's tokens are never held
  const statements = new StatementBuilder(preRead);
  let lexed: LexInfo;
  try {
    lexed = lex(statements);
  } catch (err) {
    if (err instanceof ConfigError) return { warnings: [], errors: [err] };
    throw err;
  }
  for (const w of lexed.warnings) ctx.warnings.push(w);
  const errors = [...lexed.errors];
  try {
    const config = interpret(ctx, statements.end(), [...extraFiles, ...lexed.files]);
    return { warnings: ctx.warnings, errors, ...(errors.length === 0 ? { config } : {}) };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return { warnings: ctx.warnings, errors: [...errors, err] };
  }
}

/** The configuration, or its first error as a ConfigError carrying every warning and error. */
function result(c: ConfigCheck): KeepalivedConfig {
  if (c.config) return c.config;
  const err = c.errors[0] ?? new ConfigError({ file: "<config>", line: 0 }, "configuration error");
  err.warnings = c.warnings;
  err.errors = c.errors;
  throw err;
}

/** Check a keepalived.conf (and what it includes): every warning and error, never throws ConfigError. */
export function checkConfigFile(path: string, opts: ParseOptions = {}): ConfigCheck {
  return run((sink) => lexFileTo(sink, path, opts), []);
}

/** The same for a text (tests); includes are taken from `dir`. */
export function checkConfigText(
  text: string,
  name = "<config>",
  dir = ".",
  opts: ParseOptions = {},
): ConfigCheck {
  return run((sink) => lexTextTo(sink, text, name, dir, opts), [name]);
}

/** Read and check a keepalived.conf (and what it includes). Throws ConfigError (the first error). */
export function parseConfigFile(path: string, opts: ParseOptions = {}): KeepalivedConfig {
  return result(checkConfigFile(path, opts));
}

/** The same for a text (tests); includes are taken from `dir`. */
export function parseConfigText(
  text: string,
  name = "<config>",
  dir = ".",
  opts: ParseOptions = {},
): KeepalivedConfig {
  return result(checkConfigText(text, name, dir, opts));
}
