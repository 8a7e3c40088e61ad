/**
 * lvs-realserver's command line. Parsing is pure (no I/O) so it can be tested; errors are
 * RealServerError USAGE / BAD_ADDRESS with a message naming the bad argument.
 */
import { AddrError, ipToU32, u32ToIp } from "../../lib/addr.js";
import { RealServerError, RsErrorCode } from "./errors.js";

export const DEFAULT_STATE_DIR = "/run/lvs-realserver";

export type RsCommand = "dr" | "tun" | "status";

export interface RsArgs {
  command: RsCommand;
  /** VIPs, uint32, in the order given, without duplicates. */
  vips: number[];
  /** dr: extra interfaces to set arp_ignore/arp_announce on; tun: [the wire interface]. */
  devs: string[];
  /** tun: addresses IPIP arrives for (default: the IPv4 addresses of the device). */
  locals: number[];
  /** Network namespace name or path; undefined = the caller's. */
  netns?: string;
  undo: boolean;
  /** tun: run in the background. */
  daemon: boolean;
  pidFile?: string;
  logFile?: string;
  /** tun: the TUN device's name (default rs-<dev>, cut to 15 bytes). */
  tunName?: string;
  /** tun: AF_PACKET receive mode. */
  mode: "ring" | "mmsg";
  stateDir: string;
  quiet: boolean;
  help: boolean;
  version: boolean;
}

export const RS_USAGE = `Usage:
  lvs-realserver dr  --vip ADDR [--vip ADDR ...] [--dev IFACE ...] [--netns NAME]
  lvs-realserver tun --vip ADDR [--vip ADDR ...] --dev IFACE [--local ADDR ...] [--netns NAME]
                     [--tun-name NAME] [--mode ring|mmsg] [--daemon [--pid-file FILE] [--log FILE]]
  lvs-realserver dr|tun --undo [--vip ADDR ...] [--netns NAME]
  lvs-realserver status [--netns NAME]

Prepares a host (or a network namespace) to be an LVS real server.

  dr    Put each VIP on lo as /32 and set arp_ignore=1, arp_announce=2 (on all, lo and every
        --dev), so the host accepts packets for the VIP but never answers ARP for it.
  tun   The same, plus a userspace IPIP decapsulator for kernels without the ipip module: IPIP
        packets for this host's address on --dev are taken off the wire (AF_PACKET) and their
        inner packets handed to the local stack through a TUN device. Runs until SIGINT/SIGTERM
        (or in the background with --daemon), then removes what it set up.
  --undo
        Revert what was set up for these VIPs (all of them without --vip) in this namespace:
        stop the decapsulator, remove the addresses we added, restore the sysctls recorded in
        the state file. Doing it twice is harmless.
  status
        Print the recorded state of the namespace.

Options:
  --vip ADDR         Virtual IP (repeat, or a comma-separated list).
  --dev IFACE        dr: also set the ARP sysctls on IFACE. tun: the interface IPIP arrives on.
  --local ADDR       tun: outer destination address to decapsulate for (default: every IPv4
                     address of --dev).
  --netns NAME       Work in network namespace NAME (as in \`ip netns\`) or a path such as
                     /proc/PID/ns/net.
  --tun-name NAME    tun: name of the TUN device (default rs-IFACE).
  --mode ring|mmsg   tun: AF_PACKET receive with a PACKET_MMAP ring (default) or recvmmsg.
  --daemon           tun: detach and run in the background; the pid goes to --pid-file
                     (default STATE_DIR/<namespace>.pid), messages to --log (default
                     STATE_DIR/<namespace>.log).
  --state-dir DIR    Where state files live (default ${DEFAULT_STATE_DIR}, or
                     $LVS_REALSERVER_STATE_DIR).
  --quiet            Print nothing on success.
  -h, --help         This text.   -V, --version   The version.

Exit status: 0 success, 1 failure, 2 bad usage or address. Needs root (CAP_NET_ADMIN,
CAP_NET_RAW, and CAP_SYS_ADMIN for --netns). See docs/realserver.md.`;

function usage(msg: string): RealServerError {
  return new RealServerError(RsErrorCode.USAGE, `${msg}\nTry 'lvs-realserver --help'.`);
}

/**
 * Parse a VIP or local address: four decimal octets, and not an address that cannot be a host's
 * (0.0.0.0/8, 127.0.0.0/8, multicast, 240.0.0.0/4, broadcast).
 */
export function parseHostAddr(s: string, what: string): number {
  let a: number;
  try {
    a = ipToU32(s.trim());
  } catch (err) {
    if (err instanceof AddrError)
      throw new RealServerError(RsErrorCode.BAD_ADDRESS, `${what}: ${err.message}`);
    throw err;
  }
  const first = a >>> 24;
  if (first === 0 || first === 127 || first >= 224) {
    throw new RealServerError(
      RsErrorCode.BAD_ADDRESS,
      `${what}: ${u32ToIp(a)} cannot be a host address (0/8, 127/8, multicast and 240/4 are refused)`,
    );
  }
  return a;
}

const IFNAME = /^[^\s/:]{1,15}$/;

function checkIfName(s: string, what: string): string {
  if (!IFNAME.test(s) || s === "." || s === ".." || Buffer.byteLength(s) > 15) {
    throw usage(`${what}: bad interface name ${JSON.stringify(s)} (1..15 bytes, no '/', ':' or spaces)`);
  }
  return s;
}

export function parseRsArgs(argv: readonly string[], env: NodeJS.ProcessEnv = {}): RsArgs {
  const a: RsArgs = {
    command: "dr",
    vips: [],
    devs: [],
    locals: [],
    undo: false,
    daemon: false,
    mode: "ring",
    stateDir: env["LVS_REALSERVER_STATE_DIR"] || DEFAULT_STATE_DIR,
    quiet: false,
    help: false,
    version: false,
  };
  let command: string | undefined;
  const args = [...argv];
  for (let i = 0; i < args.length; i++) {
    let arg = args[i]!;
    let inline: string | undefined;
    if (arg.startsWith("--") && arg.includes("=")) {
      inline = arg.slice(arg.indexOf("=") + 1);
      arg = arg.slice(0, arg.indexOf("="));
    }
    const value = (): string => {
      if (inline !== undefined) return inline;
      const v = args[++i];
      if (v === undefined || (v.startsWith("-") && v.length > 1)) throw usage(`option ${arg} needs a value`);
      return v;
    };
    const flag = (): true => {
      if (inline !== undefined) throw usage(`option ${arg} takes no value`);
      return true;
    };
    switch (arg) {
      case "-h":
      case "--help":
        a.help = flag();
        break;
      case "-V":
      case "--version":
        a.version = flag();
        break;
      case "--vip":
        for (const part of value().split(",")) {
          if (part.trim() === "") continue;
          const v = parseHostAddr(part, "--vip");
          if (!a.vips.includes(v)) a.vips.push(v);
        }
        break;
      case "--local":
        for (const part of value().split(",")) {
          if (part.trim() === "") continue;
          const v = parseHostAddr(part, "--local");
          if (!a.locals.includes(v)) a.locals.push(v);
        }
        break;
      case "--dev": {
        const d = checkIfName(value(), "--dev");
        if (!a.devs.includes(d)) a.devs.push(d);
        break;
      }
      case "--netns": {
        const n = value();
        if (n === "") throw usage("--netns needs a name or a path");
        a.netns = n;
        break;
      }
      case "--undo":
        a.undo = flag();
        break;
      case "--daemon":
        a.daemon = flag();
        break;
      case "--pid-file":
        a.pidFile = value();
        break;
      case "--log":
        a.logFile = value();
        break;
      case "--tun-name":
        a.tunName = checkIfName(value(), "--tun-name");
        break;
      case "--mode": {
        const m = value();
        if (m !== "ring" && m !== "mmsg")
          throw usage(`--mode must be ring or mmsg, not ${JSON.stringify(m)}`);
        a.mode = m;
        break;
      }
      case "--state-dir":
        a.stateDir = value();
        break;
      case "-q":
      case "--quiet":
        a.quiet = flag();
        break;
      default:
        if (arg.startsWith("-")) throw usage(`unknown option ${arg}`);
        if (command !== undefined) throw usage(`unexpected argument ${JSON.stringify(arg)}`);
        command = arg;
    }
  }
  if (a.help || a.version) return a;
  if (command === undefined) throw usage("no command (dr, tun or status)");
  if (command !== "dr" && command !== "tun" && command !== "status")
    throw usage(`unknown command ${command}`);
  a.command = command;
  if (command === "status") {
    if (a.undo || a.daemon || a.vips.length > 0) throw usage("status takes only --netns and --state-dir");
    return a;
  }
  if (a.undo) {
    if (a.daemon) throw usage("--undo and --daemon exclude each other");
    return a;
  }
  if (a.vips.length === 0) throw usage(`${command} needs at least one --vip`);
  if (command === "dr") {
    if (a.daemon || a.locals.length > 0 || a.tunName !== undefined)
      throw usage("--daemon, --local and --tun-name belong to tun");
  } else {
    if (a.devs.length !== 1) throw usage("tun needs exactly one --dev (the interface IPIP arrives on)");
    if (!a.daemon && (a.pidFile !== undefined || a.logFile !== undefined))
      throw usage("--pid-file and --log need --daemon");
  }
  return a;
}

/** Default TUN device name for a wire interface. */
export function defaultTunName(dev: string): string {
  return `rs-${dev}`.slice(0, 15);
}
