/**
 * ipvsadm's command line, parsed into a typed Command.
 *
 * The behaviour follows ipvsadm 1.31 (ipvsadm.c), which parses with popt:
 * - the first option must be a command (-A -E -D -C -R -S -a -e -d -L/-l -Z --set
 *   --start-daemon --stop-daemon -h -v); anything else there prints the "Try ... -h" hint and
 *   exits 255;
 * - short options bundle (`-Ln`, `-lnc`, `-At 10.0.0.1:80`), a short option's argument may be
 *   glued (`-p600`, `-t=1.2.3.4:80`), long options take `--opt value` or `--opt=value`;
 * - `-p`'s argument is optional: it is taken from the next word unless that word starts with `-`;
 * - options are checked against ipvsadm's command/option table (compulsory, illegal, exclusive),
 *   then the per-command rules (zero port, one-packet, tunnel options, list conflicts);
 * - errors carry ipvsadm's exact text and exit code: 2 for fail(), 255 for the help hint and for
 *   popt's own errors ("-t: missing argument", "--foo: unknown option").
 *
 * Differences, all deliberate (see docs/lvsadm.md): IPv6, SCTP, persistence engines (--pe) and the
 * gue/gre tunnel types are refused with a clear message; `--fullnat` is our extension (forwarding
 * method FullNat). Host names are looked up as ipvsadm does, through `getent` (netdb.ts).
 */

import { isIPv6 } from "node:net";
import { FORWARDING_METHODS, fwdForOption } from "../datapath/modes/index.js";
import { DEFAULT_SCHEDULER } from "../datapath/schedulers/index.js";
import { IPPROTO_TCP, IPPROTO_UDP } from "../lib/proto.js";
import { DEFAULT_PERSIST_TIMEOUT, FwdMethod, SVC_F_ONEPACKET, SVC_F_PERSISTENT } from "../tables/model.js";
import type { DestOptions, ServiceKey, ServiceOptions } from "../tables/services.js";
import { type ExtensionCommand, parseExtension } from "./health-import.js";
import { hostToAddr, inetAton, type ServicesDb, stringToNumber, systemServices } from "./netdb.js";
import { parseSchedFlagsIpvsadm } from "./sched.js";
import type { Timeouts } from "./target.js";
import { parseTraceCommand, type TraceCommand } from "./trace-cmd.js";
import {
  type DaemonOptions,
  DEFAULT_LIST_FORMAT,
  type ListFormat,
  type Parsed,
  TUN_TYPE_IPIP,
  TUN_TYPES,
} from "./types.js";

export type { DaemonOptions };

/** ipvsadm's MAX_TIMEOUT: 31 days. */
export const MAX_TIMEOUT = 86400 * 31;
/** `-p` without a value (ipvsadm's IPVS_SVC_PERSISTENT_TIMEOUT, 360 s). */
export const DEF_PERSIST_TIMEOUT = DEFAULT_PERSIST_TIMEOUT;
/** ipvsadm's default scheduler, wlc (the registry's). */
export const DEF_SCHED = DEFAULT_SCHEDULER;
export const DEF_MCAST_IFN = "eth0";
const INT_MAX = 2147483647;

/** A dest as given with -a/-e: every field set (ipvsadm sends the whole struct). */
export interface DestSpec extends DestOptions {
  tunType: number;
  tunPort: number;
}

export type Command =
  | { kind: "help" }
  | { kind: "version" }
  | { kind: "add-service"; svc: ServiceKey; opts: ServiceOptions }
  | { kind: "edit-service"; svc: ServiceKey; opts: ServiceOptions }
  | { kind: "delete-service"; svc: ServiceKey }
  | { kind: "clear" }
  | { kind: "restore" }
  | { kind: "save"; numeric: boolean }
  | { kind: "add-dest"; svc: ServiceKey; dest: DestSpec }
  | { kind: "edit-dest"; svc: ServiceKey; dest: DestSpec }
  | { kind: "delete-dest"; svc: ServiceKey; addr: number; port: number }
  | { kind: "list"; what: "services" | "conns" | "timeout" | "daemon"; svc?: ServiceKey; format: ListFormat }
  | { kind: "zero"; svc?: ServiceKey }
  | { kind: "set-timeout"; timeouts: Timeouts }
  | { kind: "start-daemon"; state: "master" | "backup"; daemon: DaemonOptions }
  | { kind: "stop-daemon"; state: "master" | "backup"; syncid?: number }
  // lvs-ts extensions (--health, --import FILE): src/control/health-import.ts
  | ExtensionCommand
  // lvs-ts: --vrrp, lvsd's VRRP instances (src/control/vrrp/manager.ts)
  | { kind: "vrrp" }
  // lvs-ts packet traces (--trace FILE ..., --trace-status, --trace-stop): src/control/trace-cmd.ts
  | TraceCommand;

export type ParseResult = Parsed<Command>;

export interface ParseOptions {
  /** Program name in messages (ipvsadm's argv[0]). */
  prog?: string;
  /** Port names for `host:name`; defaults to /etc/services. */
  services?: ServicesDb;
  /** Parsing a line of a restore: -R inside -R is refused, as in ipvsadm. */
  inRestore?: boolean;
}

// ---- popt emulation ----

type ArgKind = "none" | "required" | "optional";

interface OptDef {
  long?: string;
  short?: string;
  arg: ArgKind;
  tag: string;
}

/** ipvsadm 1.31's option table, plus our --fullnat. Tags are the short letter or the long name. */
const OPTIONS: readonly OptDef[] = [
  { long: "add-service", short: "A", arg: "none", tag: "A" },
  { long: "edit-service", short: "E", arg: "none", tag: "E" },
  { long: "delete-service", short: "D", arg: "none", tag: "D" },
  { long: "clear", short: "C", arg: "none", tag: "C" },
  { long: "list", short: "L", arg: "none", tag: "L" },
  { long: "list", short: "l", arg: "none", tag: "L" },
  { long: "zero", short: "Z", arg: "none", tag: "Z" },
  { long: "add-server", short: "a", arg: "none", tag: "a" },
  { long: "edit-server", short: "e", arg: "none", tag: "e" },
  { long: "delete-server", short: "d", arg: "none", tag: "d" },
  { long: "set", arg: "none", tag: "set" },
  { long: "help", short: "h", arg: "none", tag: "h" },
  { long: "version", short: "v", arg: "none", tag: "v" },
  { long: "restore", short: "R", arg: "none", tag: "R" },
  { long: "save", short: "S", arg: "none", tag: "S" },
  { long: "start-daemon", arg: "required", tag: "start-daemon" },
  { long: "stop-daemon", arg: "required", tag: "stop-daemon" },
  { long: "tcp-service", short: "t", arg: "required", tag: "t" },
  { long: "udp-service", short: "u", arg: "required", tag: "u" },
  { long: "sctp-service", arg: "required", tag: "sctp-service" },
  { long: "fwmark-service", short: "f", arg: "required", tag: "f" },
  { long: "scheduler", short: "s", arg: "required", tag: "s" },
  { long: "persistent", short: "p", arg: "optional", tag: "p" },
  { long: "netmask", short: "M", arg: "required", tag: "M" },
  { long: "real-server", short: "r", arg: "required", tag: "r" },
  { long: "masquerading", short: "m", arg: "none", tag: "m" },
  { long: "ipip", short: "i", arg: "none", tag: "i" },
  { long: "gatewaying", short: "g", arg: "none", tag: "g" },
  { long: "fullnat", arg: "none", tag: "fullnat" },
  { long: "weight", short: "w", arg: "required", tag: "w" },
  { long: "u-threshold", short: "x", arg: "required", tag: "x" },
  { long: "l-threshold", short: "y", arg: "required", tag: "y" },
  { long: "numeric", short: "n", arg: "none", tag: "n" },
  { long: "connection", short: "c", arg: "none", tag: "c" },
  { long: "mcast-interface", arg: "required", tag: "mcast-interface" },
  { long: "syncid", arg: "required", tag: "syncid" },
  { long: "timeout", arg: "none", tag: "timeout" },
  { long: "daemon", arg: "none", tag: "daemon" },
  { long: "stats", arg: "none", tag: "stats" },
  { long: "rate", arg: "none", tag: "rate" },
  { long: "thresholds", arg: "none", tag: "thresholds" },
  { long: "persistent-conn", arg: "none", tag: "persistent-conn" },
  { long: "nosort", arg: "none", tag: "nosort" },
  { long: "sort", arg: "none", tag: "sort" },
  { long: "exact", short: "X", arg: "none", tag: "X" },
  { long: "ipv6", short: "6", arg: "none", tag: "6" },
  { long: "ops", short: "o", arg: "none", tag: "o" },
  { long: "pe", arg: "required", tag: "pe" },
  { long: "sched-flags", short: "b", arg: "required", tag: "b" },
  { long: "mcast-group", arg: "required", tag: "mcast-group" },
  { long: "mcast-port", arg: "required", tag: "mcast-port" },
  { long: "mcast-ttl", arg: "required", tag: "mcast-ttl" },
  { long: "sync-maxlen", arg: "required", tag: "sync-maxlen" },
  { long: "tun-info", arg: "none", tag: "tun-info" },
  { long: "tun-type", arg: "required", tag: "tun-type" },
  { long: "tun-port", arg: "required", tag: "tun-port" },
  { long: "tun-nocsum", arg: "none", tag: "tun-nocsum" },
  { long: "tun-csum", arg: "none", tag: "tun-csum" },
  { long: "tun-remcsum", arg: "none", tag: "tun-remcsum" },
];

const BY_LONG = new Map<string, OptDef>();
const BY_SHORT = new Map<string, OptDef>();
for (const o of OPTIONS) {
  if (o.long && !BY_LONG.has(o.long)) BY_LONG.set(o.long, o);
  if (o.short) BY_SHORT.set(o.short, o);
}

/** Option tag → the forwarding method it selects, from the registry's options (-m, -g, -i, --fullnat). */
const FWD_BY_TAG = new Map<string, FwdMethod>();
for (const m of FORWARDING_METHODS) {
  const def = m.option.startsWith("--") ? BY_LONG.get(m.option.slice(2)) : BY_SHORT.get(m.option.slice(1));
  if (def === undefined) throw new Error(`forwarding method ${m.label}: ${m.option} is not in OPTIONS`);
  const fwd = fwdForOption(m.option);
  if (fwd !== undefined) FWD_BY_TAG.set(def.tag, fwd);
}

/** popt's error codes and poptStrerror() texts. */
const POPT_ERRORS = {
  NOARG: "missing argument",
  BADOPT: "unknown option",
  UNWANTEDARG: "option does not take an argument",
} as const;
type PoptError = keyof typeof POPT_ERRORS;

type Next =
  | { kind: "opt"; tag: string; arg: string | undefined }
  | { kind: "error"; err: PoptError }
  | { kind: "end" };

/** A small re-implementation of poptGetNextOpt() over one argv (program name excluded). */
class Popt {
  private next = 0;
  private charArg: string | null = null;
  private charToken = "";
  private restLeftover = false;
  readonly leftovers: string[] = [];
  /** The token poptBadOption() reports: the last word consumed. */
  badToken = "";

  constructor(private readonly argv: readonly string[]) {}

  nextOpt(): Next {
    for (;;) {
      let def: OptDef | undefined;
      let longArg: string | undefined;
      if (this.charArg !== null) {
        // Inside a bundle of short options: "-Lnc".
        const rest = this.charArg;
        const ch = rest[0] ?? "";
        this.charArg = null;
        def = BY_SHORT.get(ch);
        this.badToken = this.charToken;
        if (!def) return { kind: "error", err: "BADOPT" };
        const after = rest.slice(1);
        if (after.length > 0) this.charArg = after[0] === "=" ? after.slice(1) : after;
      } else {
        if (this.next >= this.argv.length) return { kind: "end" };
        const tok = this.argv[this.next++] ?? "";
        this.badToken = tok;
        if (this.restLeftover || tok[0] !== "-" || tok === "-") {
          this.leftovers.push(tok);
          continue;
        }
        if (tok === "--") {
          this.restLeftover = true;
          continue;
        }
        if (tok.startsWith("--")) {
          const body = tok.slice(2);
          const eq = body.indexOf("=");
          const name = eq >= 0 ? body.slice(0, eq) : body;
          if (eq >= 0) longArg = body.slice(eq + 1);
          def = BY_LONG.get(name);
          if (!def) return { kind: "error", err: "BADOPT" };
        } else {
          this.charToken = tok;
          this.charArg = tok.slice(1);
          continue;
        }
      }
      if (def.arg === "none") {
        if (longArg !== undefined) return { kind: "error", err: "UNWANTEDARG" };
        return { kind: "opt", tag: def.tag, arg: undefined };
      }
      if (longArg !== undefined) return { kind: "opt", tag: def.tag, arg: longArg };
      if (this.charArg !== null) {
        const a = this.charArg;
        this.charArg = null;
        return { kind: "opt", tag: def.tag, arg: a };
      }
      if (this.next >= this.argv.length) {
        if (def.arg === "optional") return { kind: "opt", tag: def.tag, arg: undefined };
        return { kind: "error", err: "NOARG" };
      }
      const peek = this.argv[this.next] ?? "";
      if (def.arg === "optional" && peek.startsWith("-"))
        return { kind: "opt", tag: def.tag, arg: undefined };
      this.next++;
      this.badToken = peek;
      return { kind: "opt", tag: def.tag, arg: peek };
    }
  }

  /** poptGetArg(): the next leftover word. */
  getArg(): string | undefined {
    return this.leftovers.shift();
  }
}

// ---- ipvsadm's command/option compatibility table ----

const CMD = {
  ADD: 0,
  EDIT: 1,
  DEL: 2,
  FLUSH: 3,
  LIST: 4,
  ADDDEST: 5,
  DELDEST: 6,
  EDITDEST: 7,
  TIMEOUT: 8,
  STARTD: 9,
  STOPD: 10,
  RESTORE: 11,
  SAVE: 12,
  ZERO: 13,
} as const;
type Cmd = (typeof CMD)[keyof typeof CMD];

const CMD_NAMES: readonly string[] = [
  "add-service",
  "edit-service",
  "delete-service",
  "flush",
  "list",
  "add-server",
  "delete-server",
  "edit-server",
  "set",
  "start-daemon",
  "stop-daemon",
  "restore",
  "save",
  "zero",
];

/** Option bits, in ipvsadm's order (OPTC_*); the names are ipvsadm's optnames[]. */
export const OPT_NAMES = [
  "numeric",
  "connection",
  "service-address",
  "scheduler",
  "persistent",
  "netmask",
  "real-server",
  "forwarding-method",
  "weight",
  "u-threshold",
  "l-threshold",
  "mcast-interface",
  "timeout",
  "daemon",
  "stats",
  "rate",
  "thresholds",
  "persistent-conn",
  "nosort",
  "syncid",
  "exact",
  "ops",
  "pe",
  "sched-flags",
  "mcast-group",
  "mcast-port",
  "mcast-ttl",
  "sync-maxlen",
  "tun-info",
  "tun-type",
  "tun-port",
  "tun-nocsum",
  "tun-csum",
  "tun-remcsum",
] as const;
type OptName = (typeof OPT_NAMES)[number];

/**
 * commands_v_options from ipvsadm 1.31: '+' compulsory, 'x' illegal, '1' exclusive (at most one
 * '1' option), ' ' optional. Columns follow OPT_NAMES.
 */
export const COMMANDS_V_OPTIONS: readonly string[] = [
  //-n-c svc -s -p -M -r fwd -w -x -y mc tot dmn st rt thr pc srt sid ex ops pe -b grp port ttl size tinfo ttype tport nocs cs remcs
  "xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx", // ADD
  "xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx", // EDIT
  "xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // DEL
  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // FLUSH
  " 11xxxxxxxxx11       xxxxxxx xxxxx", // LIST
  "xx+xxx+    xxxxxxxxxxxxxxxxxx     ", // ADDDEST
  "xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxx", // DELDEST
  "xx+xxx+    xxxxxxxxxxxxxxxxxx     ", // EDITDEST
  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // TIMEOUT
  "xxxxxxxxxxx xxxxxxx xxxx    xxxxxx", // STARTD
  "xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxx", // STOPD
  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // RESTORE
  " xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // SAVE
  "xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // ZERO
];

/**
 * tunnel_types_v_options (ipvsadm 1.31), columns tun-port, tun-nocsum, tun-csum, tun-remcsum.
 * Only the ipip row can be reached today: gue and gre are refused when parsed.
 */
const TUNNEL_V_OPTIONS: readonly string[] = ["xxxx", "+111", "x111"];
const TUN_OPTS: readonly OptName[] = ["tun-port", "tun-nocsum", "tun-csum", "tun-remcsum"];

class Fail extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly fatal = true,
  ) {
    super(message);
  }
}

/** ipvsadm's fail(2, ...). */
function fail(message: string): never {
  throw new Fail(2, message);
}

interface Entry {
  cmd: Cmd | -1;
  options: Set<OptName>;
  proto: number;
  addr: number;
  port: number;
  fwmark: number;
  sched: string;
  flags: number;
  timeout: number;
  netmask: number;
  schedFlagsArg: string;
  destAddr: number;
  destPort: number;
  destPortGiven: boolean;
  weight: number;
  fwd: FwdMethod;
  uThreshold: number;
  lThreshold: number;
  tunType: number;
  tunPort: number;
  format: ListFormat;
  daemonState: "master" | "backup";
  daemon: DaemonOptions;
  timeouts: Timeouts;
}

function newEntry(): Entry {
  return {
    cmd: -1,
    options: new Set(),
    proto: 0,
    addr: 0,
    port: 0,
    fwmark: 0,
    sched: "",
    flags: 0,
    timeout: 0,
    netmask: 0xffffffff,
    schedFlagsArg: "",
    destAddr: 0,
    destPort: 0,
    destPortGiven: false,
    weight: 1,
    fwd: FwdMethod.ROUTE, // ipvsadm's default forwarding method is direct routing (-g)
    uThreshold: 0,
    lThreshold: 0,
    tunType: TUN_TYPE_IPIP,
    tunPort: 0,
    format: { ...DEFAULT_LIST_FORMAT },
    daemonState: "master",
    daemon: { mcastIfn: "", syncid: 0 },
    timeouts: { tcp: 0, tcpfin: 0, udp: 0 },
  };
}

function setOption(e: Entry, name: OptName): void {
  if (e.options.has(name)) fail(`multiple '${name}' options specified`);
  e.options.add(name);
}

/** The hint ipvsadm prints (tryhelp_exit) for a line that does not start with a command. */
export function tryHelpMessage(prog: string): string {
  return `Try \`${prog} -h' or '${prog} --help' for more information.`;
}

export const IPV6_REFUSED = "IPv6 is not supported: lvs-ts handles IPv4 services and servers only";

const SERVICE_ADDR = 1;
const SERVICE_PORT = 2;

/**
 * ipvsadm's parse_service(): host[:port]. Returns 0 (SERVICE_NONE) on error, else the
 * SERVICE_ADDR|SERVICE_PORT bits. A host name is looked up as ipvsadm does (netdb.ts hostToAddr);
 * IPv6 is refused.
 */
function parseService(
  buf: string,
  proto: number,
  services: ServicesDb,
  out: { addr: number; port: number },
): number {
  if (/^[0-9]*$/.test(buf)) return 0; // str_is_digit(): a bare number is not an address
  if (buf.startsWith("[") || isIPv6(buf)) fail(`${IPV6_REFUSED} (\`${buf}')`);
  const colon = buf.lastIndexOf(":");
  const host = colon >= 0 ? buf.slice(0, colon) : buf;
  const addr = hostToAddr(host);
  if (addr === undefined) return 0;
  out.addr = addr;
  let result = SERVICE_ADDR;
  if (colon >= 0) {
    result |= SERVICE_PORT;
    const portStr = buf.slice(colon + 1);
    let port = stringToNumber(portStr, 0, 65535);
    if (port === -1) port = services.portOf(portStr, proto) ?? -1;
    if (port === -1) return 0;
    out.port = port;
  }
  return result;
}

function parseTimeout(buf: string | undefined, min: number, max: number): number {
  if (buf === undefined) return DEF_PERSIST_TIMEOUT;
  const v = stringToNumber(buf, min, max);
  if (v === -1) fail(`invalid timeout value \`${buf}' specified`);
  return v;
}

function parseFwmark(buf: string): number {
  // strtol(buf, &end, 10) with l > 0 and l <= UINT_MAX
  if (!/^[ \t\n\v\f\r]*[+-]?[0-9]+$/.test(buf)) fail(`invalid fwmark value \`${buf}' specified`);
  const v = Number.parseInt(buf.trim(), 10);
  if (!(v > 0 && v <= 0xffffffff)) fail(`invalid fwmark value \`${buf}' specified`);
  return v;
}

const START_STATES = new Set(["master", "backup"]);

/** The first option of a line: it must be a command. */
function setCommand(e: Entry, tag: string, arg: string | undefined, prog: string): Command | undefined {
  switch (tag) {
    case "A":
      e.cmd = CMD.ADD;
      return undefined;
    case "E":
      e.cmd = CMD.EDIT;
      return undefined;
    case "D":
      e.cmd = CMD.DEL;
      return undefined;
    case "a":
      e.cmd = CMD.ADDDEST;
      return undefined;
    case "e":
      e.cmd = CMD.EDITDEST;
      return undefined;
    case "d":
      e.cmd = CMD.DELDEST;
      return undefined;
    case "C":
      e.cmd = CMD.FLUSH;
      return undefined;
    case "L":
      e.cmd = CMD.LIST;
      return undefined;
    case "Z":
      e.cmd = CMD.ZERO;
      return undefined;
    case "set":
      e.cmd = CMD.TIMEOUT;
      return undefined;
    case "R":
      e.cmd = CMD.RESTORE;
      return undefined;
    case "S":
      e.cmd = CMD.SAVE;
      return undefined;
    case "start-daemon":
      e.cmd = CMD.STARTD;
      if (!START_STATES.has(arg ?? "")) fail("illegal start-daemon parameter specified");
      e.daemonState = arg as "master" | "backup";
      return undefined;
    case "stop-daemon":
      e.cmd = CMD.STOPD;
      // sic: ipvsadm's message for --stop-daemon says start_daemon
      if (!START_STATES.has(arg ?? "")) fail("illegal start_daemon specified");
      e.daemonState = arg as "master" | "backup";
      return undefined;
    case "h":
      return { kind: "help" };
    case "v":
      return { kind: "version" };
    default:
      throw new Fail(255, tryHelpMessage(prog));
  }
}

/** One option after the command (the second loop of ipvsadm's parse_options). */
function applyOption(
  e: Entry,
  tag: string,
  arg: string | undefined,
  services: ServicesDb,
  badToken: string,
): void {
  const a = arg ?? "";
  const fwd = FWD_BY_TAG.get(tag);
  if (fwd !== undefined) {
    setOption(e, "forwarding-method");
    e.fwd = fwd;
    return;
  }
  switch (tag) {
    case "t":
    case "u": {
      setOption(e, "service-address");
      e.proto = tag === "t" ? IPPROTO_TCP : IPPROTO_UDP;
      const out = { addr: 0, port: 0 };
      if ((parseService(a, e.proto, services, out) & SERVICE_ADDR) === 0) {
        fail("illegal virtual server address[:port] specified");
      }
      e.addr = out.addr;
      e.port = out.port;
      return;
    }
    case "sctp-service":
      fail("SCTP services are not supported: lvs-ts handles TCP, UDP and fwmark services");
      return;
    case "f":
      setOption(e, "service-address");
      e.proto = IPPROTO_TCP; // a sane value, unused for fwmark services (as in ipvsadm)
      e.fwmark = parseFwmark(a);
      return;
    case "s":
      setOption(e, "scheduler");
      e.sched = a;
      return;
    case "p":
      setOption(e, "persistent");
      e.flags |= SVC_F_PERSISTENT;
      e.timeout = parseTimeout(arg, 1, MAX_TIMEOUT);
      return;
    case "M": {
      setOption(e, "netmask");
      const m = inetAton(a);
      if (m === undefined) fail("illegal virtual server persistent mask specified");
      e.netmask = m;
      return;
    }
    case "r": {
      setOption(e, "real-server");
      const out = { addr: 0, port: -1 };
      const parse = parseService(a, e.proto, services, out);
      if ((parse & SERVICE_ADDR) === 0) fail("illegal real server address[:port] specified");
      e.destAddr = out.addr;
      e.destPortGiven = (parse & SERVICE_PORT) !== 0;
      e.destPort = e.destPortGiven ? out.port : 0;
      return;
    }
    case "w": {
      setOption(e, "weight");
      const w = stringToNumber(a, 0, 65535);
      if (w === -1) fail("illegal weight specified");
      e.weight = w;
      return;
    }
    case "x": {
      setOption(e, "u-threshold");
      const v = stringToNumber(a, 0, INT_MAX);
      if (v === -1) fail("illegal u_threshold specified");
      e.uThreshold = v;
      return;
    }
    case "y": {
      setOption(e, "l-threshold");
      const v = stringToNumber(a, 0, INT_MAX);
      if (v === -1) fail("illegal l_threshold specified");
      e.lThreshold = v;
      return;
    }
    case "c":
      setOption(e, "connection");
      return;
    case "n":
      setOption(e, "numeric");
      e.format.numeric = true;
      return;
    case "mcast-interface":
      setOption(e, "mcast-interface");
      e.daemon.mcastIfn = a.slice(0, 15); // IP_VS_IFNAME_MAXLEN - 1
      return;
    case "syncid": {
      setOption(e, "syncid");
      const v = stringToNumber(a, 0, 255);
      if (v === -1) fail("illegal syncid specified");
      e.daemon.syncid = v;
      return;
    }
    case "timeout":
      setOption(e, "timeout");
      return;
    case "daemon":
      setOption(e, "daemon");
      return;
    case "stats":
      setOption(e, "stats");
      e.format.stats = true;
      return;
    case "rate":
      setOption(e, "rate");
      e.format.rate = true;
      return;
    case "thresholds":
      setOption(e, "thresholds");
      e.format.thresholds = true;
      return;
    case "persistent-conn":
      setOption(e, "persistent-conn");
      e.format.persistentConn = true;
      return;
    case "nosort":
      setOption(e, "nosort");
      e.format.nosort = true;
      return;
    case "sort":
      return; // the default; a no-op kept for compatibility
    case "X":
      setOption(e, "exact");
      e.format.exact = true;
      return;
    case "6":
      if (!e.fwmark) fail("-6 used before -f");
      fail(IPV6_REFUSED);
      return;
    case "o":
      setOption(e, "ops");
      e.flags |= SVC_F_ONEPACKET;
      return;
    case "pe":
      setOption(e, "pe");
      fail(`persistence engines are not supported (--pe ${a}): lvs-ts has none yet`);
      return;
    case "b":
      setOption(e, "sched-flags");
      e.schedFlagsArg = a;
      return;
    case "mcast-group": {
      setOption(e, "mcast-group");
      if (a.includes(":")) fail(`invalid IPv6 mcast-group \`${a}'`);
      const g = /^\d{1,3}(\.\d{1,3}){3}$/.test(a) ? inetAton(a) : undefined;
      if (g === undefined || g >>> 28 !== 0xe) fail(`invalid IPv4 mcast-group \`${a}'`);
      e.daemon.mcastGroup = g;
      return;
    }
    case "mcast-port": {
      setOption(e, "mcast-port");
      const v = stringToNumber(a, 1, 65535);
      if (v === -1) fail("illegal mcast-port specified");
      e.daemon.mcastPort = v;
      return;
    }
    case "mcast-ttl": {
      setOption(e, "mcast-ttl");
      const v = stringToNumber(a, 1, 255);
      if (v === -1) fail("illegal mcast-ttl specified");
      e.daemon.mcastTtl = v;
      return;
    }
    case "sync-maxlen": {
      setOption(e, "sync-maxlen");
      const v = stringToNumber(a, 1, 65535 - 20 - 8);
      if (v === -1) fail("illegal sync-maxlen specified");
      e.daemon.syncMaxlen = v;
      return;
    }
    case "tun-info":
      setOption(e, "tun-info");
      e.format.tunInfo = true;
      return;
    case "tun-type": {
      setOption(e, "tun-type");
      const t = (TUN_TYPES as readonly string[]).indexOf(a);
      if (t === -1) fail("illegal tunnel type specified");
      if (t !== TUN_TYPE_IPIP) fail(`tunnel type '${a}' is not implemented yet (only ipip is available)`);
      e.tunType = t;
      return;
    }
    case "tun-port": {
      setOption(e, "tun-port");
      const v = stringToNumber(a, 1, 65535);
      if (v === -1) fail("illegal tunnel port specified");
      e.tunPort = v;
      return;
    }
    case "tun-nocsum":
      setOption(e, "tun-nocsum");
      return;
    case "tun-csum":
      setOption(e, "tun-csum");
      return;
    case "tun-remcsum":
      setOption(e, "tun-remcsum");
      return;
    default:
      // A second command, -h or -v after the command: ipvsadm's "invalid option".
      fail(`invalid option \`${badToken}'`);
  }
}

/** generic_opt_check(): the command/option table. */
function genericOptCheck(cmd: Cmd, options: ReadonlySet<OptName>): void {
  const row = COMMANDS_V_OPTIONS[cmd] ?? "";
  let last = -1;
  for (let j = 0; j < OPT_NAMES.length; j++) {
    const name = OPT_NAMES[j] as OptName;
    const rule = row[j];
    if (!options.has(name)) {
      if (rule === "+") fail(`You need to supply the '${name}' option for the '${CMD_NAMES[cmd]}' command`);
    } else {
      if (rule === "x") fail(`Illegal '${name}' option with the '${CMD_NAMES[cmd]}' command`);
      if (rule === "1") {
        if (last === -1) {
          last = j;
          continue;
        }
        fail(
          `The option '${name}' conflicts with the '${OPT_NAMES[last]}' option in the '${CMD_NAMES[cmd]}' command`,
        );
      }
    }
  }
}

/** tunnel_opt_check(): the tunnel-type/option table. */
function tunnelOptCheck(tunType: number, options: ReadonlySet<OptName>): void {
  const row = TUNNEL_V_OPTIONS[tunType] ?? "";
  const tname = TUN_TYPES[tunType] ?? "?";
  let last: OptName | undefined;
  for (let j = 0; j < TUN_OPTS.length; j++) {
    const name = TUN_OPTS[j] as OptName;
    const rule = row[j];
    if (!options.has(name)) {
      if (rule === "+") fail(`You need to supply the '${name}' option for the '${tname}' tunnel type`);
    } else {
      if (rule === "x") fail(`Illegal '${name}' option with the '${tname}' tunnel type`);
      if (rule === "1") {
        if (last === undefined) {
          last = name;
          continue;
        }
        fail(`The option '${name}' conflicts with the '${last}' option in the '${tname}' tunnel type`);
      }
    }
  }
}

function serviceKey(e: Entry): ServiceKey {
  return e.fwmark
    ? { proto: IPPROTO_TCP, addr: 0, port: 0, fwmark: e.fwmark }
    : { proto: e.proto, addr: e.addr, port: e.port };
}

/** Build the typed command once every check passed (ipvsadm's process_options). */
function finish(e: Entry, cmd: Cmd): Command {
  const svc = serviceKey(e);
  const has = (n: OptName) => e.options.has(n);
  switch (cmd) {
    case CMD.ADD:
    case CMD.EDIT:
      return {
        kind: cmd === CMD.ADD ? "add-service" : "edit-service",
        svc,
        opts: {
          sched: e.sched || DEF_SCHED,
          flags: e.flags,
          timeout: (e.flags & SVC_F_PERSISTENT) !== 0 ? e.timeout : 0,
          netmask: e.netmask,
        },
      };
    case CMD.DEL:
      return { kind: "delete-service", svc };
    case CMD.FLUSH:
      return { kind: "clear" };
    case CMD.LIST: {
      const what = has("connection")
        ? "conns"
        : has("timeout")
          ? "timeout"
          : has("daemon")
            ? "daemon"
            : "services";
      if (what === "services" && has("service-address")) return { kind: "list", what, svc, format: e.format };
      return { kind: "list", what, format: e.format };
    }
    case CMD.ADDDEST:
    case CMD.EDITDEST:
      return {
        kind: cmd === CMD.ADDDEST ? "add-dest" : "edit-dest",
        svc,
        dest: {
          addr: e.destAddr,
          port: e.destPort,
          weight: e.weight,
          fwd: e.fwd,
          uThreshold: e.uThreshold,
          lThreshold: e.lThreshold,
          tunType: e.tunType,
          tunPort: e.tunPort,
        },
      };
    case CMD.DELDEST:
      return { kind: "delete-dest", svc, addr: e.destAddr, port: e.destPort };
    case CMD.TIMEOUT:
      return { kind: "set-timeout", timeouts: e.timeouts };
    case CMD.STARTD:
      return {
        kind: "start-daemon",
        state: e.daemonState,
        daemon: { ...e.daemon, mcastIfn: e.daemon.mcastIfn || DEF_MCAST_IFN },
      };
    case CMD.STOPD:
      return has("syncid")
        ? { kind: "stop-daemon", state: e.daemonState, syncid: e.daemon.syncid }
        : { kind: "stop-daemon", state: e.daemonState };
    case CMD.RESTORE:
      return { kind: "restore" };
    case CMD.SAVE:
      return { kind: "save", numeric: e.format.numeric };
    case CMD.ZERO:
      return has("service-address") ? { kind: "zero", svc } : { kind: "zero" };
  }
}

/**
 * Parse one ipvsadm/lvsadm command line (without the program name). An empty argv lists the
 * table, as ipvsadm does when run without arguments.
 */
export function parseArgs(argv: readonly string[], opts: ParseOptions = {}): ParseResult {
  const prog = opts.prog ?? "lvsadm";
  const services = opts.services ?? systemServices();
  try {
    if (argv.length === 0)
      return { ok: true, cmd: { kind: "list", what: "services", format: { ...DEFAULT_LIST_FORMAT } } };
    // lvs-ts extensions (--health, --import FILE) come first: src/control/health-import.ts
    const ext = parseExtension(argv, prog, opts.inRestore);
    if (ext) return ext;
    if (argv[0] === "--vrrp") {
      if (opts.inRestore)
        return {
          ok: false,
          error: { message: `${prog}: --vrrp cannot be used inside a restore (-R)`, code: 2, fatal: true },
        };
      if (argv.length > 1)
        return {
          ok: false,
          error: {
            message: `${prog}: --vrrp takes no other option (got '${argv[1]}')`,
            code: 2,
            fatal: true,
          },
        };
      return { ok: true, cmd: { kind: "vrrp" } };
    }
    // packet traces: src/control/trace-cmd.ts; their -t/-u/-f words are parsed as -L's
    const trace = parseTraceCommand(argv, prog, opts.inRestore, (words) => {
      const r = parseArgs(["-L", ...words], { prog, services });
      if (!r.ok) return r;
      return { ok: true, cmd: r.cmd.kind === "list" ? r.cmd.svc : undefined };
    });
    if (trace) return trace;
    const popt = new Popt(argv);
    const e = newEntry();

    const first = popt.nextOpt();
    if (first.kind !== "opt") throw new Fail(255, tryHelpMessage(prog));
    const early = setCommand(e, first.tag, first.arg, prog);
    if (early) return { ok: true, cmd: early };

    let n = popt.nextOpt();
    for (; n.kind === "opt"; n = popt.nextOpt()) applyOption(e, n.tag, n.arg, services, popt.badToken);
    if (n.kind === "error") {
      // popt's own error: printed, and parse_options returns -1 (exit 255; a restore goes on).
      throw new Fail(255, `${popt.badToken}: ${POPT_ERRORS[n.err]}`, false);
    }

    if (e.cmd === CMD.TIMEOUT) {
      const t1 = popt.getArg();
      const t2 = popt.getArg();
      const t3 = popt.getArg();
      if (t1 === undefined || t2 === undefined || t3 === undefined)
        fail("--set option requires 3 timeout values");
      e.timeouts = {
        tcp: parseTimeout(t1, 0, MAX_TIMEOUT),
        tcpfin: parseTimeout(t2, 0, MAX_TIMEOUT),
        udp: parseTimeout(t3, 0, MAX_TIMEOUT),
      };
    }
    const extra = popt.getArg();
    if (extra !== undefined) fail(`unexpected argument ${extra}`);

    if (e.schedFlagsArg) {
      const r = parseSchedFlagsIpvsadm(e.sched || DEF_SCHED, e.schedFlagsArg);
      if (typeof r === "string") fail(r);
      e.flags |= r;
    }

    const cmd = e.cmd as Cmd;
    genericOptCheck(cmd, e.options);

    if (cmd === CMD.ADD || cmd === CMD.EDIT) {
      if (!e.fwmark && !e.port && (e.flags & SVC_F_PERSISTENT) === 0) {
        fail("Zero port specified for non-persistent service");
      }
      if ((e.flags & SVC_F_ONEPACKET) !== 0 && !e.fwmark && e.proto !== IPPROTO_UDP) {
        fail("One-Packet Scheduling is only for UDP virtual services");
      }
    }

    if (cmd === CMD.ADDDEST || cmd === CMD.EDITDEST || cmd === CMD.DELDEST) {
      // A server given without a port takes the service's port. (ipvsadm copies the port when it
      // parses -r, so `-r` before `-t` there gets port 0; here the order does not matter.)
      if (!e.destPortGiven) e.destPort = e.port;
    }

    if (cmd === CMD.ADDDEST || cmd === CMD.EDITDEST) {
      // The dest port must equal the service port for DR and TUN (except fwmark services).
      if (!e.fwmark && (e.fwd === FwdMethod.TUNNEL || e.fwd === FwdMethod.ROUTE)) e.destPort = e.port;
      const tunOpts: OptName[] = ["tun-type", "tun-port", "tun-nocsum", "tun-csum", "tun-remcsum"];
      if (tunOpts.some((o) => e.options.has(o)) && e.fwd !== FwdMethod.TUNNEL) {
        fail("Tunnel options conflict with forward method");
      }
      tunnelOptCheck(e.tunType, e.options);
    }

    if (cmd === CMD.LIST) {
      const o = e.options;
      const a = o.has("connection") || o.has("timeout") || o.has("daemon");
      const b = o.has("stats") || o.has("rate") || o.has("thresholds");
      if ((a && b) || ((o.has("timeout") || o.has("daemon")) && o.has("persistent-conn"))) {
        fail("options conflicts in the list command");
      }
    }

    if (cmd === CMD.RESTORE && opts.inRestore) throw new Fail(255, tryHelpMessage(prog));

    return { ok: true, cmd: finish(e, cmd) };
  } catch (err) {
    if (err instanceof Fail)
      return { ok: false, error: { message: err.message, code: err.code, fatal: err.fatal } };
    throw err;
  }
}
