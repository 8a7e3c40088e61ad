/**
 * keepalived.conf → KeepalivedConfig: the `virtual_server` and `virtual_server_group` blocks
 * with keepalived's keywords, defaults and inheritance (virtual server → real server → checker).
 *
 * - Syntax errors, bad values and features lvsd cannot carry (IPv6, fwmark services, SCTP,
 *   tunnel types other than ipip) throw ConfigError "FILE:LINE: what was expected".
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
import { lexFile, lexText } from "./lexer.js";
import { parseStatements, type Statement } from "./statements.js";
import {
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
} as const;

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
  "track_file",
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

/** Checkers keepalived has and lvsd does not. */
const OTHER_CHECKERS = new Set(["SMTP_CHECK", "DNS_CHECK", "FILE_CHECK", "BFD_CHECK"]);

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

// ---- value helpers ----

class Ctx {
  readonly warnings: string[] = [];
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
  if (isIPv6(text)) fail(st.where, `${st.keyword}: IPv6 is not supported by lvsd ('${text}')`);
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
    case "nb_get_retry":
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
  const out: Inherit = {};
  for (const l of levels) {
    for (const [k, v] of Object.entries(l)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  }
  return out;
}

function timingFor(type: CheckerType, o: Inherit): CheckTiming {
  const delayLoop = o.delayLoop ?? DEFAULTS.delayLoop;
  const http = type === "HTTP_GET" || type === "SSL_GET";
  return {
    delayLoop,
    connectTimeout: o.connectTimeout ?? DEFAULTS.connectTimeout,
    retry: o.retry ?? (type === "MISC_CHECK" ? DEFAULTS.miscRetry : DEFAULTS.retry),
    delayBeforeRetry:
      o.delayBeforeRetry ?? (http ? DEFAULTS.httpDelayBeforeRetry : DEFAULTS.delayBeforeRetry),
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
  const isMisc = type === "MISC_CHECK";
  const isHttp = type === "HTTP_GET" || type === "SSL_GET";

  for (const s of st.block ?? []) {
    if (s.keyword !== "url") noBlock(s);
    if (inheritable(s, own)) continue;
    const conn = !isMisc;
    switch (s.keyword) {
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
    if (s.block && !isCheckerKeyword(s.keyword)) fail(s.where, `${s.keyword} does not take a block`);
    if (inheritable(s, own)) continue;
    switch (s.keyword) {
      case "weight":
        weight = intArg(s, 0, MAX_WEIGHT);
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
  const rs: RsContext = { addr, port: rport, inherit, label };
  const checkers: CheckerConfig[] = [];
  for (const s of checkerStmts) {
    if (OTHER_CHECKERS.has(s.keyword)) {
      ctx.warn(s.where, `${s.keyword} is not supported by lvsd (checker ignored)`);
      continue;
    }
    checkers.push(parseChecker(ctx, s, s.keyword as CheckerType, rs));
  }
  if (checkerStmts.length > 0 && checkers.length === 0) {
    ctx.warn(st.where, `real_server ${label} has no checker lvsd can run: it is always considered up`);
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

function isCheckerKeyword(k: string): boolean {
  return (
    (["TCP_CHECK", "HTTP_GET", "SSL_GET", "PING_CHECK", "UDP_CHECK", "MISC_CHECK"] as string[]).includes(k) ||
    OTHER_CHECKERS.has(k)
  );
}

// ---- virtual servers ----

interface VsContext {
  port: number;
  inherit: Inherit;
  fwd: FwdMethod;
}

interface GroupEntry {
  addr: number;
  port: number;
  where: Where;
}

function parseGroup(st: Statement): { name: string; entries: GroupEntry[] } {
  const name = one(st, "a group name");
  const entries: GroupEntry[] = [];
  for (const s of needBlock(st)) {
    noBlock(s);
    if (s.keyword === "fwmark") {
      fail(s.where, "virtual_server_group fwmark: firewall-mark services are not supported by lvsd");
    }
    const words = [s.keyword, ...s.args.map((a) => a.text)];
    if (words.length !== 2)
      fail(s.where, `virtual_server_group ${name}: expected an address (or range) and a port`);
    const [spec = "", portText = ""] = words;
    const entry: Statement = { ...s, keyword: "virtual_server_group" }; // for messages
    const p = port(entry, portText);
    for (const addr of expandRange(entry, spec)) entries.push({ addr, port: p, where: s.where });
  }
  if (entries.length === 0)
    fail(st.where, `virtual_server_group ${name}: expected at least one address and port`);
  return { name, entries };
}

/** 10.0.0.1, 10.0.0.1-10, 10.0.0.250-10.0.1.5 or 10.0.0.8/29. */
function expandRange(st: Statement, spec: string): number[] {
  let lo: number;
  let hi: number;
  const cidr = /^([^/]+)\/([0-9]+)$/.exec(spec);
  const dash = /^([0-9.]+)-([0-9.]+)$/.exec(spec);
  if (cidr) {
    const bits = Number(cidr[2]);
    if (bits > 32) fail(st.where, `virtual_server_group: prefix /${bits} is out of range`);
    const base = ip(st, cidr[1] ?? "");
    const size = 2 ** (32 - bits);
    lo = Math.floor(base / size) * size;
    hi = lo + size - 1;
  } else if (dash) {
    lo = ip(st, dash[1] ?? "");
    const end = dash[2] ?? "";
    hi = end.includes(".") ? ip(st, end) : ((lo & 0xffffff00) >>> 0) + int(st, end, 0, 255);
  } else {
    lo = hi = ip(st, spec);
  }
  if (hi < lo) fail(st.where, `virtual_server_group: range ${spec} ends before it starts`);
  if (hi - lo + 1 > MAX_GROUP_RANGE) {
    fail(
      st.where,
      `virtual_server_group: range ${spec} has ${hi - lo + 1} addresses (at most ${MAX_GROUP_RANGE})`,
    );
  }
  const out: number[] = [];
  for (let a = lo; a <= hi; a++) out.push(a >>> 0);
  return out;
}

function protoName(p: number): string {
  return p === IPPROTO_UDP ? "UDP" : "TCP";
}

function parseVirtualServer(
  ctx: Ctx,
  st: Statement,
  groups: ReadonlyMap<string, { entries: GroupEntry[] }>,
): VirtualServerConfig {
  const a = st.args.map((t) => t.text);
  let addrs: { addr: number; port: number }[];
  let groupName: string | undefined;
  if (a[0] === "fwmark") {
    fail(st.where, `virtual_server fwmark ${a[1] ?? "N"}: firewall-mark services are not supported by lvsd`);
  } else if (a[0] === "group") {
    if (a.length !== 2) fail(st.where, "virtual_server group: expected a group name");
    groupName = a[1] ?? "";
    const g = groups.get(groupName);
    if (!g)
      fail(
        st.where,
        `virtual_server group ${groupName}: no virtual_server_group ${groupName} is defined before it`,
      );
    addrs = g.entries.map((e) => ({ addr: e.addr, port: e.port }));
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
  let proto = IPPROTO_TCP;
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
  let fwd: FwdMethod = FwdMethod.MASQ; // keepalived's default method is NAT
  let sorryFwd: FwdMethod | undefined;
  const rsStmts: Statement[] = [];

  for (const s of needBlock(st)) {
    if (isCheckerKeyword(s.keyword)) fail(s.where, `${s.keyword} belongs in a real_server block`);
    if (s.keyword !== "real_server") noBlock(s);
    if (inheritable(s, inherit)) continue;
    switch (s.keyword) {
      case "lvs_sched":
      case "lb_algo": {
        sched = one(s, "a scheduler name");
        if (!getScheduler(sched)) {
          fail(
            s.where,
            `${s.keyword} ${sched}: no such scheduler (available: ${schedulerNames().join(", ")})`,
          );
        }
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
        else fail(s.where, `protocol: expected TCP or UDP, got '${p}'`);
        break;
      }
      case "ops":
        flags |= SVC_F_ONEPACKET;
        opsWhere = s;
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

  if (schedFlags.length > 0) {
    const r = parseSchedFlagsIpvsadm(sched, schedFlags.join(","));
    if (typeof r === "string") fail((schedWhere ?? st).where, `${r} for scheduler ${sched}`);
    flags |= r;
  }
  if (opsWhere && proto !== IPPROTO_UDP)
    fail(opsWhere.where, "ops: one-packet scheduling is only for UDP virtual servers");
  const first = addrs[0] ?? { addr: 0, port: 0 };
  if (addrs.some((x) => x.port === 0) && (flags & SVC_F_PERSISTENT) === 0) {
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
  const keys: ServiceKey[] = addrs.map((x) => ({ proto, addr: x.addr, port: x.port }));
  return {
    where: st.where,
    name,
    keys,
    opts: { sched, flags, timeout, netmask },
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

function interpret(
  statements: readonly Statement[],
  files: string[],
  lexWarnings: string[],
): KeepalivedConfig {
  const ctx = new Ctx();
  ctx.warnings.push(...lexWarnings);
  const groups = new Map<string, { entries: GroupEntry[] }>();
  const virtualServers: VirtualServerConfig[] = [];
  const services = new Map<number, { vs: string; where: Where }>();
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
  for (const st of statements) {
    if (st.keyword.startsWith("@") || st.keyword.startsWith("$")) {
      ctx.warn(
        st.where,
        "conditional lines and parameter substitution are not supported by lvsd (line ignored)",
      );
      continue;
    }
    switch (st.keyword) {
      case "virtual_server_group": {
        const g = parseGroup(st);
        if (groups.has(g.name)) fail(st.where, `virtual_server_group ${g.name} is defined twice`);
        groups.set(g.name, g);
        break;
      }
      case "virtual_server": {
        const vs = parseVirtualServer(ctx, st, groups);
        for (const k of vs.keys) {
          const id = serviceKey(k.proto, k.addr, k.port);
          const prev = services.get(id);
          if (prev) {
            fail(
              st.where,
              `virtual_server ${protoName(k.proto)} ${u32ToIp(k.addr)}:${k.port} is declared twice (first at ${prev.where.file}:${prev.where.line})`,
            );
          }
          services.set(id, { vs: vs.name, where: st.where });
        }
        virtualServers.push(vs);
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

/** Read and check a keepalived.conf (and what it includes). Throws ConfigError. */
export function parseConfigFile(path: string): KeepalivedConfig {
  const lexed = lexFile(path);
  return interpret(parseStatements(lexed.tokens), lexed.files, lexed.warnings);
}

/** The same for a text (tests); includes are taken from `dir`. */
export function parseConfigText(text: string, name = "<config>", dir = "."): KeepalivedConfig {
  const lexed = lexText(text, name, dir);
  return interpret(parseStatements(lexed.tokens), [name, ...lexed.files], lexed.warnings);
}
