/**
 * lvsd's command line. Parsing is pure (no I/O) so it can be tested; errors are LvsdArgError
 * with a message that names the bad argument.
 */
import { isIP } from "node:net";
import { DEFAULT_LOG_LEVEL, isLogLevel, LOG_LEVELS, type LogLevel } from "../../control/observe/log.js";
import { AddrError, ipToU32, macToBytes } from "../../lib/addr.js";

export const DEFAULT_CONTROL = "/run/lvsd/control.sock";

export interface LinkSpec {
  kind: "tap" | "raw" | "xdp";
  /** TAP device name or interface name. */
  name: string;
  /** xdp: the interface queue to bind (default 0). */
  queue?: number;
  /** xdp: which frames the XDP program redirects to lvsd (default "all": a dedicated interface). */
  redirect?: "all" | "mac";
  bridge?: string;
  mtu?: number;
  mac?: Uint8Array;
  /** raw and xdp links: SO_BUSY_POLL in µs (with SO_PREFER_BUSY_POLL); absent = off. */
  busyPoll?: number;
  /** raw and xdp links: answer SYNs to --synproxy services in XDP (src/datapath/synresponder.ts), in this mode. */
  synproxyXdp?: "auto" | "drv" | "skb";
  /** raw links: "drop" keeps the host's own stack from the frames on the interface (kernel-ingress.ts). */
  kernel?: "pass" | "drop";
  addrs: { addr: number; prefix: number }[];
}

export interface RouteSpec {
  net: number;
  prefix: number;
  via: number;
}

export interface NeighSpec {
  addr: number;
  mac: Uint8Array;
}

export interface LvsdArgs {
  links: LinkSpec[];
  routes: RouteSpec[];
  neighs: NeighSpec[];
  control: string;
  maxConns: number;
  /**
   * `--workers N`: run the data path in N worker threads (docs/workers.md), each with its own
   * connection table and an AF_PACKET socket per link in a fanout group; 0 (default): in the
   * main thread, as before.
   */
  workers: number;
  /** ipvsadm -S format file applied at start (like `lvsadm -R < FILE`). */
  restore?: string;
  /** `--sysctl NAME=VALUE` (repeatable): net.ipv4.vs.* knobs set at start (`lvsadm --sysctl`). */
  sysctls: string[];
  /** keepalived.conf with virtual servers and health checks (src/control/config, src/control/health). */
  config?: string;
  /** `--http ADDR:PORT`: metrics, status page and API (src/control/observe). */
  http?: HttpListen;
  /** `--http-allow-remote`: let --http listen on a non-loopback address. */
  httpAllowRemote: boolean;
  /** `--config-reload-allow-empty`: a reload may remove every virtual server. */
  configReloadAllowEmpty: boolean;
  /** `--log-level`: the least severe level logged (src/control/observe/log.ts). */
  logLevel: LogLevel;
  quiet: boolean;
  help: boolean;
  version: boolean;
}

export interface HttpListen {
  /** Address to bind: an IPv4 or IPv6 literal, or "localhost". */
  host: string;
  port: number;
}

export class LvsdArgError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LvsdArgError";
  }
}

export const LVSD_USAGE = `Usage: lvsd [options]

Forwarding daemon of lvs-ts, a userspace IPVS. Runs until SIGINT/SIGTERM, then removes
the TAP devices it created. Needs root (CAP_NET_ADMIN, CAP_NET_RAW).

Options:
  --link tap=NAME[,bridge=BR][,mtu=N][,mac=MAC],addr=IP/PREFIX[,addr=IP/PREFIX...]
        Create (or attach to) TAP device NAME, optionally enslaved to bridge BR.
  --link raw=IFNAME,addr=IP/PREFIX[,addr=...][,busy-poll=USECS][,kernel=pass|drop]
        [,synproxy-xdp=auto|drv|skb]
        Attach to an existing interface with an AF_PACKET socket (PACKET_MMAP rings:
        frames are rewritten where the kernel put them and written once into the TX
        ring, qdisc bypassed). busy-poll=USECS turns on busy polling (SO_BUSY_POLL with
        SO_PREFER_BUSY_POLL; off by default): waiting for frames spins on the NIC's
        NAPI context up to USECS instead of sleeping until its interrupt, for lower
        latency at the cost of CPU; only NICs with NAPI gain. The host must not
        configure the VIPs (or the director's addresses given here) on that interface:
        the kernel would answer ARP for them and reset TCP connections it does not know.
        The socket joins the multicast groups of VRRP (224.0.0.18) and of connection
        sync (224.0.0.81, the default group; another --mcast-group is not received).
        kernel=drop (on an interface given to lvsd alone) keeps the host's own network
        stack from the frames arriving there: an nftables netdev ingress chain with
        policy drop (needs nft), which lvsd's socket sees the frames before; lvsd
        deletes it when it exits. Without it the kernel also routes and drops every
        frame lvsd forwards, which can cost as much CPU as forwarding it. Default pass.
        synproxy-xdp= (off by default) attaches an XDP program (built in) that answers
        SYNs to --synproxy services with lvsd's own cookie SYN-ACK in the kernel's
        receive path, so that a SYN flood never reaches lvsd; the client's ACK still
        comes to lvsd, which checks the cookie. drv: driver (native) XDP; skb: generic
        XDP; auto: generic on veth (whose native XDP_TX needs NAPI on the peer), else
        driver mode where the driver has it. Not with --workers (docs/security.md).
        On an xdp= link (with redirect=all) the same program also hands every other
        frame to lvsd's AF_XDP socket, in the mode synproxy-xdp= names.
  --link xdp=IFNAME[,queue=N][,redirect=all|mac][,busy-poll=USECS][,synproxy-xdp=auto|drv|skb],
        addr=IP/PREFIX[,addr=...]
        Attach to an existing interface with an AF_XDP socket on queue N (default 0) and
        an XDP program (built in, no clang/libbpf) that redirects that queue's frames to
        it: every frame with redirect=all (default: the interface is lvsd's alone), or
        only frames to the interface's MAC and to broadcast/multicast with redirect=mac
        (the rest go to the kernel). Driver (native) XDP where the driver has it, else
        generic; zero-copy where the driver supports it, else copy mode. All xdp links
        share one UMEM: frames are forwarded between them (and back out of the link they
        came in by) by descriptor, without a copy. Same address rules as raw=.
        busy-poll=USECS (off by default): lvsd runs the queue's receive work (the XDP
        program, the copy into the UMEM) itself, in its receive calls (preferred busy
        polling), and while the link is overloaded (the kernel drops frames at lvsd's
        RX ring, or a whole batch waits) it sets the interface's napi_defer_hard_irqs
        and gro_flush_timeout (USECS) so that the kernel leaves that work to lvsd and
        drops the excess before spending CPU on it; they are put back when it keeps
        up again and at exit. Against receive livelock on a CPU lvsd shares with the
        interface's softirq work; 1000 is a good start. Needs Linux 5.11+. With
        --workers each worker busy-polls its own queue.
        Where XDP or AF_XDP is unavailable lvsd says so and exits: use raw= or tap=
        instead.
  --route default,via=IP | --route NET/PREFIX,via=IP
        Static route through a gateway on a connected subnet (repeatable).
  --neigh IP,MAC        Static neighbour (ARP) entry (repeatable).
  --control PATH        Control socket (default ${DEFAULT_CONTROL}, mode 0600).
  --max-conns N         Connection table size (default 1048576); with --workers, the
                        total, divided between the workers.
  --workers N           Run the data path in N worker threads (1..64; default: none, the
                        main thread forwards), each with its own connection table. raw=
                        links: one AF_PACKET socket per link and worker in a fanout group
                        whose classic BPF program keeps both directions of a connection on
                        one worker (the client's address and port; FULLNAT replies by local
                        port, each worker owning the ports p with p % N = its index).
                        xdp= links: worker i binds queue i of each interface (it needs N
                        receive queues; without queue=), behind one XDP
                        program, and hands the frames another worker owns over to it by the
                        same rules. The main thread keeps the tables and lvsadm; counters
                        are summed. Not with tap= links, VRRP instances, connection sync or
                        --trace (docs/workers.md).
  --restore FILE        Apply an ipvsadm -S style rule file at start.
  --sysctl NAME=VALUE   Set a net.ipv4.vs.* knob at start, as lvsadm --sysctl does
                        (repeatable), e.g. --sysctl sync_refresh_period=2.
  --config FILE         Load a keepalived.conf (virtual_server blocks with health checks)
                        and run its checks; SIGHUP reloads it (docs/keepalived.md).
  --config-test         With --config FILE: check FILE as keepalived -t does, print every
                        warning and error with FILE:LINE, exit 1 on errors; starts nothing.
  --config-id ID        The id that keepalived.conf's @ID / @^ID lines are compared with
                        (keepalived -i; default: the host name up to its first dot).
  --config-reload-allow-empty
                        Let a reload (SIGHUP, lvsadm --import) of a file without any
                        virtual_server remove every running one; by default such a file
                        (emptied, or cut off by an editor mid-save) is refused.
  --http ADDR:PORT      Serve Prometheus metrics (/metrics), a live status page (/) and its
                        JSON API (/api/v1/status) over HTTP (docs/observability.md). Off by
                        default. ADDR must be a loopback address (127.0.0.1, [::1], localhost)
                        unless --http-allow-remote is given; PORT 0 picks a free port.
  --http-allow-remote   Allow --http on a non-loopback address (the endpoint has no
                        authentication: anyone who reaches it sees the director's tables).
  --log-level LEVEL     fatal, error, warn, info (default), debug, trace or silent. The log
                        goes to stderr: JSON lines, or readable lines when stderr is a
                        terminal (docs/observability.md, "Logs").
  -q, --quiet           Do not log the per-link summary.
  -h, --help            This text.
  -v, --version         Version.

Example (the NAT lab):
  lvsd --link tap=lvs0,bridge=br-out,addr=10.0.0.1/24 \\
       --link tap=lvs1,bridge=br-in,addr=192.168.10.254/24 \\
       --route default,via=10.0.0.254
  lvsadm -A -t 10.0.0.100:80 -s rr
  lvsadm -a -t 10.0.0.100:80 -r 192.168.10.1:80 -m
`;

function parseCidr(s: string, what: string): { addr: number; prefix: number } {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(s);
  if (!m) throw new LvsdArgError(`${what}: '${s}' is not an IPv4 address with a prefix (like 10.0.0.1/24)`);
  const prefix = Number(m[2]);
  if (prefix < 0 || prefix > 32) throw new LvsdArgError(`${what}: prefix /${prefix} is out of range 0..32`);
  return { addr: parseIp(m[1]!, what), prefix };
}

function parseIp(s: string, what: string): number {
  try {
    return ipToU32(s);
  } catch (err) {
    if (err instanceof AddrError) throw new LvsdArgError(`${what}: '${s}' is not an IPv4 address`);
    throw err;
  }
}

function parseMac(s: string, what: string): Uint8Array {
  try {
    return macToBytes(s);
  } catch {
    throw new LvsdArgError(`${what}: '${s}' is not a MAC address`);
  }
}

const IFNAME = /^[A-Za-z0-9_.:-]{1,15}$/;

function parseLink(spec: string): LinkSpec {
  const parts = spec.split(",");
  const first = parts.shift() ?? "";
  const eq = first.indexOf("=");
  const kind = first.slice(0, eq);
  const name = first.slice(eq + 1);
  if (eq < 0 || (kind !== "tap" && kind !== "raw" && kind !== "xdp")) {
    throw new LvsdArgError(`--link ${spec}: must start with tap=NAME, raw=IFNAME or xdp=IFNAME`);
  }
  if (!IFNAME.test(name)) throw new LvsdArgError(`--link ${spec}: '${name}' is not a valid interface name`);
  const link: LinkSpec = { kind, name, addrs: [] };
  for (const p of parts) {
    const i = p.indexOf("=");
    const k = i < 0 ? p : p.slice(0, i);
    const val = i < 0 ? "" : p.slice(i + 1);
    switch (k) {
      case "addr":
        link.addrs.push(parseCidr(val, `--link ${name} addr`));
        break;
      case "bridge":
        if (kind !== "tap") throw new LvsdArgError(`--link ${name}: bridge= applies to tap links only`);
        if (!IFNAME.test(val)) throw new LvsdArgError(`--link ${name}: '${val}' is not a valid bridge name`);
        link.bridge = val;
        break;
      case "mtu": {
        const n = Number(val);
        if (!Number.isInteger(n) || n < 576 || n > 9000)
          throw new LvsdArgError(`--link ${name}: mtu must be 576..9000`);
        link.mtu = n;
        break;
      }
      case "mac":
        link.mac = parseMac(val, `--link ${name} mac`);
        break;
      case "queue": {
        if (kind !== "xdp") throw new LvsdArgError(`--link ${name}: queue= applies to xdp links only`);
        const n = Number(val);
        if (!/^\d+$/.test(val) || n > 4095) throw new LvsdArgError(`--link ${name}: queue must be 0..4095`);
        link.queue = n;
        break;
      }
      case "redirect":
        if (kind !== "xdp") throw new LvsdArgError(`--link ${name}: redirect= applies to xdp links only`);
        if (val !== "all" && val !== "mac")
          throw new LvsdArgError(`--link ${name}: redirect must be all or mac`);
        link.redirect = val;
        break;
      case "busy-poll": {
        if (kind === "tap")
          throw new LvsdArgError(`--link ${name}: busy-poll= applies to raw and xdp links only`);
        const n = Number(val);
        if (val === "" || !Number.isInteger(n) || n < 0 || n > 1_000_000)
          throw new LvsdArgError(`--link ${name}: busy-poll must be 0..1000000 (µs)`);
        link.busyPoll = n;
        break;
      }
      case "synproxy-xdp":
        if (kind === "tap")
          throw new LvsdArgError(`--link ${name}: synproxy-xdp= applies to raw and xdp links only`);
        if (val !== "auto" && val !== "drv" && val !== "skb")
          throw new LvsdArgError(`--link ${name}: synproxy-xdp must be auto, drv or skb`);
        link.synproxyXdp = val;
        break;
      case "kernel":
        if (kind !== "raw") throw new LvsdArgError(`--link ${name}: kernel= applies to raw links only`);
        if (val !== "pass" && val !== "drop")
          throw new LvsdArgError(`--link ${name}: kernel must be pass or drop`);
        link.kernel = val;
        break;
      default:
        throw new LvsdArgError(
          `--link ${name}: unknown key '${k}' (expected addr, bridge, mtu, mac, queue, redirect, busy-poll, kernel, synproxy-xdp)`,
        );
    }
  }
  if (link.synproxyXdp !== undefined && kind === "xdp" && link.redirect === "mac")
    throw new LvsdArgError(
      `--link ${name}: synproxy-xdp= takes redirect=all (its program hands the rest to lvsd's socket)`,
    );
  if (link.addrs.length === 0)
    throw new LvsdArgError(`--link ${name}: at least one addr=IP/PREFIX is required`);
  return link;
}

/** `ADDR:PORT` for --http: IPv4, [IPv6] or localhost, and a port 0..65535. */
export function parseHttpListen(spec: string): HttpListen {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(spec);
  if (!m) throw new LvsdArgError(`--http ${spec}: expected ADDR:PORT (like 127.0.0.1:9101 or [::1]:9101)`);
  const port = Number(m[3]);
  if (port > 65535) throw new LvsdArgError(`--http ${spec}: port ${port} is out of range 0..65535`);
  const host = m[1] ?? m[2]!;
  if (m[1] !== undefined) {
    if (isIP(host) !== 6) throw new LvsdArgError(`--http ${spec}: '${host}' is not an IPv6 address`);
  } else if (host !== "localhost" && isIP(host) !== 4) {
    throw new LvsdArgError(`--http ${spec}: '${host}' is not an IPv4 address or localhost`);
  }
  return { host, port };
}

/** 127.0.0.0/8, ::1 (and its IPv4-mapped form), localhost. */
export function isLoopback(host: string): boolean {
  if (host === "localhost" || host === "::1") return true;
  const v4 = host.startsWith("::ffff:") ? host.slice(7) : host;
  return isIP(v4) === 4 && v4.split(".")[0] === "127";
}

function parseRoute(spec: string): RouteSpec {
  const [dst, via, ...rest] = spec.split(",");
  if (!dst || !via || rest.length > 0 || !via.startsWith("via=")) {
    throw new LvsdArgError(`--route ${spec}: expected default,via=IP or NET/PREFIX,via=IP`);
  }
  const gw = parseIp(via.slice(4), `--route ${spec}`);
  if (dst === "default") return { net: 0, prefix: 0, via: gw };
  const c = parseCidr(dst, `--route ${spec}`);
  return { net: c.addr, prefix: c.prefix, via: gw };
}

export function parseLvsdArgs(argv: readonly string[]): LvsdArgs {
  const out: LvsdArgs = {
    links: [],
    routes: [],
    neighs: [],
    control: DEFAULT_CONTROL,
    maxConns: 1 << 20,
    workers: 0,
    sysctls: [],
    httpAllowRemote: false,
    configReloadAllowEmpty: false,
    logLevel: DEFAULT_LOG_LEVEL,
    quiet: false,
    help: false,
    version: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.startsWith("--") ? a.indexOf("=") : -1;
    const name = eq > 0 ? a.slice(0, eq) : a;
    const value = (): string => {
      if (eq > 0) return a.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined) throw new LvsdArgError(`${name} needs a value`);
      return v;
    };
    switch (name) {
      case "--link":
        out.links.push(parseLink(value()));
        break;
      case "--route":
        out.routes.push(parseRoute(value()));
        break;
      case "--neigh": {
        const v = value();
        const [ip, mac] = v.split(",");
        if (!ip || !mac) throw new LvsdArgError(`--neigh ${v}: expected IP,MAC`);
        out.neighs.push({ addr: parseIp(ip, "--neigh"), mac: parseMac(mac, "--neigh") });
        break;
      }
      case "--control":
        out.control = value();
        break;
      case "--max-conns": {
        const v = value();
        const n = Number(v);
        if (!Number.isInteger(n) || n < 16 || n > 1 << 26)
          throw new LvsdArgError(`--max-conns ${v}: must be 16..67108864`);
        out.maxConns = n;
        break;
      }
      case "--workers": {
        const v = value();
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1 || n > 64) throw new LvsdArgError(`--workers ${v}: must be 1..64`);
        out.workers = n;
        break;
      }
      case "--restore":
        out.restore = value();
        break;
      case "--sysctl": {
        const v = value();
        if (!v.includes("=")) throw new LvsdArgError(`--sysctl: expected NAME=VALUE, got '${v}'`);
        out.sysctls.push(v);
        break;
      }
      case "--config":
        out.config = value();
        break;
      case "--http":
        out.http = parseHttpListen(value());
        break;
      case "--http-allow-remote":
        out.httpAllowRemote = true;
        break;
      case "--config-reload-allow-empty":
        out.configReloadAllowEmpty = true;
        break;
      case "--log-level": {
        const v = value();
        if (!isLogLevel(v))
          throw new LvsdArgError(`--log-level ${v}: must be one of ${LOG_LEVELS.join(", ")}`);
        out.logLevel = v;
        break;
      }
      case "-q":
      case "--quiet":
        out.quiet = true;
        break;
      case "-h":
      case "--help":
        out.help = true;
        break;
      case "-v":
      case "--version":
        out.version = true;
        break;
      default:
        throw new LvsdArgError(`unknown option '${a}' (see lvsd --help)`);
    }
  }
  if (!out.help && !out.version && out.links.length === 0) {
    throw new LvsdArgError("no links: give at least one --link (see lvsd --help)");
  }
  if (out.http !== undefined && !out.httpAllowRemote && !isLoopback(out.http.host)) {
    throw new LvsdArgError(
      `--http ${out.http.host}: not a loopback address; the endpoint has no authentication, so listening on another address needs --http-allow-remote`,
    );
  }
  if (out.workers > 0) {
    const other = out.links.find((l) => l.kind !== "raw" && l.kind !== "xdp");
    if (other)
      throw new LvsdArgError(
        `--workers: link ${other.name} is ${other.kind}=; worker threads take raw= (AF_PACKET) and xdp= (AF_XDP) links`,
      );
    for (const l of out.links) {
      if (l.synproxyXdp !== undefined)
        throw new LvsdArgError(
          `--workers: link ${l.name} has synproxy-xdp=; the XDP SYN responder needs the one secret of a single data path`,
        );
      if (l.kind !== "xdp") continue;
      if (l.queue !== undefined)
        throw new LvsdArgError(
          `--workers: link ${l.name} has queue=; with --workers worker i binds queue i of every xdp= link`,
        );
    }
    if (out.maxConns < 16 * out.workers)
      throw new LvsdArgError(`--max-conns ${out.maxConns}: too small for ${out.workers} workers`);
  }
  const names = new Set<string>();
  for (const l of out.links) {
    if (names.has(l.name)) throw new LvsdArgError(`--link ${l.name} is given twice`);
    names.add(l.name);
  }
  return out;
}
