/**
 * lvsadm's extensions beyond ipvsadm, taken out of a command line before ipvsadm's parser sees
 * it:
 *   --proxy-protocol v1|v2|off   with -A/-E: PROXY protocol header that FULLNAT sends to the
 *                                real servers of a TCP service.
 *   --synproxy / --no-synproxy   with -A/-E: the SYN proxy on / off for a TCP service (NAT and
 *                                FULLNAT real servers; src/datapath/synproxy.ts). -E without
 *                                either leaves it as it is.
 *   --add-laddr / --del-laddr -t|-u VIP:PORT -z ADDR
 *   --get-laddr -t|-u VIP:PORT   FULLNAT local addresses of a service (DPVS's commands).
 *   --drops                      the data path's drop counters by reason (non-zero ones).
 *   --synproxy-stats             the SYN proxy's counters (cookies sent and proven, handshakes
 *                                with real servers done, RSTs from them, their stale connections
 *                                reset).
 *   --links                      per-link frame and byte counters, with drops.
 *   --sync                       connection sync counters (sent, received, placed, refused).
 *   --sysctl [NAME[=VALUE]]      list or set run-time knobs (net.ipv4.vs.* names; sysctl.ts).
 *   --iptables ARGS...           (first word only) an lvs-iptables command line: the mangle
 *                                table's PREROUTING chain that marks packets for fwmark services
 *                                (iptables.ts); what bin/lvs-iptables sends.
 */
import { u32ToIp } from "../lib/addr.js";
import { ControlError, type ServiceKey, type ServiceTable } from "../tables/services.js";
import { IPTABLES_WORD } from "./iptables.js";
import { parseArgs } from "./ipvsadm.js";
import type { ServicesDb } from "./netdb.js";
import { inetAton } from "./netdb.js";
import type { LinkStatRow } from "./target.js";
import type { ExecResult } from "./types.js";

export type LaddrOp = "add" | "del" | "get";

export interface Extensions {
  /** The command line without our extension words. */
  argv: string[];
  proxyProtocol?: number;
  /** --synproxy (true) or --no-synproxy (false). */
  synProxy?: boolean;
  laddr?: { op: LaddrOp; addr?: number };
  drops?: boolean;
  links?: boolean;
  sync?: boolean;
  synProxyStats?: boolean;
  /** `--sysctl` given: its argument, or null to list all. */
  sysctl?: string | null;
  /** `--iptables` as the first word: the lvs-iptables command line that follows it. */
  iptables?: string[];
  error?: string;
}

const LADDR_OPS: Record<string, LaddrOp> = {
  "--add-laddr": "add",
  "--del-laddr": "del",
  "--get-laddr": "get",
};

/** Split our extension options from an lvsadm command line. */
export function splitExtensions(argv: readonly string[]): Extensions {
  if (argv[0] === IPTABLES_WORD) return { argv: [], iptables: argv.slice(1) };
  const out: Extensions = { argv: [] };
  let laddrAddr: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.startsWith("--") ? a.indexOf("=") : -1;
    const name = eq > 0 ? a.slice(0, eq) : a;
    const value = (): string | undefined => (eq > 0 ? a.slice(eq + 1) : argv[++i]);
    if (name === "--proxy-protocol") {
      const v = value();
      const n = v === "v1" || v === "1" ? 1 : v === "v2" || v === "2" ? 2 : v === "off" || v === "0" ? 0 : -1;
      if (n < 0) return { argv: [], error: `--proxy-protocol takes v1, v2 or off, not '${v ?? ""}'` };
      out.proxyProtocol = n;
    } else if (name === "--synproxy" || name === "--no-synproxy") {
      if (eq > 0) return { argv: [], error: `${name} takes no value` };
      out.synProxy = name === "--synproxy";
    } else if (name === "--drops") {
      out.drops = true;
    } else if (name === "--links") {
      out.links = true;
    } else if (name === "--synproxy-stats") {
      out.synProxyStats = true;
    } else if (name === "--sync") {
      out.sync = true;
    } else if (name === "--sysctl") {
      const next = eq > 0 ? a.slice(eq + 1) : argv[i + 1];
      if (eq < 0 && next !== undefined && !next.startsWith("-")) i++;
      out.sysctl = next !== undefined && (eq > 0 || !next.startsWith("-")) ? next : null;
    } else if (name in LADDR_OPS) {
      if (out.laddr) return { argv: [], error: "only one of --add-laddr, --del-laddr, --get-laddr" };
      out.laddr = { op: LADDR_OPS[name]! };
    } else if (name === "-z" || name === "--laddr") {
      laddrAddr = value();
      if (laddrAddr === undefined) return { argv: [], error: `${name} needs a local address` };
    } else {
      out.argv.push(a);
    }
  }
  if (laddrAddr !== undefined) {
    if (!out.laddr) return { argv: [], error: "-z (local address) goes with --add-laddr or --del-laddr" };
    const addr = inetAton(laddrAddr);
    if (addr === undefined) return { argv: [], error: `illegal local address '${laddrAddr}' specified` };
    out.laddr.addr = addr;
  }
  if (out.laddr && out.laddr.op !== "get" && out.laddr.addr === undefined) {
    return { argv: [], error: `--${out.laddr.op}-laddr needs -z ADDR` };
  }
  return out;
}

/** The service a laddr command names (-t/-u VIP:PORT), parsed as ipvsadm parses -L's. */
function laddrService(argv: readonly string[], services: ServicesDb): ServiceKey | string {
  const parsed = parseArgs(["-L", ...argv], { services });
  if (!parsed.ok) return parsed.error.message;
  if (parsed.cmd.kind !== "list" || !parsed.cmd.svc) return "a local-address command needs -t|-u VIP:PORT";
  return parsed.cmd.svc;
}

/** `--drops`: one line per non-zero drop reason, "reason count", sorted by reason. */
export function formatDrops(counts: Record<string, number> | undefined): string {
  if (!counts) return "";
  return Object.keys(counts)
    .sort()
    .map((k) => `${k.padEnd(20)} ${counts[k]}\n`)
    .join("");
}

/** `--sync`: the sync daemons' counters, "name count", in a fixed order. */
export function formatSyncCounters(rows: readonly [string, number][] | undefined): string {
  if (!rows) return "";
  return rows.map(([k, n]) => `${k.padEnd(28)} ${n}\n`).join("");
}

/** `--links`: a table of per-link counters. */
export function formatLinks(rows: readonly LinkStatRow[] | undefined): string {
  if (!rows) return "";
  const head = `${"Link".padEnd(16)}${"MAC".padEnd(19)}${"RxPkts".padStart(12)}${"RxBytes".padStart(14)}${"RxDrop".padStart(9)}${"TxPkts".padStart(12)}${"TxBytes".padStart(14)}${"TxDrop".padStart(9)}\n`;
  let out = head;
  for (const r of rows) {
    out += `${r.name.padEnd(16)}${r.mac.padEnd(19)}${String(r.rxPackets).padStart(12)}${String(r.rxBytes).padStart(14)}${String(r.rxDropped).padStart(9)}${String(r.txPackets).padStart(12)}${String(r.txBytes).padStart(14)}${String(r.txDropped).padStart(9)}\n`;
  }
  return out;
}

/** Run --add-laddr / --del-laddr / --get-laddr. */
export function runLaddr(
  op: LaddrOp,
  addr: number | undefined,
  argv: readonly string[],
  table: ServiceTable,
  services: ServicesDb,
): ExecResult {
  const key = laddrService(argv, services);
  if (typeof key === "string") return { stdout: "", stderr: `${key}\n`, code: 2 };
  try {
    if (op === "add") table.addLaddr(key, addr!);
    else if (op === "del") table.deleteLaddr(key, addr!);
    else {
      const s = table.find(key);
      if (!s) throw new ControlError("ESRCH", "No such service");
      const vip = `${u32ToIp(s.addr)}:${s.port}`;
      let out = `${"VIP:VPORT".padEnd(24)}${"TOTAL CONNS".padEnd(16)}${"LIP".padEnd(20)}CONNS\n`;
      const pool = s.laddrs;
      const slot = s.proto === 6 ? 0 : 1;
      const addrs = pool?.list() ?? [];
      const total = addrs.reduce((n, a) => n + (pool?.inUse(a, slot) ?? 0), 0);
      if (addrs.length === 0) out += `${vip.padEnd(24)}${String(total).padEnd(16)}\n`;
      addrs.forEach((a, k) => {
        out += `${(k === 0 ? vip : "").padEnd(24)}${(k === 0 ? String(total) : "").padEnd(16)}${u32ToIp(a).padEnd(20)}${pool?.inUse(a, slot) ?? 0}\n`;
      });
      return { stdout: out, stderr: "", code: 0 };
    }
    return { stdout: "", stderr: "", code: 0 };
  } catch (e) {
    if (e instanceof ControlError) {
      const msg =
        e.code === "ESRCH"
          ? "No such service"
          : e.code === "EEXIST"
            ? "Local address already exists"
            : e.code === "ENOENT"
              ? "No such local address"
              : e.message;
      return { stdout: "", stderr: `${msg}\n`, code: 255 };
    }
    throw e;
  }
}
