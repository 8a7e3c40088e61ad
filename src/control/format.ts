/**
 * ipvsadm's listings, byte for byte: -L/-l (plain, --stats, --rate, --thresholds,
 * --persistent-conn, --tun-info), a single service (-L -t VIP:PORT), -S (save rules), -c
 * (connections), --timeout and --daemon.
 *
 * Column widths are ipvsadm 1.31's printf formats, quoted next to each line below. C's `%-Ns`
 * pads on the right and `%Nd` on the left and neither truncates, so lines keep the trailing
 * blanks ipvsadm prints (a dest line ends with InActConn padded to 10). Two truncations are
 * ipvsadm's own: a service column at 33 characters and a dest address at 28 (not in save rules).
 *
 * Names: without -n, ipvsadm prints host names (reverse DNS) and port names (getservbyport).
 * We never do DNS from the control plane, so hosts are always numeric; ports are named from
 * /etc/services (read once), which matches ipvsadm on a host whose addresses have no PTR records.
 */

import { forwardingMethod } from "../datapath/modes/index.js";
import { SCHED_FLAGS_MASK } from "../datapath/schedulers/index.js";
import { IPPROTO_TCP, IPPROTO_UDP } from "../lib/proto.js";
import { type Dest, FwdMethod, type Service, SVC_F_ONEPACKET, SVC_F_SYNPROXY } from "../tables/model.js";
import type { RateSource, Rates } from "./estimator.js";
import { ipToString, type ServicesDb } from "./netdb.js";
import { schedFlagsText } from "./sched.js";
import type { ConnEntry, Timeouts } from "./target.js";
import { type ListFormat, TUN_TYPE_IPIP, TUN_TYPES } from "./types.js";

/** The IPVS version ipvsadm reports (the kernel's IP_VS_VERSION_CODE, 1.2.1 since 2.6.x). */
export const IPVS_VERSION = "1.2.1";

export interface FormatContext {
  /** Connection hash buckets, printed as size=. */
  connTabSize: number;
  /** Port names (for output without -n). */
  services: ServicesDb;
  /** Rates for --rate; zeros without one. */
  rates?: RateSource | undefined;
}

// ---- printf helpers ----

/** `%-Ns` */
function left(s: string | number, n: number): string {
  return String(s).padEnd(n);
}

/** `%Ns` / `%Nd` / `%Nllu` */
function right(s: string | number, n: number): string {
  return String(s).padStart(n);
}

/**
 * ipvsadm's print_largenum(): `%9llu` below 10^8; above, `%8llu` of the value in thousands,
 * millions, billions or trillions (powers of 1000) followed by K, M, G or T. With --exact the
 * exact value is printed at least 9 wide (`%*llu` with width len+1 when longer than 8 digits).
 */
export function formatLargeNum(i: number, exact: boolean): string {
  const n = Math.max(0, Math.floor(i));
  if (exact) {
    const s = String(n);
    return right(s, s.length <= 8 ? 9 : s.length + 1);
  }
  if (n < 100_000_000) return right(n, 9);
  if (n < 1_000_000_000) return `${right(Math.floor(n / 1_000), 8)}K`;
  if (n < 100_000_000_000) return `${right(Math.floor(n / 1_000_000), 8)}M`;
  if (n < 100_000_000_000_000) return `${right(Math.floor(n / 1_000_000_000), 8)}G`;
  return `${right(Math.floor(n / 1_000_000_000_000), 8)}T`;
}

// ---- names ----

/** ip_vs_proto_name(): the protocol as the kernel and ipvsadm print it. */
export function protoName(proto: number): string {
  switch (proto) {
    case 0:
      return "IP";
    case IPPROTO_TCP:
      return "TCP";
    case IPPROTO_UDP:
      return "UDP";
    case 132:
      return "SCTP";
    case 1:
      return "ICMP";
    case 58:
      return "ICMPv6";
    default:
      return `IP_${proto}`;
  }
}

/** addrport_to_anyname(): `addr:port`, the port named from services(5) unless numeric. */
export function addrPort(
  addr: number,
  port: number,
  proto: number,
  numeric: boolean,
  services: ServicesDb,
): string {
  if (numeric) return `${ipToString(addr)}:${port}`;
  const p = services.nameOf(port, proto);
  return `${services.hostOf?.(addr) ?? ipToString(addr)}:${p ?? port}`;
}

// ---- sorting (libipvs's ipvs_cmp_services / ipvs_cmp_dests) ----

/**
 * Services by fwmark, then protocol, address and port; so TCP before UDP before fwmark services.
 * (libipvs subtracts 32-bit addresses into an int, which misorders addresses more than 2^31
 * apart; we compare them as numbers.)
 */
export function compareServices(a: Service, b: Service): number {
  return a.fwmark - b.fwmark || a.proto - b.proto || a.addr - b.addr || a.port - b.port;
}

export function compareDests(a: Dest, b: Dest): number {
  return a.addr - b.addr || a.port - b.port;
}

function ordered<T>(list: readonly T[], fmt: ListFormat, cmp: (a: T, b: T) => number): readonly T[] {
  return fmt.nosort ? list : [...list].sort(cmp);
}

// ---- services and dests ----

/** print_title() */
function title(fmt: ListFormat): string {
  const h = left("Prot LocalAddress:Port", 33);
  const sub = "  -> RemoteAddress:Port\n";
  // "%-33s %8s %8s %8s %8s %8s\n"
  if (fmt.stats)
    return `${h} ${["Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"].map((c) => right(c, 8)).join(" ")}\n${sub}`;
  if (fmt.rate)
    return `${h} ${["CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"].map((c) => right(c, 8)).join(" ")}\n${sub}`;
  // "%-33s %-10s %-10s %-10s %-10s\n"
  if (fmt.thresholds) {
    return `${h} ${["Uthreshold", "Lthreshold", "ActiveConn", "InActConn"].map((c) => left(c, 10)).join(" ")}\n${sub}`;
  }
  // "%-33s %-9s %-11s %-10s %-10s\n"
  if (fmt.persistentConn) {
    return `${h} ${left("Weight", 9)} ${left("PersistConn", 11)} ${left("ActiveConn", 10)} ${left("InActConn", 10)}\n${sub}`;
  }
  if (fmt.tunInfo) {
    return (
      "Prot LocalAddress:Port Scheduler Flags\n" +
      "  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n"
    );
  }
  return (
    "Prot LocalAddress:Port Scheduler Flags\n" +
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
  );
}

/** The service column: "TCP  addr:port" or "FWM  mark", cut at 33 characters (svc_name[33] = 0). */
function serviceName(s: Service, numeric: boolean, ctx: FormatContext): string {
  if (s.fwmark) return `FWM  ${s.fwmark}`.slice(0, 33);
  return `${protoName(s.proto)}  ${addrPort(s.addr, s.port, s.proto, numeric, ctx.services)}`.slice(0, 33);
}

/** The service selector in save rules: "-t addr:port", "-u addr:port" or "-f mark". */
function serviceRule(s: Service, numeric: boolean, ctx: FormatContext): string {
  if (s.fwmark) return `-f ${s.fwmark}`;
  return `${s.proto === IPPROTO_TCP ? "-t" : "-u"} ${addrPort(s.addr, s.port, s.proto, numeric, ctx.services)}`;
}

function rateOf(ctx: FormatContext, obj: Service | Dest): Rates {
  return ctx.rates?.rates(obj) ?? { cps: 0, inpps: 0, outpps: 0, inbps: 0, outbps: 0 };
}

/** fwd_tun_info(): the TunnelInfo column. */
function tunInfo(d: Dest): string {
  if (d.fwd !== FwdMethod.TUNNEL) return "n/a";
  return d.tunType === TUN_TYPE_IPIP ? "ipip" : (TUN_TYPES[d.tunType] ?? "n/a");
}

/** print_service_entry() for listings (not save rules). */
function serviceEntry(s: Service, fmt: ListFormat, ctx: FormatContext): string {
  const name = serviceName(s, fmt.numeric, ctx);
  const big = (n: number) => formatLargeNum(n, fmt.exact);
  let out: string;
  if (fmt.stats) {
    out = left(name, 33) + big(s.conns) + big(s.inPkts) + big(s.outPkts) + big(s.inBytes) + big(s.outBytes);
  } else if (fmt.rate) {
    const r = rateOf(ctx, s);
    out = left(name, 33) + big(r.cps) + big(r.inpps) + big(r.outpps) + big(r.inbps) + big(r.outbps);
  } else {
    // "%s %s" then " (flags)", " persistent %u", " mask %s", " ops"
    out = `${name} ${s.schedName}`;
    if ((s.flags & SCHED_FLAGS_MASK) !== 0) out += ` (${schedFlagsText(s.schedName, s.flags)})`;
    if (s.isPersistent()) {
      out += ` persistent ${s.timeout}`;
      if (s.netmask >>> 0 !== 0xffffffff) out += ` mask ${ipToString(s.netmask)}`;
    }
    if ((s.flags & SVC_F_ONEPACKET) !== 0) out += " ops";
    if ((s.flags & SVC_F_SYNPROXY) !== 0) out += " synproxy";
  }
  out += "\n";

  for (const d of ordered(s.dests, fmt, compareDests)) {
    // dname[28] = 0
    const dname = addrPort(d.addr, d.port, s.proto, fmt.numeric, ctx.services).slice(0, 28);
    if (fmt.stats) {
      // "  -> %-28s" then print_largenum() x5
      out += `  -> ${left(dname, 28)}${big(d.conns)}${big(d.inPkts)}${big(d.outPkts)}${big(d.inBytes)}${big(d.outBytes)}\n`;
    } else if (fmt.rate) {
      // "  -> %-28s %8u %8u %8u" then print_largenum() x2
      const r = rateOf(ctx, d);
      out += `  -> ${left(dname, 28)} ${right(r.cps, 8)} ${right(r.inpps, 8)} ${right(r.outpps, 8)}${big(r.inbps)}${big(r.outbps)}\n`;
    } else if (fmt.thresholds) {
      // "  -> %-28s %-10u %-10u %-10u %-10u\n"
      out += `  -> ${left(dname, 28)} ${left(d.uThreshold, 10)} ${left(d.lThreshold, 10)} ${left(d.activeConns, 10)} ${left(d.inactConns, 10)}\n`;
    } else if (fmt.persistentConn) {
      // "  -> %-28s %-9u %-11u %-10u %-10u\n"
      out += `  -> ${left(dname, 28)} ${left(d.weight, 9)} ${left(d.persistConns, 11)} ${left(d.activeConns, 10)} ${left(d.inactConns, 10)}\n`;
    } else if (fmt.tunInfo) {
      // "  -> %-28s %-7s %-13s %-6d %-10u %-10u\n"
      out += `  -> ${left(dname, 28)} ${left(forwardingMethod(d.fwd).label, 7)} ${left(tunInfo(d), 13)} ${left(d.weight, 6)} ${left(d.activeConns, 10)} ${left(d.inactConns, 10)}\n`;
    } else {
      // "  -> %-28s %-7s %-6d %-10u %-10u\n"
      out += `  -> ${left(dname, 28)} ${left(forwardingMethod(d.fwd).label, 7)} ${left(d.weight, 6)} ${left(d.activeConns, 10)} ${left(d.inactConns, 10)}\n`;
    }
  }
  return out;
}

/** list_all(): `-L` / `-Ln` and its variants. */
export function formatList(services: readonly Service[], fmt: ListFormat, ctx: FormatContext): string {
  return joinChunks(formatListChunks(services, fmt, ctx));
}

/** How many services, or connection entries, one piece of a streamed listing holds. */
export const SERVICES_PER_CHUNK = 256;
export const CONNS_PER_CHUNK = 2048;

function joinChunks(chunks: Iterable<string>): string {
  let out = "";
  for (const c of chunks) out += c;
  return out;
}

/**
 * formatList in pieces (lvsd streams big listings over the control socket): the header, then
 * SERVICES_PER_CHUNK services a piece. Each piece is formatted when it is asked for.
 */
export function* formatListChunks(
  services: readonly Service[],
  fmt: ListFormat,
  ctx: FormatContext,
): Generator<string, void, undefined> {
  yield `IP Virtual Server version ${IPVS_VERSION} (size=${ctx.connTabSize})\n${title(fmt)}`;
  const list = ordered(services, fmt, compareServices);
  for (let i = 0; i < list.length; i += SERVICES_PER_CHUNK) {
    let out = "";
    const end = Math.min(list.length, i + SERVICES_PER_CHUNK);
    for (let j = i; j < end; j++) out += serviceEntry(list[j]!, fmt, ctx);
    yield out;
  }
}

/** list_service(): `-L -t VIP:PORT` (no version header). */
export function formatListService(s: Service, fmt: ListFormat, ctx: FormatContext): string {
  return title(fmt) + serviceEntry(s, fmt, ctx);
}

/**
 * `-S` / `-Sn`: one rule per line, restorable with -R. As ipvsadm:
 *   -A <svc> -s <sched> [-p <timeout> [-M <mask>]] [-o] [-b <flags>]
 *   -a <svc> -r <addr:port> <-g|-i|-m> -w <weight>
 * plus, beyond ipvsadm (whose save drops them), ` -x N` / ` -y N` for non-zero thresholds,
 * `--tun-type ipip` for tunnel dests (as ipvsadm 1.31 saves tunnels) and `--fullnat`.
 */
export function formatSave(services: readonly Service[], numeric: boolean, ctx: FormatContext): string {
  return joinChunks(formatSaveChunks(services, numeric, ctx));
}

/** formatSave in pieces of SERVICES_PER_CHUNK services (see formatListChunks). */
export function* formatSaveChunks(
  services: readonly Service[],
  numeric: boolean,
  ctx: FormatContext,
): Generator<string, void, undefined> {
  const list = [...services].sort(compareServices);
  for (let i = 0; i < list.length; i += SERVICES_PER_CHUNK) {
    const end = Math.min(list.length, i + SERVICES_PER_CHUNK);
    let out = "";
    for (let j = i; j < end; j++) out += saveEntry(list[j]!, numeric, ctx);
    yield out;
  }
}

/** One service of -S: its rule, its local addresses, its dests. */
function saveEntry(s: Service, numeric: boolean, ctx: FormatContext): string {
  let out = "";
  const svc = serviceRule(s, numeric, ctx);
  out += `-A ${svc} -s ${s.schedName}`;
  if (s.isPersistent()) {
    out += ` -p ${s.timeout}`;
    if (s.netmask >>> 0 !== 0xffffffff) out += ` -M ${ipToString(s.netmask)}`;
  }
  if ((s.flags & SVC_F_ONEPACKET) !== 0) out += " -o";
  if ((s.flags & SCHED_FLAGS_MASK) !== 0) out += ` -b ${schedFlagsText(s.schedName, s.flags)}`;
  if (s.proxyProtocol !== 0) out += ` --proxy-protocol v${s.proxyProtocol}`;
  if ((s.flags & SVC_F_SYNPROXY) !== 0) out += " --synproxy";
  out += "\n";
  for (const a of s.laddrs?.list() ?? []) out += `--add-laddr ${svc} -z ${ipToString(a)}\n`;
  for (const d of [...s.dests].sort(compareDests)) {
    out += `-a ${svc} -r ${addrPort(d.addr, d.port, s.proto, numeric, ctx.services)} ${forwardingMethod(d.fwd).option} -w ${d.weight}`;
    if (d.fwd === FwdMethod.TUNNEL) out += ` --tun-type ${TUN_TYPES[d.tunType] ?? "ipip"}`;
    if (d.uThreshold) out += ` -x ${d.uThreshold}`;
    if (d.lThreshold) out += ` -y ${d.lThreshold}`;
    out += "\n";
  }
  return out;
}

// ---- connections, timeouts, daemon ----

/**
 * list_conn() / print_conn(): `-c` (`-Lnc`). Expire is the remaining time as mm:ss
 * ("%02d:%02d"). With --persistent-conn the header gains ipvsadm's "pe name" and "pe_data"
 * columns (ours are always empty: no persistence engines).
 */
export function formatConns(conns: readonly ConnEntry[], fmt: ListFormat, services: ServicesDb): string {
  let out = connsHeader(fmt);
  for (const c of conns) out += connLine(c, fmt, services);
  return out;
}

/**
 * Where a streamed -c listing reads its entries: fills `out` with at most `max` entries from
 * position `cursor` on and returns the position to go on from, or -1 after the last entry.
 */
export type ConnReader = (cursor: number, max: number, out: ConnEntry[]) => number;

/**
 * formatConns in pieces of CONNS_PER_CHUNK entries, read from the table as each piece is asked
 * for: neither the entries nor the text of the whole table are ever held at once. The table keeps
 * changing between pieces (as /proc/net/ip_vs_conn does while it is read): an entry added or
 * removed meanwhile may or may not be listed.
 */
export function* formatConnsChunks(
  read: ConnReader,
  fmt: ListFormat,
  services: ServicesDb,
): Generator<string, void, undefined> {
  yield connsHeader(fmt);
  const batch: ConnEntry[] = [];
  let cursor = 0;
  while (cursor >= 0) {
    batch.length = 0;
    cursor = read(cursor, CONNS_PER_CHUNK, batch);
    let out = "";
    for (const c of batch) out += connLine(c, fmt, services);
    if (out !== "") yield out;
  }
}

function connsHeader(fmt: ListFormat): string {
  if (fmt.persistentConn) {
    // "pro expire %-11s %-18s %-18s %-18s %-16s %s\n"
    return `IPVS connection entries\npro expire ${left("state", 11)} ${left("source", 18)} ${left("virtual", 18)} ${left("destination", 18)} ${left("pe name", 16)} pe_data\n`;
  }
  // "pro expire %-11s %-18s %-18s %s\n"
  return `IPVS connection entries\npro expire ${left("state", 11)} ${left("source", 18)} ${left("virtual", 18)} destination\n`;
}

function connLine(c: ConnEntry, fmt: ListFormat, services: ServicesDb): string {
  const proto = protoName(c.proto);
  const lookup = c.proto === IPPROTO_TCP || c.proto === IPPROTO_UDP ? c.proto : 0;
  const secs = Math.max(0, Math.floor(c.expiresInMs / 1000));
  const expire = `${String(Math.floor(secs / 60)).padStart(2, "0")}:${String(secs % 60).padStart(2, "0")}`;
  const cname = addrPort(c.caddr, c.cport, lookup, fmt.numeric, services);
  const vname = addrPort(c.vaddr, c.vport, lookup, fmt.numeric, services);
  const dname = addrPort(c.daddr, c.dport, lookup, fmt.numeric, services);
  // "%-3s %-6s %-11s %-18s %-18s %s\n"
  return `${left(proto, 3)} ${left(expire, 6)} ${left(c.state, 11)} ${left(cname, 18)} ${left(vname, 18)} ${dname}\n`;
}

/** list_timeout(): "Timeout (tcp tcpfin udp): %d %d %d\n". */
export function formatTimeout(t: Timeouts): string {
  return `Timeout (tcp tcpfin udp): ${t.tcp} ${t.tcpfin} ${t.udp}\n`;
}
