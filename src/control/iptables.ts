/**
 * `lvs-iptables`: the mangle-table lines of the LVS tutorials with the name changed, run inside
 * lvsd against its mark classifier (src/tables/marks.ts; docs/fwmark.md):
 *
 *   lvs-iptables -t mangle -A PREROUTING -d 192.168.0.220 -p tcp -m multiport --dports 80,443 \
 *                -j MARK --set-mark 666
 *
 * The command line is iptables 1.8's: commands -A -I -D (by rule or number) -F -L -S -Z -P, -h,
 * -V; matches -s/-d ADDR[/MASK] (prefix or dotted mask), -p tcp|udp|icmp|all|N, -i NAME[+],
 * --sport/--dport N[:M] (with -p tcp or udp; `-m tcp`/`-m udp` optional), -m multiport
 * --sports/--dports/--ports a,b:c (at most 15 ports, a range counts two); targets MARK
 * (--set-mark V[/M], --set-xmark V[/M], --and-mark, --or-mark, --xor-mark), ACCEPT, RETURN;
 * `!` before -s -d -p -i and the port options. Mistakes get iptables' messages and exit codes
 * (2 for a bad command line, 1 for a chain or rule that does not exist); listings and -S print
 * as iptables 1.8.9 does (`-L -v -n`: pkts/bytes per rule and on the policy).
 *
 * What lvsd has is the mangle table's PREROUTING chain: other tables and chains are refused
 * with a message that says so. Addresses are numeric (no DNS) and listed numerically.
 *
 * lvsd runs these as lvsadm extension requests: `lvsadm --iptables ARGS...` (what bin/lvs-iptables
 * sends), and `lvsadm -S` prints the rules as `--iptables -t mangle ...` lines that `lvsadm -R`
 * replays (after a `-F PREROUTING` line, so restoring twice does not double them).
 */
import {
  emptyMarkRule,
  type MarkRule,
  MarkRuleError,
  type MarkTable,
  MarkTarget,
  type PortMatch,
  PortWhich,
} from "../tables/marks.js";
import { ipToString, type ServicesDb } from "./netdb.js";
import type { ExecResult } from "./types.js";

export const IPT_PROG = "lvs-iptables";
export const IPT_VERSION = "0.1.0";
/** The iptables release whose command line and output lvs-iptables follows. */
export const IPT_COMPAT = "1.8.9";
/** The lvsadm word that carries an lvs-iptables command line to lvsd. */
export const IPTABLES_WORD = "--iptables";

const IPPROTO_ICMP = 1;
const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;
/** XT_MULTI_PORTS: entries in one multiport match (a range takes two). */
const MULTI_PORTS = 15;
const CHAIN = "PREROUTING";
const OTHER_MANGLE_CHAINS = new Set(["INPUT", "FORWARD", "OUTPUT", "POSTROUTING"]);

export type IptCommand =
  | { kind: "append"; chain: string; rule: MarkRule }
  | { kind: "insert"; chain: string; num: number; rule: MarkRule }
  | { kind: "delete"; chain: string; rule: MarkRule }
  | { kind: "delete-num"; chain: string; num: number }
  | { kind: "flush"; chain?: string }
  | { kind: "zero"; chain?: string }
  | { kind: "list"; chain?: string; fmt: ListOptions; zero: boolean }
  | { kind: "save"; chain?: string }
  | { kind: "policy"; chain: string; target: string }
  | { kind: "help" }
  | { kind: "version" };

export interface ListOptions {
  verbose: boolean;
  numeric: boolean;
  exact: boolean;
  lineNumbers: boolean;
}

export interface IptParsed {
  cmd: IptCommand;
  table: string;
}

/** A refused command line: the text for stderr and the exit status. */
export interface IptError {
  stderr: string;
  code: number;
}

const TRY = `Try \`${IPT_PROG} -h' or '${IPT_PROG} --help' for more information.\n`;

export function iptVersionText(): string {
  return `${IPT_PROG} v${IPT_VERSION} (lvs-ts; iptables v${IPT_COMPAT} compatible)\n`;
}

/** xtables_error(PARAMETER_PROBLEM, ...): status 2, the program and version, the hint. */
function problem(msg: string): IptError {
  return { stderr: `${IPT_PROG} v${IPT_VERSION} (lvs-ts): ${msg}\n${TRY}`, code: 2 };
}

/** An error from the table, as iptables reports it ("iptables: ..."), status 1. */
function runtime(msg: string, code = 1): IptError {
  return { stderr: `${IPT_PROG}: ${msg}\n`, code };
}

class Fail extends Error {
  readonly err: IptError;
  constructor(err: IptError) {
    super(err.stderr);
    this.err = err;
  }
}

const fail = (msg: string): never => {
  throw new Fail(problem(msg));
};

export function iptUsageText(): string {
  const p = IPT_PROG;
  return `${iptVersionText()}
Usage: ${p} -t mangle -[ACD] PREROUTING rule-specification [options]
       ${p} -t mangle -I PREROUTING [rulenum] rule-specification [options]
       ${p} -t mangle -D PREROUTING rulenum
       ${p} -t mangle -[LS] [PREROUTING] [options]
       ${p} -t mangle -[FZ] [PREROUTING]
       ${p} -t mangle -P PREROUTING ACCEPT
       ${p} -[hV]

The mangle table's PREROUTING chain of lvsd: MARK rules give packets the firewall mark that
finds lvsadm's fwmark services (lvsadm -A -f MARK). Rules apply to the packets that look for a
service (the first packet of each connection); docs/fwmark.md.

Commands:
  --append  -A chain            Append to chain
  --delete  -D chain            Delete matching rule from chain
  --delete  -D chain rulenum    Delete rule rulenum (1 = first) from chain
  --insert  -I chain [rulenum]  Insert in chain as rulenum (default 1=first)
  --list    -L [chain]          List the rules in a chain or all chains
  --list-rules -S [chain]       Print the rules in a chain or all chains
  --flush   -F [chain]          Delete all rules in  chain or all chains
  --zero    -Z [chain]          Zero counters in chain or all chains
  --policy  -P chain ACCEPT     The policy (always ACCEPT)

Options:
[!] --proto	-p proto	protocol: tcp, udp, icmp, all or a number
[!] --source	-s address[/mask]
				source specification
[!] --destination -d address[/mask]
				destination specification
[!] --in-interface -i input name[+]
				lvsd link name ([+] for wildcard)
 --jump	-j target		MARK, ACCEPT or RETURN
 --match	-m match		tcp, udp or multiport
  --table	-t table	table to manipulate (only mangle)
  --verbose	-v		verbose mode (counters with -L)
  --numeric	-n		numeric output of addresses and ports
  --exact	-x		expand numbers (display exact values)
  --line-numbers		print line numbers when listing

tcp/udp match (after -p tcp or -p udp):
[!] --source-port|--sport port[:port]
[!] --destination-port|--dport port[:port]

multiport match (-m multiport, with -p tcp or -p udp):
[!] --source-ports|--sports port[,port:port,...]
[!] --destination-ports|--dports port[,port:port,...]
[!] --ports port[,port:port,...]
				up to 15 ports; a range counts two

MARK target:
  --set-xmark value[/mask]	Clear bits in mask and XOR value into nfmark
  --set-mark value[/mask]	Clear bits in mask and OR value into nfmark
  --and-mark bits		Binary AND the nfmark with bits
  --or-mark bits		Binary OR the nfmark with bits
  --xor-mark bits		Binary XOR the nfmark with bits

lvsadm -S saves these rules with the services (as lines lvsadm -R replays).
`;
}

// ---- parsing ----

const LONG: Record<string, string> = {
  "--append": "-A",
  "--insert": "-I",
  "--delete": "-D",
  "--flush": "-F",
  "--list": "-L",
  "--list-rules": "-S",
  "--zero": "-Z",
  "--policy": "-P",
  "--help": "-h",
  "--version": "-V",
  "--table": "-t",
  "--source": "-s",
  "--src": "-s",
  "--destination": "-d",
  "--dst": "-d",
  "--protocol": "-p",
  "--proto": "-p",
  "--in-interface": "-i",
  "--out-interface": "-o",
  "--jump": "-j",
  "--match": "-m",
  "--verbose": "-v",
  "--numeric": "-n",
  "--exact": "-x",
  "--new-chain": "-N",
  "--delete-chain": "-X",
  "--rename-chain": "-E",
  "--replace": "-R",
  "--check": "-C",
};

const COMMANDS = "AIDFLSZPRNXEC";
/** Options `!` may precede. */
const INVERTIBLE = new Set(["-s", "-d", "-p", "-i", "-o"]);

/** strtoul(s, &end, 0) over the whole string, 0..0xffffffff; undefined otherwise. */
function parseUint32(s: string): number | undefined {
  let v: number;
  if (/^0[xX][0-9a-fA-F]+$/.test(s)) v = Number.parseInt(s.slice(2), 16);
  else if (/^0[0-7]*$/.test(s)) v = Number.parseInt(s, 8);
  else if (/^[1-9][0-9]*$/.test(s)) v = Number(s);
  else return undefined;
  return v <= 0xffffffff ? v : undefined;
}

/** Dotted quad (1 to 4 parts, as inet_aton), or undefined. */
function dotted(s: string): number | undefined {
  if (!/^\d{1,3}(\.\d{1,3}){0,3}$/.test(s)) return undefined;
  const parts = s.split(".").map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  while (parts.length < 4) parts.push(0);
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

function prefixMask(bits: number): number {
  return bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
}

/** ADDR[/MASK] with MASK a prefix length or a dotted mask. */
function parseAddr(s: string): { addr: number; mask: number } {
  const slash = s.indexOf("/");
  const host = slash < 0 ? s : s.slice(0, slash);
  let mask = 0xffffffff;
  if (slash >= 0) {
    const m = s.slice(slash + 1);
    if (/^\d+$/.test(m) && !m.includes(".")) {
      const bits = Number(m);
      if (bits > 32) fail(`invalid mask \`${m}' specified`);
      mask = prefixMask(bits);
    } else {
      const dm = dotted(m);
      if (dm === undefined || m.split(".").length !== 4) fail(`invalid mask \`${m}' specified`);
      mask = dm!;
    }
  }
  const addr = dotted(host);
  if (addr === undefined) fail(`host/network \`${host}' not found`);
  return { addr: (addr! & mask) >>> 0, mask };
}

function parseProto(s: string): number {
  const l = s.toLowerCase();
  const named: Record<string, number> = { all: 0, tcp: IPPROTO_TCP, udp: IPPROTO_UDP, icmp: IPPROTO_ICMP };
  if (l in named) return named[l]!;
  if (/^\d+$/.test(s) && Number(s) <= 255) return Number(s);
  return fail(`unknown protocol "${s}" specified`);
}

function parsePort(s: string, proto: number, services: ServicesDb): number {
  if (/^\d+$/.test(s)) {
    const n = Number(s);
    if (n <= 65535) return n;
  } else {
    const p = services.portOf(s, proto);
    if (p !== undefined) return p;
  }
  return fail(`invalid port/service \`${s}' specified`);
}

/** `N`, `N:M`, `:M`, `N:` (tcp/udp match). */
function parsePortRange(s: string, proto: number, services: ServicesDb): [number, number] {
  const colon = s.indexOf(":");
  if (colon < 0) {
    const p = parsePort(s, proto, services);
    return [p, p];
  }
  const a = s.slice(0, colon);
  const b = s.slice(colon + 1);
  const lo = a === "" ? 0 : parsePort(a, proto, services);
  const hi = b === "" ? 65535 : parsePort(b, proto, services);
  if (lo > hi) fail("invalid portrange (min > max)");
  return [lo, hi];
}

/** multiport's list: `a,b:c,...`; at most 15 entries, a range taking two. */
function parsePortList(s: string, proto: number, services: ServicesDb): [number, number][] {
  const out: [number, number][] = [];
  let used = 0;
  for (const item of s.split(",")) {
    const colon = item.indexOf(":");
    if (colon < 0) {
      const p = parsePort(item, proto, services);
      out.push([p, p]);
      used += 1;
    } else {
      const lo = parsePort(item.slice(0, colon), proto, services);
      const hi = parsePort(item.slice(colon + 1), proto, services);
      if (lo > hi) fail("invalid portrange specified");
      out.push([lo, hi]);
      used += 2;
    }
    if (used > MULTI_PORTS) fail("too many ports specified");
  }
  return out;
}

const MARK_OPTS = ["--set-xmark", "--set-mark", "--and-mark", "--or-mark", "--xor-mark"] as const;
type MarkOpt = (typeof MARK_OPTS)[number];

function parseMarkOption(opt: MarkOpt, arg: string): { value: number; mask: number } {
  const bad = (): never => fail(`MARK: bad integer value for option "${opt}", or out of range.\n`);
  const slash = arg.indexOf("/");
  const withMask = opt === "--set-xmark" || opt === "--set-mark";
  if (slash >= 0 && !withMask) bad();
  const v = parseUint32(slash < 0 ? arg : arg.slice(0, slash));
  const m = slash < 0 ? 0xffffffff : parseUint32(arg.slice(slash + 1));
  if (v === undefined || m === undefined) return bad();
  switch (opt) {
    case "--set-xmark":
      return { value: v, mask: m };
    case "--set-mark":
      return { value: v, mask: (v | m) >>> 0 };
    case "--and-mark":
      return { value: 0, mask: ~v >>> 0 };
    case "--or-mark":
      return { value: v, mask: v };
    case "--xor-mark":
      return { value: v, mask: 0 };
  }
  return bad();
}

/** A multiport match being built (`-m multiport` then its one option). */
interface MultiState {
  which?: PortWhich;
  neg: boolean;
  ranges?: [number, number][];
  opt?: string;
}

/** Parse an lvs-iptables command line (without the program name). */
export function parseIptables(argv: readonly string[], services: ServicesDb): IptParsed | IptError {
  try {
    return parse(argv, services);
  } catch (e) {
    if (e instanceof Fail) return e.err;
    throw e;
  }
}

function parse(argv: readonly string[], services: ServicesDb): IptParsed {
  let table = "filter";
  let command = "";
  let chain: string | undefined;
  let num: number | undefined;
  let policyTarget: string | undefined;
  let invert = false;
  const seen = new Set<string>();
  const rule = emptyMarkRule();
  const fmt: ListOptions = { verbose: false, numeric: false, exact: false, lineNumbers: false };
  let zero = false;
  let outIface = false;
  let targetName: string | undefined;
  let markOpt: MarkOpt | undefined;
  /** tcp/udp match: loaded by -m tcp|udp or by the first --sport/--dport after -p tcp|udp. */
  let l4: { proto: number; sport?: PortMatch; dport?: PortMatch } | undefined;
  const multis: MultiState[] = [];
  const order: (PortMatch | "l4")[] = [];
  let multi: MultiState | undefined;

  const optional = (i: number): string | undefined => {
    const next = argv[i + 1];
    return next !== undefined && !next.startsWith("-") && next !== "!" ? next : undefined;
  };
  const setCommand = (c: string) => {
    if (invert) fail("unexpected '!' flag");
    const both = command === "L" && c === "Z" ? "LZ" : command === "Z" && c === "L" ? "LZ" : "";
    if (command !== "" && both === "") fail(`Cannot use -${c} with -${command}\n`);
    if (both) {
      command = "L";
      zero = true;
    } else command = c;
  };
  const once = (opt: string) => {
    if (seen.has(opt)) fail(`multiple ${opt} flags not allowed`);
    seen.add(opt);
  };
  const protoForPorts = (): number => {
    if (rule.protoNeg) return fail("multiport only works with TCP, UDP, UDPLITE, SCTP and DCCP");
    if (rule.proto === 0)
      return fail("multiport needs `-p tcp', `-p udp', `-p udplite', `-p sctp' or `-p dccp'");
    if (rule.proto !== IPPROTO_TCP && rule.proto !== IPPROTO_UDP)
      return fail("multiport only works with TCP, UDP, UDPLITE, SCTP and DCCP");
    return rule.proto;
  };

  for (let i = 0; i < argv.length; i++) {
    let a = argv[i]!;
    if (a === "!") {
      if (invert) fail("multiple consecutive ! not allowed");
      invert = true;
      continue;
    }
    let inlineArg: string | undefined;
    if (a.startsWith("--") && a.includes("=")) {
      inlineArg = a.slice(a.indexOf("=") + 1);
      a = a.slice(0, a.indexOf("="));
    }
    const opt = LONG[a] ?? a;
    const arg = (): string => {
      if (inlineArg !== undefined) return inlineArg;
      const v = argv[i + 1];
      if (v === undefined) return fail(`option "${a}" requires an argument`);
      i++;
      // `-s ! ADDR` (negation inside the option) is gone from iptables 1.8: ADDR is then a stray word
      if (v === "!" && INVERTIBLE.has(opt))
        throw new Fail({ stderr: `Bad argument \`${argv[i + 1] ?? ""}'\n${TRY}`, code: 2 });
      return v;
    };
    if (/^-[A-Za-z]$/.test(opt) && COMMANDS.includes(opt[1]!)) {
      const c = opt[1]!;
      if ("RNXEC".includes(c))
        fail(`-${c} is not supported by ${IPT_PROG} (lvsd has the PREROUTING chain only)`);
      setCommand(c);
      if (c === "A" || c === "I" || c === "D" || c === "P") {
        chain = arg();
        if (c === "I" || c === "D") {
          const n = optional(i);
          if (n !== undefined) {
            i++;
            if (!/^\d+$/.test(n) || Number(n) < 1) fail(`Invalid rule number \`${n}'`);
            num = Number(n);
          }
        }
        if (c === "P") {
          policyTarget = argv[i + 1];
          if (policyTarget === undefined) fail(`option "-P" requires an argument`);
          i++;
        }
      } else {
        const n = optional(i);
        if (n !== undefined) {
          chain = n;
          i++;
        }
      }
      continue;
    }
    if (invert && !INVERTIBLE.has(opt) && !opt.startsWith("--")) {
      if (opt === "-j") fail("cannot have ! before -j");
      if (opt === "-m") fail("unexpected ! flag before --match");
      if (opt === "-t") fail("unexpected ! flag before --table");
      fail(`cannot have ! before ${opt}`);
    }
    const neg = invert;
    invert = false;
    switch (opt) {
      case "-h":
        return { cmd: { kind: "help" }, table };
      case "-V":
        return { cmd: { kind: "version" }, table };
      case "-t":
        table = arg();
        continue;
      case "-v":
        fmt.verbose = true;
        continue;
      case "-n":
        fmt.numeric = true;
        continue;
      case "-x":
        fmt.exact = true;
        continue;
      case "--line-numbers":
        fmt.lineNumbers = true;
        continue;
      case "-s":
      case "-d": {
        once(opt);
        const { addr, mask } = parseAddr(arg());
        if (opt === "-s") {
          rule.src = addr;
          rule.srcMask = mask;
          rule.srcNeg = neg;
        } else {
          rule.dst = addr;
          rule.dstMask = mask;
          rule.dstNeg = neg;
        }
        continue;
      }
      case "-p":
        once(opt);
        rule.proto = parseProto(arg());
        rule.protoNeg = neg && rule.proto !== 0;
        continue;
      case "-i":
      case "-o": {
        once(opt);
        const name = arg();
        if (name.length >= 16) fail(`interface name \`${name}' must be shorter than IFNAMSIZ (16)`);
        if (opt === "-o") outIface = true;
        else {
          rule.iface = name;
          rule.ifaceNeg = neg;
        }
        continue;
      }
      case "-j": {
        once(opt);
        targetName = arg();
        if (targetName === "MARK") rule.target = MarkTarget.MARK;
        else if (targetName === "ACCEPT") rule.target = MarkTarget.ACCEPT;
        else if (targetName === "RETURN") rule.target = MarkTarget.RETURN;
        else fail(`target \`${targetName}' is not supported by ${IPT_PROG} (MARK, ACCEPT, RETURN)`);
        continue;
      }
      case "-m": {
        const name = arg().toLowerCase();
        if (name === "multiport") {
          multi = { neg: false };
          multis.push(multi);
        } else if (name === "tcp" || name === "udp") {
          const p = name === "tcp" ? IPPROTO_TCP : IPPROTO_UDP;
          if (rule.proto !== p || rule.protoNeg) fail(`${name} match: needs \`-p ${name}' before it`);
          if (!l4) {
            l4 = { proto: p };
            order.push("l4");
          }
        } else fail(`Couldn't load match \`${name}':No such file or directory\n`);
        continue;
      }
    }
    // options of the loaded matches and target
    if (opt === "--sport" || opt === "--source-port" || opt === "--dport" || opt === "--destination-port") {
      const src = opt === "--sport" || opt === "--source-port";
      if (!l4) {
        if ((rule.proto !== IPPROTO_TCP && rule.proto !== IPPROTO_UDP) || rule.protoNeg)
          fail(`unknown option "${a}"`);
        l4 = { proto: rule.proto };
        order.push("l4");
      }
      const key = src ? "sport" : "dport";
      if (l4[key])
        fail(
          `${l4.proto === IPPROTO_TCP ? "tcp" : "udp"}: option "--${src ? "source" : "destination"}-port" can only be used once.\n`,
        );
      const range = parsePortRange(arg(), l4.proto, services);
      l4[key] = {
        match: l4.proto === IPPROTO_TCP ? "tcp" : "udp",
        which: src ? PortWhich.SRC : PortWhich.DST,
        neg,
        ranges: [range],
      };
      continue;
    }
    const mp: Record<string, [PortWhich, string]> = {
      "--sports": [PortWhich.SRC, "--source-ports"],
      "--source-ports": [PortWhich.SRC, "--source-ports"],
      "--dports": [PortWhich.DST, "--destination-ports"],
      "--destination-ports": [PortWhich.DST, "--destination-ports"],
      "--ports": [PortWhich.EITHER, "--ports"],
    };
    if (opt in mp && multi) {
      const [which, name] = mp[opt]!;
      if (multi.opt !== undefined) {
        if (multi.opt === name) fail(`multiport: option "${name}" can only be used once.\n`);
        fail(`multiport: option "${name}" cannot be used together with "${multi.opt}".\n`);
      }
      const proto = protoForPorts();
      multi.opt = name;
      multi.which = which;
      multi.neg = neg;
      multi.ranges = parsePortList(arg(), proto, services);
      order.push({ match: "multiport", which, neg, ranges: multi.ranges });
      continue;
    }
    if ((MARK_OPTS as readonly string[]).includes(opt) && rule.target === MarkTarget.MARK) {
      const o = opt as MarkOpt;
      if (neg) fail(`MARK: option "${o}" cannot be inverted.\n`);
      if (markOpt !== undefined) {
        if (markOpt === o) fail(`MARK: option "${o}" can only be used once.\n`);
        fail(`MARK: option "${o}" cannot be used together with "${markOpt}".\n`);
      }
      markOpt = o;
      const { value, mask } = parseMarkOption(o, arg());
      rule.value = value;
      rule.mask = mask;
      continue;
    }
    if (opt.startsWith("-")) fail(`unknown option "${a}"`);
    throw new Fail({ stderr: `Bad argument \`${a}'\n${TRY}`, code: 2 });
  }
  if (invert) fail("unexpected '!' flag");
  if (command === "") fail("no command specified");
  for (const m of multis) if (m.opt === undefined) fail("multiport expection an option");
  if (rule.target === MarkTarget.MARK && markOpt === undefined)
    fail("MARK: One of the --set-xmark, --{and,or,xor,set}-mark options is required");
  if (outIface && chain === CHAIN) fail("Can't use -o with PREROUTING\n");
  // the rule's port matches in the order given: tcp/udp's (sport then dport), multiport's
  rule.ports = order.flatMap((o) =>
    o === "l4" ? [l4!.sport, l4!.dport].filter((p): p is PortMatch => !!p) : [o],
  );

  const ruleGiven =
    seen.size > 0 ||
    rule.ports.length > 0 ||
    targetName !== undefined ||
    multis.length > 0 ||
    l4 !== undefined;
  const listOnly = command === "L" || command === "S" || command === "F" || command === "Z";
  if (listOnly && ruleGiven)
    fail(`Illegal option \`${describeOption(seen, targetName)}' with this command\n`);
  let cmd: IptCommand;
  switch (command) {
    case "A":
      cmd = { kind: "append", chain: chain!, rule };
      break;
    case "I":
      cmd = { kind: "insert", chain: chain!, num: num ?? 1, rule };
      break;
    case "D":
      if (num !== undefined) {
        if (ruleGiven) fail(`Bad argument \`${argv.find((w) => w.startsWith("-") && w !== "-D") ?? ""}'`);
        cmd = { kind: "delete-num", chain: chain!, num };
      } else cmd = { kind: "delete", chain: chain!, rule };
      break;
    case "F":
      cmd = chain ? { kind: "flush", chain } : { kind: "flush" };
      break;
    case "Z":
      cmd = chain ? { kind: "zero", chain } : { kind: "zero" };
      break;
    case "L":
      cmd = chain ? { kind: "list", chain, fmt, zero } : { kind: "list", fmt, zero };
      break;
    case "S":
      cmd = chain ? { kind: "save", chain } : { kind: "save" };
      break;
    case "P":
      cmd = { kind: "policy", chain: chain!, target: policyTarget! };
      break;
    default:
      return fail("no command specified");
  }
  return { cmd, table };
}

function describeOption(seen: Set<string>, target: string | undefined): string {
  const first = [...seen][0];
  if (first) return first;
  return target !== undefined ? "-j" : "-m";
}

// ---- printing ----

function maskText(mask: number): string {
  const m = mask >>> 0;
  for (let bits = 0; bits <= 32; bits++) if (prefixMask(bits) === m) return `${bits}`;
  return ipToString(m);
}

/** -S's address: always with its mask ("/32"). */
function saveAddr(addr: number, mask: number): string {
  return `${ipToString(addr & mask)}/${maskText(mask)}`;
}

/** -L's address: "anywhere" (without -n) for mask 0, no suffix for /32. */
function listAddr(addr: number, mask: number, numeric: boolean): string {
  if (mask >>> 0 === 0 && !numeric) return "anywhere";
  const m = mask >>> 0 === 0xffffffff ? "" : `/${maskText(mask)}`;
  return `${ipToString(addr & mask)}${m}`;
}

const PROTO_NAMES: Record<number, string> = { 0: "all", 1: "icmp", 6: "tcp", 17: "udp" };

function hex(n: number): string {
  return `0x${(n >>> 0).toString(16)}`;
}

function portText(port: number, proto: number, numeric: boolean, services: ServicesDb): string {
  return (numeric ? undefined : services.nameOf(port, proto)) ?? `${port}`;
}

/** One rule as -S prints it (without "-A PREROUTING"): the form -D compares too. */
export function ruleSpec(r: MarkRule): string {
  let out = "";
  if (r.srcMask !== 0 || r.srcNeg) out += `${r.srcNeg ? " !" : ""} -s ${saveAddr(r.src, r.srcMask)}`;
  if (r.dstMask !== 0 || r.dstNeg) out += `${r.dstNeg ? " !" : ""} -d ${saveAddr(r.dst, r.dstMask)}`;
  if (r.iface !== "") out += `${r.ifaceNeg ? " !" : ""} -i ${r.iface}`;
  if (r.proto !== 0) out += `${r.protoNeg ? " !" : ""} -p ${PROTO_NAMES[r.proto] ?? r.proto}`;
  let l4Done = false;
  for (const p of r.ports) {
    if (p.match === "multiport") {
      const list = p.ranges.map(([lo, hi]) => (lo === hi ? `${lo}` : `${lo}:${hi}`)).join(",");
      const name =
        p.which === PortWhich.SRC ? "--sports" : p.which === PortWhich.DST ? "--dports" : "--ports";
      out += ` -m multiport${p.neg ? " !" : ""} ${name} ${list}`;
    } else {
      if (l4Done) continue;
      l4Done = true;
      out += ` -m ${p.match}`;
      for (const q of r.ports) {
        if (q.match !== p.match) continue;
        const [lo, hi] = q.ranges[0]!;
        out += `${q.neg ? " !" : ""} ${q.which === PortWhich.SRC ? "--sport" : "--dport"} ${lo === hi ? lo : `${lo}:${hi}`}`;
      }
    }
  }
  if (r.target === MarkTarget.MARK) out += ` -j MARK --set-xmark ${hex(r.value)}/${hex(r.mask)}`;
  else if (r.target === MarkTarget.ACCEPT) out += " -j ACCEPT";
  else if (r.target === MarkTarget.RETURN) out += " -j RETURN";
  return out;
}

/** libxt_MARK's print (revision 2). */
function markText(r: MarkRule): string {
  const v = r.value >>> 0;
  const m = r.mask >>> 0;
  if (v === 0) return ` MARK and ${hex(~m)}`;
  if (v === m) return ` MARK or ${hex(v)}`;
  if (m === 0) return ` MARK xor ${hex(v)}`;
  if (m === 0xffffffff) return ` MARK set ${hex(v)}`;
  return ` MARK xset ${hex(v)}/${hex(m)}`;
}

/** The matches and target part of a -L line. */
function matchesText(r: MarkRule, numeric: boolean, services: ServicesDb): string {
  let out = "";
  let l4Done = false;
  for (const p of r.ports) {
    const port = (n: number) => portText(n, r.proto, numeric, services);
    if (p.match === "multiport") {
      const name = p.which === PortWhich.SRC ? "sports" : p.which === PortWhich.DST ? "dports" : "ports";
      const list = p.ranges.map(([lo, hi]) => (lo === hi ? port(lo) : `${port(lo)}:${port(hi)}`)).join(",");
      out += ` multiport ${name} ${p.neg ? " !" : ""}${list}`;
    } else {
      if (l4Done) continue;
      l4Done = true;
      out += ` ${p.match}`;
      for (const which of [PortWhich.SRC, PortWhich.DST]) {
        const q = r.ports.find((x) => x.match === p.match && x.which === which);
        if (!q) continue;
        const [lo, hi] = q.ranges[0]!;
        if (lo === 0 && hi === 65535 && !q.neg) continue;
        const name = which === PortWhich.SRC ? "spt" : "dpt";
        const inv = q.neg ? "!" : "";
        out += lo === hi ? ` ${name}:${inv}${port(lo)}` : ` ${name}s:${inv}${port(lo)}:${port(hi)}`;
      }
    }
  }
  if (r.target === MarkTarget.MARK) out += markText(r);
  return out;
}

/** xtables_print_num: with -x "%8llu ", else "%5llu " or K/M/G/T over 99999. */
function num(n: number, exact: boolean, table = true): string {
  if (exact) return table ? `${String(n).padStart(8)} ` : `${n} `;
  if (n <= 99999) return table ? `${String(n).padStart(5)} ` : `${n} `;
  let x = n;
  for (const unit of ["K", "M", "G"]) {
    x = Math.floor((x + 500) / 1000);
    if (x <= 9999) return table ? `${String(x).padStart(4)}${unit} ` : `${x}${unit} `;
  }
  x = Math.floor((x + 500) / 1000);
  return table ? `${String(x).padStart(4)}T ` : `${x}T `;
}

const TARGET_NAMES: Record<number, string> = {
  [MarkTarget.NONE]: "",
  [MarkTarget.MARK]: "MARK",
  [MarkTarget.ACCEPT]: "ACCEPT",
  [MarkTarget.RETURN]: "RETURN",
};

/** `-L` of PREROUTING, as iptables 1.8.9 prints it (print_header and print_firewall). */
export function formatRuleList(
  rules: readonly MarkRule[],
  policy: readonly [number, number],
  fmt: ListOptions,
  services: ServicesDb,
): string {
  const { verbose, numeric, exact, lineNumbers } = fmt;
  let out = `Chain ${CHAIN} (policy ACCEPT`;
  if (verbose) out += ` ${num(policy[0], exact, false)}packets, ${num(policy[1], exact, false)}bytes`;
  out += ")\n";
  if (lineNumbers) out += "num  ";
  if (verbose) out += exact ? `${"pkts".padStart(8)} ${"bytes".padStart(10)} ` : " pkts bytes ";
  out += `${"target".padEnd(9)}  prot opt`;
  if (verbose) out += ` ${"in".padEnd(6)} ${"out".padEnd(6)} `;
  out += ` ${"source".padEnd(19)}  ${"destination".padEnd(19)} \n`;
  rules.forEach((r, k) => {
    let line = lineNumbers ? `${String(k + 1).padEnd(4)} ` : "";
    if (verbose) line += num(r.pkts, exact) + num(r.bytes, exact);
    line += `${TARGET_NAMES[r.target]!.padEnd(9)} `;
    line += r.protoNeg ? "!" : " ";
    line += (numeric ? `${r.proto}` : (PROTO_NAMES[r.proto] ?? `${r.proto}`)).padEnd(5);
    line += "-- ";
    if (verbose) {
      const inName = r.iface === "" ? (numeric ? "*" : "any") : r.iface;
      line += ` ${`${r.ifaceNeg ? "!" : ""}${inName}`.padEnd(6)} ${(numeric ? "*" : "any").padEnd(6)} `;
    }
    line += `${r.srcNeg ? "!" : " "}${listAddr(r.src, r.srcMask, numeric).padEnd(19)} `;
    line += `${r.dstNeg ? "!" : " "}${listAddr(r.dst, r.dstMask, numeric).padEnd(19)} `;
    line += matchesText(r, numeric, services);
    out += `${line}\n`;
  });
  return out;
}

/** `-S`: the policy, then one `-A PREROUTING ...` line per rule. */
export function formatRuleSave(rules: readonly MarkRule[]): string {
  let out = `-P ${CHAIN} ACCEPT\n`;
  for (const r of rules) out += `-A ${CHAIN}${ruleSpec(r)}\n`;
  return out;
}

/**
 * The rules as lines of `lvsadm -S` (what `lvsadm -R` replays): nothing without rules, else a
 * flush of the chain and one append per rule, each behind the `--iptables` word.
 */
export function formatMarksForSave(marks: MarkTable | undefined): string {
  if (!marks || marks.length === 0) return "";
  let out = `${IPTABLES_WORD} -t mangle -F ${CHAIN}\n`;
  for (const r of marks.list()) out += `${IPTABLES_WORD} -t mangle -A ${CHAIN}${ruleSpec(r)}\n`;
  return out;
}

// ---- running ----

/** Whether an lvs-iptables command line changes lvsd (for the control socket's log). */
export function iptablesIsChange(argv: readonly string[], services: ServicesDb): boolean {
  const p = parseIptables(argv, services);
  if ("cmd" in p) {
    const k = p.cmd.kind;
    return !(k === "help" || k === "version" || k === "save" || (k === "list" && !p.cmd.zero));
  }
  return argv.some(
    (a) => /^-[AIDFZP]$/.test(a) || ["--append", "--insert", "--delete", "--flush", "--zero"].includes(a),
  );
}

function checkChain(chain: string | undefined): IptError | undefined {
  if (chain === undefined || chain === CHAIN) return undefined;
  if (OTHER_MANGLE_CHAINS.has(chain))
    return runtime(`chain \`${chain}' is not supported: lvsd has the mangle table's PREROUTING chain only.`);
  return runtime("No chain/target/match by that name.");
}

/** Run an lvs-iptables command line against lvsd's chain. */
export function runIptables(
  argv: readonly string[],
  marks: MarkTable | undefined,
  services: ServicesDb,
): ExecResult {
  const p = parseIptables(argv, services);
  if (!("cmd" in p)) return { stdout: "", stderr: p.stderr, code: p.code };
  const { cmd, table } = p;
  if (cmd.kind === "help") return { stdout: iptUsageText(), stderr: "", code: 0 };
  if (cmd.kind === "version") return { stdout: iptVersionText(), stderr: "", code: 0 };
  const bad = (e: IptError): ExecResult => ({ stdout: "", stderr: e.stderr, code: e.code });
  if (table !== "mangle") {
    return bad({
      stderr: `${IPT_PROG} v${IPT_VERSION} (lvs-ts): can't initialize ${IPT_PROG} table \`${table}': lvsd has the mangle table only (-t mangle)\n`,
      code: 3,
    });
  }
  const chainErr = checkChain("chain" in cmd ? cmd.chain : undefined);
  if (chainErr) return bad(chainErr);
  if (!marks) return bad(runtime("this director has no mark classifier"));
  try {
    switch (cmd.kind) {
      case "append":
        marks.append(cmd.rule);
        break;
      case "insert":
        marks.insert(cmd.num, cmd.rule);
        break;
      case "delete": {
        const spec = ruleSpec(cmd.rule);
        marks.deleteMatching((r) => ruleSpec(r) === spec);
        break;
      }
      case "delete-num":
        marks.deleteAt(cmd.num);
        break;
      case "flush":
        marks.flush();
        break;
      case "zero":
        marks.zero();
        break;
      case "policy":
        if (cmd.target !== "ACCEPT")
          return bad(
            runtime(`policy ${cmd.target} is not supported: lvsd's PREROUTING chain accepts every packet.`),
          );
        break;
      case "list": {
        const text = formatRuleList(marks.list(), marks.policyCounters(), cmd.fmt, services);
        if (cmd.zero) marks.zero();
        return { stdout: text, stderr: "", code: 0 };
      }
      case "save":
        return { stdout: formatRuleSave(marks.list()), stderr: "", code: 0 };
    }
  } catch (e) {
    if (e instanceof MarkRuleError) return bad(runtime(e.message));
    throw e;
  }
  return { stdout: "", stderr: "", code: 0 };
}
