/**
 * Running lvsadm commands against a director (a ControlTarget), with ipvsadm's outputs, messages
 * and exit codes.
 *
 * Errors the kernel would return (EEXIST, ESRCH, ENOENT, ...) come from the ServiceTable as
 * ControlError codes and are turned into text per command, as libipvs's ipvs_strerror() does,
 * then printed on stderr with exit status 255 (ipvsadm returns -1). Validation errors from the
 * parser keep their own status (2, or 255 for the help hint).
 *
 * Everything here is synchronous: lvsd runs a command between two batches of the data path.
 */

import { forwardingMethod, implementedMethods } from "../datapath/modes/index.js";
import type { FwdMethod, Service } from "../tables/model.js";
import { ControlError, type ControlErrorCode, type ServiceKey } from "../tables/services.js";
import {
  type Extensions,
  formatDrops,
  formatLinks,
  formatSyncCounters,
  runLaddr,
  splitExtensions,
} from "./extensions.js";
import {
  type ConnReader,
  type FormatContext,
  formatConnsChunks,
  formatListChunks,
  formatListService,
  formatSaveChunks,
  formatTimeout,
  IPVS_VERSION,
} from "./format.js";
import { type HealthControl, runExtension } from "./health-import.js";
import { formatMarksForSave, runIptables } from "./iptables.js";
import { type Command, DEF_SCHED, type DestSpec, parseArgs } from "./ipvsadm.js";
import { type HostNames, LOOKUP_MAX_ADDRS } from "./names.js";
import { type ServicesDb, systemServices } from "./netdb.js";
import { schedulerList } from "./sched.js";
import { formatDaemons, SyncDaemonError } from "./sync/daemon.js";
import { runSysctl } from "./sysctl.js";
import type { ConnEntry, ControlTarget } from "./target.js";
import { runTrace, type TraceControlApi } from "./trace-cmd.js";
import type { ExecResult, ParseError } from "./types.js";

export type { ExecResult } from "./types.js";

export interface ExecOptions {
  /** Program name in messages and help (ipvsadm's argv[0]). */
  prog?: string;
  /** Port names; defaults to /etc/services. */
  services?: ServicesDb;
  /** lvsd's health manager, for --health and --import (src/control/health-import.ts). */
  health?: HealthControl;
  /** lvsd's packet tracer, for --trace, --trace-status, --trace-stop (src/control/trace-cmd.ts). */
  trace?: TraceControlApi;
  /** lvsd's VRRP instances, for --vrrp (src/control/vrrp/manager.ts). */
  vrrp?: VrrpControl;
  /**
   * Give listings (-L, -l, -c, -S) as ExecResult.more, made piece by piece when read, instead of
   * one string (lvsd's control server; see server.ts).
   */
  stream?: boolean;
  /**
   * Host names for streamed listings without -n (names.ts): the result's `prepare` looks up the
   * names of the addresses to print before its pieces are made.
   */
  hostNames?: HostNames;
}

/** `r` with its stdout whole: the pieces of `more`, if any, appended. */
export function collect(r: ExecResult): ExecResult {
  if (!r.more) return r;
  let stdout = r.stdout;
  for (let n = r.more.next(); n.done !== true; n = r.more.next()) stdout += n.value;
  return { stdout, stderr: r.stderr, code: r.code };
}

/** A listing: as pieces when streaming, else whole. */
function listing(chunks: Generator<string, void, undefined>, stream: boolean): ExecResult {
  return stream ? { stdout: "", stderr: "", code: 0, more: chunks } : collect({ ...ok(), more: chunks });
}

/** What `lvsadm --vrrp` needs from lvsd's VRRP manager (src/control/vrrp/manager.ts). */
export interface VrrpControl {
  statusText(): string;
}

/** lvsadm's own version (lvs-ts's package version). */
export const LVSADM_VERSION = "0.1.0";
/** The ipvsadm release whose behaviour lvsadm follows. */
export const IPVSADM_COMPAT = "1.31";
/** Where lvsd listens unless told otherwise. */
export const DEFAULT_CONTROL_PATH = "/run/lvsd/control.sock";

// ---- ipvs_strerror() ----

type ErrnoName = ControlErrorCode | "ERANGE" | "EPERM" | "EOPNOTSUPP";

/** Per-operation messages (libipvs's table, keyed by the function that failed). */
const OP_ERRORS: Readonly<Record<string, Partial<Record<ErrnoName, string>>>> = {
  "add-service": { EEXIST: "Service already exists", ENOENT: "Scheduler or persistence engine not found" },
  "edit-service": { ESRCH: "No such service", ENOENT: "Scheduler or persistence engine not found" },
  "delete-service": { ESRCH: "No such service" },
  zero: { ESRCH: "No such service" },
  "add-dest": { ESRCH: "Service not defined", EEXIST: "Destination already exists" },
  "edit-dest": { ESRCH: "Service not defined", ENOENT: "No such destination" },
  "delete-dest": { ESRCH: "Service not defined", ENOENT: "No such destination" },
  "start-daemon": { EEXIST: "Daemon has already run" },
  "stop-daemon": { ESRCH: "No daemon is running" },
  list: { ESRCH: "No such service" },
};

/** Messages for any operation. */
const ANY_OP_ERRORS: Readonly<Partial<Record<ErrnoName, string>>> = {
  EPERM: "Permission denied (you must be root)",
  EINVAL: "Invalid operation.  Possibly wrong module version, address not unicast, ...",
  ENOMEM: "Memory allocation problem",
  EOPNOTSUPP: "Operation not supported with IPv6",
};

/** strerror() for the rest. */
const STRERROR: Readonly<Record<ErrnoName, string>> = {
  EEXIST: "File exists",
  ESRCH: "No such process",
  ENOENT: "No such file or directory",
  EINVAL: "Invalid argument",
  ENOMEM: "Cannot allocate memory",
  EBUSY: "Device or resource busy",
  ERANGE: "Numerical result out of range",
  EPERM: "Operation not permitted",
  EOPNOTSUPP: "Operation not supported",
};

/** ipvs_strerror(): the text ipvsadm prints when operation `op` fails with `errno`. */
export function ipvsStrerror(op: string, errno: ErrnoName): string {
  return OP_ERRORS[op]?.[errno] ?? ANY_OP_ERRORS[errno] ?? STRERROR[errno];
}

// ---- help and version ----

export function versionText(prog = "lvsadm"): string {
  return `${prog} v${LVSADM_VERSION} (lvs-ts; ipvsadm v${IPVSADM_COMPAT} compatible, IPVS v${IPVS_VERSION})\n`;
}

/** ipvsadm's usage, adapted: program name, what lvs-ts supports, and how lvsadm finds lvsd. */
export function usageText(prog = "lvsadm"): string {
  const p = prog;
  const scheds = schedulerList() || DEF_SCHED;
  return `${versionText(p)}Usage:
  ${p} -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [-b sched-flags]
  ${p} -D virtual-service
  ${p} -C
  ${p} -R
  ${p} -S [-n]
  ${p} -a|e virtual-service -r server-address [options]
  ${p} -d virtual-service -r server-address
  ${p} -L|l [virtual-service] [options]
  ${p} -Z [virtual-service]
  ${p} --set tcp tcpfin udp
  ${p} --start-daemon {master|backup} [daemon-options]
  ${p} --stop-daemon {master|backup}
  ${p} -h

Commands:
Either long or short options are allowed.
  --add-service     -A        add virtual service with options
  --edit-service    -E        edit virtual service with options
  --delete-service  -D        delete virtual service
  --clear           -C        clear the whole table
  --restore         -R        restore rules from stdin
  --save            -S        save rules to stdout
  --add-server      -a        add real server with options
  --edit-server     -e        edit real server with options
  --delete-server   -d        delete real server
  --list            -L|-l     list the table
  --zero            -Z        zero counters in a service or all services
  --set tcp tcpfin udp        set connection timeout values
  --start-daemon              start connection sync daemon
  --stop-daemon               stop connection sync daemon
  --help            -h        display this help message

virtual-service:
  --tcp-service|-t  service-address   service-address is host[:port]
  --udp-service|-u  service-address   service-address is host[:port]
  --fwmark-service|-f fwmark          fwmark is an integer greater than zero

Options:
  --scheduler    -s scheduler         one of ${scheds},
                                      the default scheduler is ${DEF_SCHED}.
  --persistent   -p [timeout]         persistent service
  --netmask      -M netmask           persistent granularity mask
  --real-server  -r server-address    server-address is host (and port)
  --gatewaying   -g                   gatewaying (direct routing) (default)
  --ipip         -i                   ipip encapsulation (tunneling)
  --masquerading -m                   masquerading (NAT)
  --fullnat                           full NAT (lvs-ts extension)
  --proxy-protocol v1|v2|off          with -A/-E: PROXY protocol header FULLNAT sends to
                                      the real servers of a TCP service (lvs-ts extension)
  --synproxy | --no-synproxy          with -A/-E: SYN proxy on/off for a TCP service with NAT
                                      or FULLNAT real servers: SYN cookies, the connection to
                                      the real server only after the client's ACK (lvs-ts)
  --add-laddr|--del-laddr -z address  add/delete a FULLNAT local address of the service
  --get-laddr                         list the service's FULLNAT local addresses
  --drops                             the data path's drop counters by reason (lvs-ts)
  --synproxy-stats                    the SYN proxy's counters: cookies sent and proven,
                                      handshakes with real servers, their RSTs,
                                      their stale connections reset (lvs-ts)
  --links                             per-link frame, byte and drop counters (lvs-ts)
  --sync                              connection sync counters: sent, received, placed (lvs-ts)
  --sysctl [name[=value]]             list or set net.ipv4.vs.* knobs, e.g.
                                      --sysctl sync_threshold="3 50" (lvs-ts)
  --tun-type      type                one of ipip|gue|gre,
                                      the default tunnel type is ipip.
  --tun-port      port                tunnel destination port
  --tun-nocsum                        tunnel encapsulation without checksum
  --tun-csum                          tunnel encapsulation with checksum
  --tun-remcsum                       tunnel encapsulation with remote checksum
  --weight       -w weight            capacity of real server
  --u-threshold  -x uthreshold        upper threshold of connections
  --l-threshold  -y lthreshold        lower threshold of connections
  --connection   -c                   output of current IPVS connections
  --timeout                           output of timeout (tcp tcpfin udp)
  --daemon                            output of daemon information
  --stats                             output of statistics information
  --rate                              output of rate information
  --exact                             expand numbers (display exact values)
  --thresholds                        output of thresholds information
  --persistent-conn                   output of persistent connection info
  --tun-info                          output of tunnel information
  --nosort                            disable sorting output of service/server entries
  --sort                              does nothing, for backwards compatibility
  --ops          -o                   one-packet scheduling
  --numeric      -n                   numeric output of addresses and ports
  --sched-flags  -b flags             scheduler flags (comma-separated)

Daemon Options:
  --syncid sid                        syncid for connection sync (default=255)
  --sync-maxlen length                Max sync message length (default=1472)
  --mcast-interface interface         multicast interface for connection sync
  --mcast-group address               IPv4 group (default=224.0.0.81)
  --mcast-port port                   UDP port (default=8848)
  --mcast-ttl ttl                     Multicast TTL (default=1)

lvsadm:
  --control PATH                      lvsd's control socket (default ${DEFAULT_CONTROL_PATH});
                                      the LVSD_CONTROL environment variable sets it too.
  --vrrp                              VRRP instances: state, priority, VRID, interface, VIPs,
                                      master, adverts sent/received, last transition
  --health                            health checks: each dest's check, state, last result,
                                      last change and reason (first option of the line)
  --import FILE                       load a keepalived.conf into lvsd as a reload: only what
                                      changed is touched; on an error nothing changes
  --trace FILE [--count N] [--seconds S] [-t|-u service-address | -f fwmark] [--link NAME]
                                      write the frames lvsd receives and sends (all links, or
                                      NAME's; all traffic, or the service's) to FILE as pcapng
                                      (tcpdump -r, Wireshark); waits until N frames, S seconds
                                      (10 without --count; at most 3600) or Ctrl-C
  --trace-status                      the running trace and the last ones
  --trace-stop                        stop the running trace
  --iptables ARGS...                  (first option) an lvs-iptables command line: the mangle
                                      table's PREROUTING chain whose MARK rules give packets
                                      the marks of fwmark services; see lvs-iptables -h
  Forwarding methods available now: ${implementedOptions()} (without a method option a server
  is -g, direct routing, as in ipvsadm).
  Addresses are IPv4 addresses or host names (no IPv6); ports may be named (/etc/services).
  fwmark services (-f) get the packets that lvs-iptables MARK rules mark; -S saves the rules.
  Not supported: --sctp-service, --pe, -6, gue/gre tunnels.
`;
}

// ---- execution ----

function ok(stdout = ""): ExecResult {
  return { stdout, stderr: "", code: 0 };
}

function err(message: string, code = 255): ExecResult {
  return { stdout: "", stderr: `${message}\n`, code };
}

function formatContext(target: ControlTarget, services: ServicesDb): FormatContext {
  return { connTabSize: target.connTabSize, services, rates: target.rates };
}

/** The options of the methods lvs-ts forwards with: "-m, -g, -i, --fullnat". */
function implementedOptions(): string {
  return implementedMethods()
    .map((m) => m.option)
    .join(", ");
}

/**
 * The refusal of a dest whose method has no mode (LOCAL: no option selects it, but a Command
 * built by a caller of execute() may carry it): the reason, then what is available (a dest added
 * without -m/-i/--fullnat is DR, ipvsadm's default, which is why -g can appear untyped).
 */
function fwdRefusal(fwd: FwdMethod): string {
  return `${forwardingMethod(fwd).label} forwarding is not implemented yet\nAvailable now: ${implementedOptions()} (without a method option the default is -g, as in ipvsadm)`;
}

/** Kernel-side checks of a dest before it reaches the table (ip_vs_add_dest / ip_vs_edit_dest). */
function checkDest(target: ControlTarget, svc: ServiceKey, d: DestSpec, op: string): ExecResult | undefined {
  if (forwardingMethod(d.fwd).mode === null) return err(fwdRefusal(d.fwd));
  if (!target.table.find(svc)) return err(ipvsStrerror(op, "ESRCH"));
  // The kernel refuses l_threshold > u_threshold with ERANGE, even when u_threshold is 0.
  if (d.lThreshold > d.uThreshold) return err(ipvsStrerror(op, "ERANGE"));
  return undefined;
}

/** Run one table operation, mapping a ControlError to ipvsadm's message. */
function tableOp(op: string, fn: () => void): ExecResult {
  try {
    fn();
    return ok();
  } catch (e) {
    if (e instanceof ControlError) return err(e.own ? e.message : ipvsStrerror(op, e.code));
    throw e;
  }
}

/** The addresses of the first entries of the connection table (a -c listing's names to look up). */
function* connAddrs(target: ControlTarget): Generator<number, void, undefined> {
  const read = connReader(target);
  const batch: ConnEntry[] = [];
  let cursor = 0;
  for (let n = 0; n < 2 && cursor >= 0; n++) {
    batch.length = 0;
    cursor = read(cursor, LOOKUP_MAX_ADDRS, batch);
    for (const c of batch) {
      yield c.caddr;
      yield c.vaddr;
      yield c.daddr;
    }
  }
}

/** The target's entries piece by piece (connsFrom), or its whole snapshot as one piece. */
function connReader(target: ControlTarget): ConnReader {
  if (target.connsFrom) return (cursor, max, out) => target.connsFrom!(cursor, max, out);
  return (_cursor, _max, out) => {
    out.push(...target.conns());
    return -1;
  };
}

/** Execute everything but -R (which needs the line loop) on `target`. */
function executeOne(
  cmd: Command,
  target: ControlTarget,
  services: ServicesDb,
  prog: string,
  opts: ExecOptions = {},
): ExecResult & { fatal?: boolean } {
  const { health, trace, vrrp } = opts;
  const stream = opts.stream === true;
  if (cmd.kind === "help") return ok(usageText(prog));
  if (cmd.kind === "version") return ok(versionText(prog));
  // lvs-ts extensions: src/control/health-import.ts, src/control/trace-cmd.ts
  if (cmd.kind === "health" || cmd.kind === "import") return runExtension(cmd, health, prog);
  if (cmd.kind === "vrrp")
    return vrrp
      ? ok(vrrp.statusText())
      : { stdout: "", stderr: `${prog}: --vrrp: this lvsd runs no VRRP\n`, code: 1 };
  if (cmd.kind === "trace" || cmd.kind === "trace-status" || cmd.kind === "trace-stop")
    return runTrace(cmd, trace, prog);
  const table = target.table;
  switch (cmd.kind) {
    case "add-service":
      return tableOp(cmd.kind, () => table.addService(cmd.svc, cmd.opts));
    case "edit-service":
      return tableOp(cmd.kind, () => table.editService(cmd.svc, cmd.opts));
    case "delete-service":
      return tableOp(cmd.kind, () => table.deleteService(cmd.svc));
    case "clear":
      table.clear();
      return ok();
    case "add-dest":
      return (
        checkDest(target, cmd.svc, cmd.dest, cmd.kind) ??
        tableOp(cmd.kind, () => table.addDest(cmd.svc, cmd.dest))
      );
    case "edit-dest":
      return (
        checkDest(target, cmd.svc, cmd.dest, cmd.kind) ??
        tableOp(cmd.kind, () => table.editDest(cmd.svc, cmd.dest))
      );
    case "delete-dest":
      return tableOp(cmd.kind, () => table.deleteDest(cmd.svc, cmd.addr, cmd.port));
    case "list": {
      // without -n, host names (names.ts): looked up before the listing is sent, by the server
      const names = !cmd.format.numeric && stream ? opts.hostNames : undefined;
      const db: ServicesDb = names
        ? {
            portOf: (n, p) => services.portOf(n, p),
            nameOf: (p, q) => services.nameOf(p, q),
            hostOf: (a) => names.hostOf(a),
          }
        : services;
      const ctx = formatContext(target, db);
      const named = (r: ExecResult, addrs: () => Iterable<number>): ExecResult =>
        names ? { ...r, prepare: () => names.resolve(addrs()) } : r;
      switch (cmd.what) {
        case "conns": {
          const r = named(listing(formatConnsChunks(connReader(target), cmd.format, db), stream), () =>
            connAddrs(target),
          );
          // lvsd --workers: the entries are fetched from the workers before the listing is read
          const refresh = target.refreshConns;
          if (refresh === undefined || !stream) return r;
          const then = r.prepare;
          return {
            ...r,
            prepare: async () => {
              await refresh.call(target);
              if (then) await then();
            },
          };
        }
        case "timeout":
          return ok(formatTimeout(target.getTimeouts()));
        case "daemon":
          return ok(target.sync ? formatDaemons(target.sync.daemons()) : "");
        case "services": {
          const list = cmd.svc ? [table.find(cmd.svc)].filter((x): x is Service => !!x) : table.list();
          const addrs = () => list.flatMap((x) => [x.addr, ...x.dests.map((d) => d.addr)]);
          if (!cmd.svc) return named(listing(formatListChunks(list, cmd.format, ctx), stream), addrs);
          // list_service() exits with 1 when the service is missing (and so ends a restore)
          if (list.length === 0) return { ...err(ipvsStrerror("list", "ESRCH"), 1), fatal: true };
          const one = list[0]!;
          return named(
            listing(
              (function* () {
                yield formatListService(one, cmd.format, ctx);
              })(),
              stream,
            ),
            addrs,
          );
        }
      }
      break;
    }
    case "save":
      return listing(
        saveChunks(formatSaveChunks(table.list(), cmd.numeric, formatContext(target, services)), target),
        stream,
      );
    case "zero": {
      const r = tableOp(cmd.kind, () => (cmd.svc ? table.zero(cmd.svc) : table.zero()));
      if (r.code === 0 && target.rates?.zero) {
        const list: Service[] = cmd.svc
          ? [table.find(cmd.svc)].filter((s): s is Service => !!s)
          : table.list();
        for (const s of list) {
          target.rates.zero(s);
          for (const d of s.dests) target.rates.zero(d);
        }
      }
      return r;
    }
    case "set-timeout":
      target.setTimeouts(cmd.timeouts);
      return ok();
    case "start-daemon":
    case "stop-daemon": {
      const sync = target.sync;
      if (!sync) return err(`${prog}: --${cmd.kind}: this director runs no connection sync`);
      try {
        if (cmd.kind === "start-daemon") sync.start(cmd.state, cmd.daemon);
        else sync.stop(cmd.state);
        return ok();
      } catch (e) {
        if (!(e instanceof SyncDaemonError)) throw e;
        // ipvsadm's messages for EEXIST and ESRCH; lvs-ts's own for the rest (no such link...)
        if (e.code === "EEXIST" || e.code === "ESRCH") return err(ipvsStrerror(cmd.kind, e.code));
        return err(`${prog}: --${cmd.kind}: ${e.message}`);
      }
    }
    case "restore":
      return err("internal: restore must go through execute()", 1);
  }
  return err("internal: unknown command", 1);
}

/** -S: the services, then the mark rules (src/control/iptables.ts) as lines -R replays. */
function* saveChunks(
  services: Generator<string, void, undefined>,
  target: ControlTarget,
): Generator<string, void, undefined> {
  yield* services;
  const marks = formatMarksForSave(target.marks);
  if (marks !== "") yield marks;
}

/**
 * Split one line of a restore as ipvsadm's config_stream_read() does: words separated by blanks,
 * every word "ipvsadm" (and, for us, "lvsadm") dropped. Unlike ipvsadm, whose comment handling
 * never triggers, a word starting with '#' ends the line.
 */
export function restoreWords(line: string): string[] {
  const out: string[] = [];
  for (const w of line.split(/[ \t\r\n]+/)) {
    if (!w) continue;
    if (w.startsWith("#")) break;
    if (w === "ipvsadm" || w === "lvsadm") continue;
    out.push(w);
  }
  return out;
}

function parseErrorResult(e: ParseError): ExecResult {
  return err(e.message, e.code);
}

/**
 * -R: run each line of `stdin` as a command, as ipvsadm's restore_table() does. A line's
 * output and errors are printed as they come; an error from the parser that ipvsadm reports with
 * exit() (bad option values, a missing -r, the help hint, -h) ends the restore with its status;
 * other failures (the table's, popt's) are printed and the restore goes on. The exit status is
 * that of the last line run.
 */
function restore(target: ControlTarget, stdin: string, services: ServicesDb, prog: string): ExecResult {
  let stdout = "";
  let stderr = "";
  let code = 0;
  for (const line of stdin.split("\n")) {
    const ext = splitExtensions(restoreWords(line));
    if (ext.iptables) {
      const r = runIptables(ext.iptables, target.marks, services);
      stdout += r.stdout;
      stderr += r.stderr;
      code = r.code;
      continue;
    }
    if (ext.error) {
      stderr += `${ext.error}\n`;
      code = 2;
      continue;
    }
    if (ext.laddr) {
      const r = runLaddr(ext.laddr.op, ext.laddr.addr, ext.argv, target.table, services);
      stdout += r.stdout;
      stderr += r.stderr;
      code = r.code;
      continue;
    }
    const words = ext.argv;
    if (words.length === 0) continue;
    const parsed = parseArgs(words, { prog, services, inRestore: true });
    if (!parsed.ok) {
      stderr += `${parsed.error.message}\n`;
      if (parsed.error.fatal) return { stdout, stderr, code: parsed.error.code };
      code = parsed.error.code;
      continue;
    }
    const pp = applyServiceExtensions(parsed.cmd, ext);
    if (pp) {
      stderr += pp.stderr;
      code = pp.code;
      continue;
    }
    const r = executeOne(parsed.cmd, target, services, prog);
    stdout += r.stdout;
    stderr += r.stderr;
    code = r.code;
    // -h and -v end ipvsadm (usage_exit/version_exit), and so the restore.
    if (r.fatal || parsed.cmd.kind === "help" || parsed.cmd.kind === "version")
      return { stdout, stderr, code };
  }
  return { stdout, stderr, code };
}

/** Execute a parsed command on `target`. `stdin` is the input of -R. */
export function execute(cmd: Command, target: ControlTarget, stdin = "", opts: ExecOptions = {}): ExecResult {
  const prog = opts.prog ?? "lvsadm";
  const services = opts.services ?? systemServices();
  if (cmd.kind === "restore") return restore(target, stdin, services, prog);
  const { fatal: _fatal, ...r } = executeOne(cmd, target, services, prog, opts);
  return r;
}

/** Parse and execute one command line (what lvsd's control server does for each request). */
export function run(
  argv: readonly string[],
  target: ControlTarget,
  stdin = "",
  opts: ExecOptions = {},
): ExecResult {
  const prog = opts.prog ?? "lvsadm";
  const services = opts.services ?? systemServices();
  const ext = splitExtensions(argv);
  if (ext.iptables) return runIptables(ext.iptables, target.marks, services);
  if (ext.error) return err(ext.error, 2);
  if (ext.laddr) return runLaddr(ext.laddr.op, ext.laddr.addr, ext.argv, target.table, services);
  if (ext.sysctl !== undefined) {
    if (ext.argv.length > 0) return err("--sysctl takes no other options", 2);
    return runSysctl(ext.sysctl ?? undefined, target.sysctl, prog);
  }
  if (ext.sync) {
    if (ext.argv.length > 0) return err("--sync takes no other options", 2);
    if (!target.sync) return err(`${prog}: --sync: this director runs no connection sync`, 1);
    return ok(formatSyncCounters(target.sync.counterRows()));
  }
  if (ext.synProxyStats) {
    if (ext.argv.length > 0) return err("--synproxy-stats takes no other options", 2);
    return ok(formatSyncCounters(target.synProxyCounters?.() ?? []));
  }
  if (ext.drops || ext.links) {
    if (ext.argv.length > 0 || (ext.drops && ext.links))
      return err("--drops and --links take no other options", 2);
    return ok(ext.drops ? formatDrops(target.dropCounts?.()) : formatLinks(target.linkStats?.()));
  }
  const parsed = parseArgs(ext.argv, { prog, services });
  if (!parsed.ok) return parseErrorResult(parsed.error);
  const pp = applyServiceExtensions(parsed.cmd, ext);
  if (pp) return pp;
  return execute(parsed.cmd, target, stdin, { ...opts, prog, services });
}

/** Put --proxy-protocol and --synproxy/--no-synproxy into an -A/-E command; refuse them elsewhere. */
function applyServiceExtensions(cmd: Command, ext: Extensions): ExecResult | undefined {
  const pp = ext.proxyProtocol;
  const sp = ext.synProxy;
  if (pp === undefined && sp === undefined) return undefined;
  if (cmd.kind !== "add-service" && cmd.kind !== "edit-service") {
    return err(
      `${pp !== undefined ? "--proxy-protocol" : sp ? "--synproxy" : "--no-synproxy"} goes with -A or -E`,
      2,
    );
  }
  if (pp !== undefined) cmd.opts.proxyProtocol = pp;
  if (sp !== undefined) cmd.opts.synProxy = sp;
  return undefined;
}
