/**
 * lvsd: the forwarding daemon. Opens its links (TAP or AF_PACKET), runs the engine on every
 * batch the links deliver, serves lvsadm on a Unix socket, and runs the timers (connection
 * expiry sweep, ARP retries, rate estimation, gratuitous ARP for new VIPs). Runs until
 * SIGINT/SIGTERM, then closes its links (TAP devices it created disappear) and its socket.
 *
 * Its log (src/control/observe/log.ts; docs/observability.md, "Logs") is one event per line on
 * stderr, from the control plane only: start and stop, links, configuration loads, health-check
 * transitions, commands that change the director, drop bursts, internal errors. Command-line
 * errors, before the logger exists, are plain "lvsd: ..." lines.
 */

import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { constants as osConstants } from "node:os";
import { performance } from "node:perf_hooks";
import { EngineControl } from "../../control/adapter.js";
import { run as runCommand } from "../../control/commands.js";
import { checkConfigFile, parseConfigFile } from "../../control/config/parser.js";
import { ConfigError, type LvsSyncDaemonSpec } from "../../control/config/types.js";
import { Defense } from "../../control/defense.js";
import { RateEstimator } from "../../control/estimator.js";
import { installLastResort } from "../../control/guard.js";
import { HealthManager } from "../../control/health/manager.js";
import { dropKernelIngress, KernelIngressError } from "../../control/kernel-ingress.js";
import { HostNames } from "../../control/names.js";
import {
  BUSY_BUDGET,
  GOVERNOR_TICK_MS,
  type GovernedLink,
  HOLD_MS,
  NapiDeferError,
  NapiGovernor,
} from "../../control/napi.js";
import type { ObservedDaemon } from "../../control/observe/daemon.js";
import { type HttpServer, HttpServerError, type Route, startHttpServer } from "../../control/observe/http.js";
import {
  createLogger,
  DROP_BURST_INTERVAL_MS,
  DropBurstWatch,
  type EventLog,
  lineLog,
} from "../../control/observe/log.js";
import { statusRoutes } from "../../control/observe/status.js";
import { TraceControl } from "../../control/observe/trace.js";
import { type ControlServer, ControlServerError, startControlServer } from "../../control/server.js";
import { SyncDaemon } from "../../control/sync/daemon.js";
import { runSysctl } from "../../control/sysctl.js";
import { sysfsLinkUp, VrrpManager } from "../../control/vrrp/manager.js";
import { WorkerPool } from "../../control/workers.js";
import { Director, type LinkBackend } from "../../datapath/director.js";
import { DROP_NAMES } from "../../datapath/drops.js";
import { Engine } from "../../datapath/engine.js";
import { BPF_MAP_TYPE_XSKMAP } from "../../datapath/io/bpf/asm.js";
import { IoError } from "../../datapath/io/link.js";
import { adviseHugePages, loadNative } from "../../datapath/io/native.js";
import { openRaw } from "../../datapath/io/rawsock.js";
import { openTap } from "../../datapath/io/tap.js";
import {
  attachXdpProgram,
  openXdp,
  XdpIo,
  type XdpProgramHandle,
  type XdpProgramRef,
} from "../../datapath/io/xdp.js";
import { IP_VS_SYNC_GROUP } from "../../datapath/packet/ipvs-sync.js";
import { VRRP_GROUP } from "../../datapath/packet/vrrp.js";
import { SYNC_MS, SynResponder, type XdpAttach } from "../../datapath/synresponder.js";
import { steerProgram, steerTablesOf } from "../../datapath/workers/steer.js";
import { bytesToMac, u32ToIp } from "../../lib/addr.js";
import { type LinkSpec, LVSD_USAGE, LvsdArgError, type LvsdArgs, parseLvsdArgs } from "./lvsd-args.js";

const VERSION = "lvsd (lvs-ts) 0.1.0";
/** How often the timers run. */
const TICK_MS = 200;
/** On stop, how long a MASTER's priority-0 advert and last sync messages get before the links close. */
const STOP_GRACE_MS = 100;
/** Connection-table slots swept per tick (a 1M table is swept in ~20 s when idle). */
const SWEEP_PER_TICK = 10_000;
/** Rounds of batches per readable event before yielding to the event loop. */
const ROUNDS_PER_WAKE = 64;

/** Before the logger exists (bad command line): a plain line. */
function say(msg: string): void {
  process.stderr.write(`lvsd: ${msg}\n`);
}

/** lvsd's logger: readable lines on a terminal, JSON lines otherwise (src/control/observe/log.ts). */
export function daemonLogger(args: Pick<LvsdArgs, "logLevel">): ReturnType<typeof createLogger> {
  const tty = process.stderr.isTTY === true;
  return createLogger({
    level: args.logLevel,
    pretty: tty,
    colorize: tty && process.env["NO_COLOR"] === undefined,
  });
}

export interface Daemon {
  readonly engine: Engine;
  readonly director: Director;
  /** Health checks and keepalived.conf (src/control/health); reload() on SIGHUP. */
  readonly health: HealthManager;
  /** The --http endpoint, when enabled (its `port` is the bound one, also for port 0). */
  readonly http: HttpServer | undefined;
  /** VRRP (the config's vrrp_instance blocks; docs/ha.md), when configured. */
  readonly vrrp: VrrpManager | undefined;
  /** Connection sync daemons (lvsadm --start-daemon, keepalived's lvs_sync_daemon). */
  readonly sync: SyncDaemon;
  /** `--workers N`: the data-path worker threads (docs/workers.md); undefined without. */
  readonly workers: WorkerPool | undefined;
  /** SIGHUP: reload the health configuration and VRRP (unchanged instances keep their state). */
  reload(): void;
  stop(): Promise<void>;
}

/** The Ethernet group address of an IPv4 multicast address (RFC 1112 6.4). */
function groupMac(group: number): Uint8Array {
  return Uint8Array.of(0x01, 0x00, 0x5e, (group >>> 16) & 0x7f, (group >>> 8) & 0xff, group & 0xff);
}

/**
 * Group MACs an AF_PACKET link accepts and joins besides its own (docs/ha.md, Limits): VRRP's
 * 224.0.0.18 and connection sync's default group 224.0.0.81, always (cheap, whether or not VRRP
 * or a sync daemon runs). A non-default sync group (`--mcast-group`, `group` of
 * lvs_sync_daemon) is not joined on an AF_PACKET link.
 */
const RAW_GROUP_MACS: readonly Uint8Array[] = [groupMac(VRRP_GROUP), groupMac(IP_VS_SYNC_GROUP)];

/** UMEM chunks each AF_XDP link brings (its default rxFrames + txFrames). */
const XDP_LINK_CHUNKS = 4096;
/** Slots of each handoff ring between two workers (AF_XDP links, docs/workers.md). */
const HANDOFF_SLOTS = 1024;

/** Receive queues of an interface in this namespace (/sys/class/net/IF/queues/rx-*); 1 if unknown. */
function rxQueues(ifname: string): number {
  try {
    return Math.max(
      1,
      readdirSync(`/sys/class/net/${ifname}/queues`).filter((q) => q.startsWith("rx-")).length,
    );
  } catch {
    return 1;
  }
}

/**
 * Start a director from parsed arguments, logging to `log` (default: daemonLogger). Throws
 * LvsdArgError/IoError/ControlServerError.
 */
export async function startDaemon(
  args: LvsdArgs & ConfigIdArg,
  log: EventLog = daemonLogger(args),
): Promise<Daemon> {
  const idOpt = args.configId !== undefined ? { configId: args.configId } : {};
  const nWorkers = args.workers ?? 0;
  // With workers the master engine forwards nothing (docs/workers.md): a small table will do.
  const engine = new Engine({ maxConns: nWorkers > 0 ? 1024 : args.maxConns, sweepPerBatch: 64 });
  // transparent huge pages under the connection table, before its pages are first touched:
  // random lookups among a million entries then miss the TLB far less (issue 13 §6)
  if (nWorkers === 0) adviseHugePages(engine.ct.buffers());
  const director = new Director(engine);
  const opened: LinkBackend[] = [];
  // synproxy-xdp= on raw links: the XDP SYN-cookie responders, their maps kept in the tick
  const responders: SynResponder[] = [];
  const closeResponders = (): void => {
    for (const r of responders.splice(0)) r.close();
  };
  /**
   * The XDP SYN responder for link `spec`, to be engine link `id`, attached to the interface. On
   * an xdp= link its program hands the rest to the XSKMAP `xsk`, which lvsd's socket then joins.
   */
  const startResponder = (spec: LinkSpec, id: number, xsk?: number): SynResponder => {
    const veth = isVeth(spec.name);
    const attach: XdpAttach = spec.synproxyXdp === "auto" && veth ? "skb" : spec.synproxyXdp!;
    let r: SynResponder;
    try {
      const native = loadNative();
      r = new SynResponder(native, engine, id, (prog) => native.bpfAttachXdp(prog, spec.name, attach), xsk);
    } catch (err) {
      throw new LvsdArgError(`--link ${spec.name}: synproxy-xdp: ${(err as Error).message}`);
    }
    responders.push(r);
    if (r.driverMode && veth)
      log.warn(
        { event: "synproxy.xdp_veth_native", link: id, ifname: spec.name },
        `link ${id}: ${spec.name} is a veth in driver-mode XDP: its SYN-ACKs (XDP_TX) reach the peer only if the peer has NAPI (an XDP program or GRO on it); otherwise they are dropped (xdp_tx_errors in ethtool -S)`,
      );
    if (!args.quiet)
      log.info(
        { event: "synproxy.xdp", link: id, ifname: spec.name, xdpMode: r.driverMode ? "drv" : "skb" },
        `link ${id}: ${spec.name}: SYN-proxy SYNs answered in XDP (${r.driverMode ? "driver" : "generic"} mode)`,
      );
    return r;
  };
  /** synproxy-xdp= on an xdp= link: the XSKMAP and the responder's program on it, as openXdp takes them. */
  const responderProgram = (spec: LinkSpec): XdpProgramRef => {
    let xsk: number;
    try {
      xsk = loadNative().bpfMapCreate(BPF_MAP_TYPE_XSKMAP, 4, 4, (spec.queue ?? 0) + 1, "lvs_sp_xsks");
    } catch (err) {
      throw new LvsdArgError(`--link ${spec.name}: synproxy-xdp: ${(err as Error).message}`);
    }
    // (the link gets the next engine index: links are added in order)
    const r = startResponder(spec, engine.net.links.length, xsk);
    return { mapFd: xsk, xdpMode: r.driverMode ? "drv" : "skb", redirect: "all" };
  };
  const now = (): number => performance.now();
  // AF_XDP links share one UMEM (the first one's, sized for all of them), so a frame forwarded
  // from one to another leaves by descriptor, without a copy (docs/xdp.md).
  const xdpLinks = args.links.filter((l) => l.kind === "xdp").length;
  let umemOwner: XdpIo | undefined;
  const openXdpLink = (spec: LinkSpec): XdpIo => {
    // synproxy-xdp=: the responder's program, which hands the rest to the socket's XSKMAP
    const program = spec.synproxyXdp !== undefined ? responderProgram(spec) : undefined;
    const o = {
      ifname: spec.name,
      ...(spec.queue !== undefined ? { queue: spec.queue } : {}),
      ...(spec.redirect !== undefined ? { redirect: spec.redirect } : {}),
      ...(spec.busyPoll ? { busyPoll: spec.busyPoll, busyBudget: BUSY_BUDGET } : {}),
      ...(program !== undefined ? { program } : {}),
    };
    if (umemOwner === undefined) {
      umemOwner = openXdp(xdpLinks > 1 ? { ...o, umemFrames: XDP_LINK_CHUNKS * xdpLinks } : o);
      return umemOwner;
    }
    try {
      return openXdp({ ...o, share: umemOwner });
    } catch {
      return openXdp(o); // a kernel without XDP_SHARED_UMEM across devices (before 5.10): a UMEM of its own
    }
  };
  let napi: NapiGovernor | undefined;
  /** The NAPI governor over `governed`, its ticks, and its restore at shutdown and exit. */
  const startGovernor = (governed: GovernedLink[]): NapiGovernor => {
    let gov: NapiGovernor;
    try {
      gov = new NapiGovernor(governed);
    } catch (err) {
      if (err instanceof NapiDeferError) throw new LvsdArgError(err.message);
      throw err;
    }
    gov.onChange = (ifname, on) =>
      log.info(
        { event: "link.napi_defer", ifname, deferred: on },
        on
          ? `${ifname}: overloaded, the kernel now leaves its NAPI poll to lvsd (deferral on, for ${HOLD_MS} ms at least)`
          : `${ifname}: NAPI deferral off`,
      );
    const ticks = setInterval(() => gov.tick(now()), GOVERNOR_TICK_MS).unref();
    undoIngress.push(() => {
      clearInterval(ticks);
      gov.restore();
    });
    if (!process.listeners("exit").includes(restoreIngress)) process.once("exit", restoreIngress);
    return gov;
  };
  // per link: its index among the governed links (-1: none), its receive rounds and those that
  // brought at least a busy poll's budget
  const governedAs = args.links.map(() => -1);
  let nGoverned = 0;
  const polls = args.links.map(() => 0);
  const fullPolls = args.links.map(() => 0);
  // kernel=drop: the host's stack kept away from raw links' frames, until lvsd ends
  const undoIngress: (() => void)[] = [];
  const restoreIngress = (): void => {
    for (const undo of undoIngress.splice(0)) undo();
  };
  try {
    for (const spec of args.links) {
      if (spec.kind !== "raw" || spec.kernel !== "drop") continue;
      try {
        undoIngress.push(dropKernelIngress(spec.name));
      } catch (err) {
        if (err instanceof KernelIngressError) throw new LvsdArgError(`--link ${spec.name}: ${err.message}`);
        throw err;
      }
    }
    if (undoIngress.length > 0) process.once("exit", restoreIngress);
    for (const spec of args.links) {
      if (nWorkers > 0) {
        // The workers open the sockets; the master only needs the interface's MAC and MTU.
        const probe = openRaw({ ifname: spec.name });
        const mac = probe.mac.slice();
        const mtu = probe.mtu;
        probe.close();
        engine.net.addLink(spec.name, mac, spec.addrs, mtu);
        continue;
      }
      const io =
        spec.kind === "tap"
          ? openTap({
              name: spec.name,
              ...(spec.bridge !== undefined ? { bridge: spec.bridge } : {}),
              ...(spec.mtu !== undefined ? { mtu: spec.mtu } : {}),
              ...(spec.mac !== undefined ? { mac: spec.mac } : {}),
            })
          : spec.kind === "xdp"
            ? openXdpLink(spec)
            : openRaw({
                ifname: spec.name,
                macs: RAW_GROUP_MACS,
                ...(spec.busyPoll !== undefined ? { busyPoll: spec.busyPoll } : {}),
              });
      opened.push(io);
      const link = engine.net.addLink(spec.name, io.mac, spec.addrs, io.mtu);
      director.attach(io);
      if (spec.synproxyXdp !== undefined && spec.kind === "raw") startResponder(spec, link.id);
      if (!args.quiet) {
        const addrs = spec.addrs.map((a) => `${u32ToIp(a.addr)}/${a.prefix}`);
        const br = spec.bridge ? ` bridge ${spec.bridge}` : "";
        // AF_XDP: where the program runs (driver or generic XDP) and whether frames are copied.
        const xdp =
          io instanceof XdpIo
            ? {
                queue: io.queue,
                xdpMode: io.xdpMode,
                zeroCopy: io.zeroCopy,
                redirect: io.redirect,
                ...(io.umemShared && umemOwner !== undefined
                  ? { umemOf: director.links.indexOf(umemOwner) }
                  : {}),
              }
            : undefined;
        const xdpText = xdp
          ? ` queue ${xdp.queue} xdp ${xdp.xdpMode} ${xdp.zeroCopy ? "zero-copy" : "copy"} redirect ${xdp.redirect}`
          : "";
        const id = director.links.length - 1;
        const mac = bytesToMac(io.mac);
        log.info(
          {
            event: "link.opened",
            link: id,
            kind: spec.kind,
            ifname: spec.name,
            ...(spec.bridge ? { bridge: spec.bridge } : {}),
            ...(xdp ?? {}),
            mac,
            mtu: io.mtu,
            addrs,
          },
          `link ${id}: ${spec.kind} ${spec.name}${br}${xdpText} mac ${mac} mtu ${io.mtu} addr ${addrs.join(",")}${xdp?.umemOf !== undefined ? ` umem of link ${xdp.umemOf}` : ""}`,
        );
      }
    }
    for (const r of args.routes) {
      try {
        engine.net.addRoute(r.net, r.prefix, r.via);
      } catch (err) {
        throw new LvsdArgError(
          `--route ${u32ToIp(r.net)}/${r.prefix} via ${u32ToIp(r.via)}: ${(err as Error).message}`,
        );
      }
    }
    for (const n of args.neighs) {
      const link = engine.net.route(n.addr);
      if (link < 0) throw new LvsdArgError(`--neigh ${u32ToIp(n.addr)}: not on a connected subnet`);
      engine.net.neigh.learn(n.addr, n.mac, 0, link, now(), true);
    }
    // busy-poll= on xdp links: NAPI deferral while a link is overloaded (src/control/napi.ts)
    const governed = args.links.flatMap((spec, l) => {
      const io = director.links[l];
      if (spec.kind !== "xdp" || !spec.busyPoll || !(io instanceof XdpIo)) return [];
      governedAs[l] = nGoverned++;
      return [
        {
          ifname: spec.name,
          usecs: spec.busyPoll,
          sample: () => {
            const d = io.detail();
            return { frames: d.rxPackets, drops: d.kernelDrops, polls: polls[l]!, fullPolls: fullPolls[l]! };
          },
        },
      ];
    });
    if (governed.length > 0) napi = startGovernor(governed);
  } catch (err) {
    closeResponders();
    for (const io of opened) io.close();
    restoreIngress();
    throw err;
  }

  const estimator = new RateEstimator(engine.table);
  const target = new EngineControl(engine);
  target.rates = estimator;
  // with --workers: one row per link and worker, "NAME:wN" (docs/workers.md)
  let pool: WorkerPool | undefined;
  // --workers with xdp= links: the XDP program of each, attached here (closed after the workers)
  const xdpPrograms: XdpProgramHandle[] = [];
  target.linkStats = () =>
    pool === undefined
      ? director.links.map((io) => ({
          name: io.name,
          mac: bytesToMac(io.mac),
          ...io.stats,
        }))
      : [
          ...engine.net.links.flatMap((link, l) =>
            Array.from({ length: pool!.count }, (_, w) => ({
              name: `${link.name}:w${w}`,
              mac: bytesToMac(link.mac),
              ...pool!.linkStats(w, l),
            })),
          ),
          // xdp= links: each worker's handoff (RX: frames other workers handed it; TX: frames it
          // handed them; RX-DROP: frames a full ring refused), docs/workers.md
          ...(xdpPrograms.length > 0 && pool.count > 1
            ? Array.from({ length: pool.count }, (_, w) => ({
                name: `handoff:w${w}`,
                mac: "00:00:00:00:00:00",
                ...pool!.linkStats(w, engine.net.links.length),
              }))
            : []),
        ];
  // generated frames outside a batch (ARP retries, gratuitous ARP): traced while a trace runs
  const sendTx = (): void => {
    director.sendTx(now());
  };
  // Announce VIPs that appear, as keepalived/the kernel do with gratuitous ARP.
  let knownVips = new Set<number>();
  let seenGen = -1;
  const announceNewVips = (): void => {
    if (engine.table.generation === seenGen) return;
    seenGen = engine.table.generation;
    const vips = new Set(engine.table.vips());
    engine.tx.reset();
    for (const v of vips) if (!knownVips.has(v)) engine.announce(v);
    knownVips = vips;
    sendTx();
  };

  // the kernel's flood defence (drop_entry, drop_packet, secure_tcp): src/control/defense.ts
  const defense = new Defense(engine, log);
  for (const sc of args.sysctls) {
    const r = runSysctl(sc, engine.sysctl, "lvsd");
    if (r.code !== 0) {
      for (const io of opened) io.close();
      throw new LvsdArgError(r.stderr.trim().replace(/^lvsd: /, ""));
    }
  }
  if (args.restore) {
    const text = readFileSync(args.restore, "utf8");
    const r = runCommand(["-R"], target, text);
    if (r.code !== 0) throw new LvsdArgError(`--restore ${args.restore}: ${r.stderr.trim() || "failed"}`);
  }

  // Health checks and keepalived.conf (src/control/health, src/control/config; docs/health.md).
  // The configuration is applied before the control socket opens; checks start once it is
  // open. Their table changes run on timers, between batches. SIGHUP (main) reloads; stop()
  // stops the checks (omega scripts).
  const health = new HealthManager(engine.table, {
    logger: log,
    allowEmptyReload: args.configReloadAllowEmpty,
    ...idOpt,
  });
  // Connection sync (docs/ha.md): lvsadm --start-daemon/--stop-daemon, or keepalived's
  // lvs_sync_daemon following its VRRP instance (backup, master while the instance is MASTER).
  const syncd = new SyncDaemon({ engine, linkNames: args.links.map((l) => l.name), flush: sendTx, now, log });
  // with --workers the frames are in the worker threads: no connection sync (docs/workers.md)
  if (nWorkers === 0) target.sync = syncd;
  let lvsSync: LvsSyncDaemonSpec | undefined;
  // VRRP (docs/ha.md): the config's vrrp_instance blocks, on lvsd's links; started below.
  let vrrp: VrrpManager | undefined;
  if (args.config) {
    const r = health.loadFile(args.config);
    if (!r.ok) {
      for (const io of opened) io.close();
      throw new LvsdArgError(`--config: ${r.error}`);
    }
    try {
      // the file the health manager just loaded (a big file is not parsed twice at start)
      const parsed = health.lastConfig ?? parseConfigFile(args.config, idOpt);
      const specs = parsed.vrrpInstances;
      lvsSync = parsed.lvsSyncDaemon;
      if (lvsSync && !args.links.some((l) => l.name === lvsSync!.interface))
        throw new ConfigError(
          lvsSync.where,
          `lvs_sync_daemon: interface '${lvsSync.interface}' is not one of lvsd's links (${args.links.map((l) => l.name).join(", ")})`,
        );
      // Also without instances: a reload may add some (docs/ha.md).
      vrrp = new VrrpManager(
        specs,
        {
          engine,
          onTransition: (instance, _from, to) => {
            if (lvsSync && instance === lvsSync.instance) followVrrp(to);
          },
          linkNames: args.links.map((l) => l.name),
          flush: sendTx,
          now,
          log,
          // track_interface: the kernel's operstate of each link's interface (docs/ha.md)
          linkUp: (l) => {
            const io = director.links[l];
            return io !== undefined && sysfsLinkUp(io.name);
          },
        },
        parsed.vrrpSyncGroups,
      );
    } catch (err) {
      for (const io of opened) io.close();
      if (err instanceof ConfigError) throw new LvsdArgError(`--config: ${err.message}`);
      throw err;
    }
  }

  // --workers N (docs/workers.md): the data path in worker threads, one AF_PACKET socket per link
  // and worker in a fanout group per link; the master engine keeps the tables.
  let workers: WorkerPool | undefined;
  let steerGen = -1;
  const steer = (): void => {
    if (workers === undefined || engine.table.generation === steerGen) return;
    steerGen = engine.table.generation;
    const prog = steerProgram(steerTablesOf(engine.table), nWorkers);
    if (prog.truncated > 0)
      log.warn(
        { event: "workers.steer_truncated", left_out: prog.truncated },
        `workers: the fanout program holds ${prog.insns.length} instructions; ${prog.truncated} addresses left out (their frames go by source)`,
      );
    workers.steer(prog.bytes);
  };
  if (nWorkers > 0) {
    if ((vrrp?.size ?? 0) > 0 || lvsSync) {
      throw new LvsdArgError(
        "--workers: VRRP instances and lvs_sync_daemon need the single-threaded data path",
      );
    }
    steerGen = engine.table.generation;
    const program = steerProgram(steerTablesOf(engine.table), nWorkers).bytes;
    const groupBase = (process.pid * 8) & 0xffff;
    let programs: (XdpProgramHandle | undefined)[] = [];
    try {
      // xdp= links: one XDP program per interface, here; worker i binds queue i behind it
      programs = args.links.map((spec) => {
        if (spec.kind !== "xdp") return undefined;
        const queues = rxQueues(spec.name);
        if (queues < nWorkers)
          throw new LvsdArgError(
            `${spec.name} has ${queues} receive queue(s) and each worker binds one: give it ${nWorkers} (ethtool -L ${spec.name} combined ${nWorkers}; a veth: numrxqueues/numtxqueues ${nWorkers} on both ends)`,
          );
        if (queues > nWorkers && !args.quiet)
          log.warn(
            { event: "workers.xdp_queues", ifname: spec.name, queues, workers: nWorkers },
            `${spec.name} has ${queues} receive queues: frames arriving on queues ${nWorkers}..${queues - 1} go to the kernel`,
          );
        const h = attachXdpProgram({
          ifname: spec.name,
          queues,
          ...(spec.redirect !== undefined ? { redirect: spec.redirect } : {}),
        });
        xdpPrograms.push(h);
        return h;
      });
      // busy-poll= on xdp links: each worker busy-polls its queue; one governor per interface
      // here, on the workers' summed counters (they publish every 50 ms)
      const governedW = args.links.flatMap((spec, l) =>
        spec.kind === "xdp" && spec.busyPoll
          ? [
              {
                ifname: spec.name,
                usecs: spec.busyPoll,
                sample: () => workers?.busySample(l) ?? { frames: 0, drops: 0, polls: 0, fullPolls: 0 },
              },
            ]
          : [],
      );
      if (governedW.length > 0) napi = startGovernor(governedW);
      workers = await WorkerPool.start({
        count: nWorkers,
        engine,
        mode: "events",
        sequential: true,
        maxConns: Math.ceil(args.maxConns / nWorkers),
        net: {
          addrs: args.links.map((l) => l.addrs),
          routes: args.routes,
          neighs: args.neighs.map((n) => ({ addr: n.addr, mac: n.mac, link: engine.net.route(n.addr) })),
        },
        links: (i) =>
          args.links.map((spec, l) => {
            const h = programs[l];
            if (h !== undefined)
              return {
                kind: "xdp" as const,
                name: spec.name,
                queue: i,
                mapFd: h.mapFd,
                xdpMode: h.xdpMode,
                redirect: h.redirect,
                ...(spec.busyPoll ? { busyPoll: spec.busyPoll, busyBudget: BUSY_BUDGET } : {}),
              };
            return {
              kind: "raw" as const,
              name: spec.name,
              fanoutGroup: (groupBase + l) & 0xffff,
              program,
              ...(spec.busyPoll !== undefined ? { busyPoll: spec.busyPoll } : {}),
            };
          }),
        ...(xdpPrograms.length > 0 ? { handoff: { slots: HANDOFF_SLOTS, slotSize: 2048 } } : {}),
      });
    } catch (err) {
      health.stop();
      for (const h of xdpPrograms.splice(0)) h.close();
      throw new LvsdArgError(`--workers ${nWorkers}: ${(err as Error).message}`);
    }
    pool = workers;
    // the defence's "available memory" is the workers' tables' free room
    const perWorker = Math.ceil(args.maxConns / nWorkers);
    defense.room = () => ({ capacity: perWorker * nWorkers, count: workers!.totals().conns });
    target.workerConns = () => workers!.conns(); // lvsadm -Lc: the workers' tables
    pool.onError = (index, message) =>
      log.error({ event: "workers.error", worker: index, error: message }, `worker ${index}: ${message}`);
    if (!args.quiet)
      log.info(
        { event: "workers.started", workers: nWorkers, links: args.links.map((l) => l.name) },
        `${nWorkers} data-path worker thread(s) on ${args.links.map((l) => `${l.name} (${l.kind === "xdp" ? `AF_XDP queues 0..${nWorkers - 1}, XDP ${xdpPrograms.find((h) => h.ifname === l.name)?.xdpMode}` : "AF_PACKET fanout"})`).join(", ")}`,
      );
  }

  // Packet traces (lvsadm --trace): pcapng files of the frames the director moves; docs/observability.md
  const trace = new TraceControl({ director, linkNames: args.links.map((l) => l.name), log });

  let control: ControlServer;
  try {
    // every command is logged: changes at info, with the peer's pid/uid/gid (src/control/server.ts)
    control = await startControlServer(args.control, target, {
      // lvsadm --trace (src/control/observe/trace.ts); not with --workers (the frames are theirs)
      ...(nWorkers === 0 ? { trace } : {}),
      hostNames: new HostNames(), // listings without -n print host names (src/control/names.ts)
      onRequest: () => {
        announceNewVips();
        workers?.collect(); // lvsadm reads the workers' summed counters
      },
      health,
      vrrp: vrrp ?? { statusText: () => "no vrrp_instance configured\n" },
      log,
    });
  } catch (err) {
    for (const io of opened) io.close();
    throw err;
  }
  // Observability over HTTP (--http): metrics, status page and API, read at request time.
  let http: HttpServer | undefined;
  if (args.http) {
    const observed: ObservedDaemon = {
      engine,
      director,
      target,
      health,
      estimator,
      linkNames: args.links.map((l) => l.name),
      maxConns: args.maxConns,
      startedAtMs: Date.now(),
      version: VERSION,
      ...(vrrp ? { vrrp } : {}),
      sync: syncd,
      // --workers: the entries are in the workers' tables (docs/workers.md)
      ...(workers !== undefined
        ? {
            conntrackEntries: () => workers!.totals().conns,
            conntrackKinds: (out: Float64Array) => workers!.kindTotals(out),
          }
        : {}),
    };
    // prom-client is loaded only here: an lvsd without --http does not pay its start-up
    const { metricsRoutes } = await import("../../control/observe/metrics.js");
    const routes: Record<string, Route> = {
      ...metricsRoutes(observed, { log: lineLog(log, "metrics.worker", "warn") }),
      ...statusRoutes(observed),
    };
    try {
      http = await startHttpServer(
        args.http.host,
        args.http.port,
        routes,
        lineLog(log, "http.error", "error"),
      );
    } catch (err) {
      for (const io of opened) io.close();
      await control.close();
      throw err;
    }
    if (!args.quiet)
      log.info(
        { event: "http.listening", address: args.http.host, port: http.port },
        `http: listening on ${args.http.host.includes(":") ? `[${args.http.host}]` : args.http.host}:${http.port}`,
      );
  }
  // keepalived's lvs_sync_daemon: a backup from the start; master while its instance is MASTER.
  function followVrrp(to: string): void {
    const ls = lvsSync;
    if (!ls) return;
    const want = to === "MASTER" ? "master" : "backup";
    const other = want === "master" ? "backup" : "master";
    const o = {
      mcastIfn: ls.interface,
      syncid: ls.syncid ?? 0,
      ...(ls.maxlen !== undefined ? { syncMaxlen: ls.maxlen } : {}),
      ...(ls.group !== undefined ? { mcastGroup: ls.group } : {}),
      ...(ls.port !== undefined ? { mcastPort: ls.port } : {}),
      ...(ls.ttl !== undefined ? { mcastTtl: ls.ttl } : {}),
    };
    try {
      if (syncd.running(other)) syncd.stop(other);
      if (!syncd.running(want)) syncd.start(want, o);
    } catch (err) {
      log.error({ event: "sync.failed", error: (err as Error).message }, `sync: ${(err as Error).message}`);
    }
  }
  if (lvsSync) followVrrp("BACKUP");
  health.start(); // health checks (src/control/health)
  defense.start(); // once a second, as the kernel's defense_work
  // HA: VRRP (src/control/vrrp/manager.ts) disowns its VIPs, then runs its instances, logging
  // vrrp.* events through `log` like the rest (docs/observability.md, "Logs").
  vrrp?.start();
  announceNewVips();

  // Per link: read a batch, process, send; go on only while batches come back full (the
  // readiness callback is level-triggered, so anything left brings us back next loop turn).
  // A busy-polling xdp link's receive runs the NAPI poll for at most its budget of frames: go on
  // while frames come at all (each round polls again; ROUNDS_PER_WAKE bounds it).
  const cap = director.rx.capacity;
  let internalErrors = 0;
  let lastErrorLog = Number.NEGATIVE_INFINITY;
  director.links.forEach((io, l) => {
    io.onReadable(() => {
      // The data path returns statuses and never throws; should a bug make it throw anyway,
      // lvsd logs it (rate-limited), counts it and keeps forwarding with its state intact.
      try {
        if (governedAs[l]! < 0) {
          for (let r = 0; r < ROUNDS_PER_WAKE; r++) if (director.pumpLink(l, now()) < cap) break;
        } else {
          // busy-poll=: each round polls the queue; the governor watches how full they come back
          for (let r = 0; r < ROUNDS_PER_WAKE; r++) {
            const n = director.pumpLink(l, now());
            polls[l]!++;
            if (n >= BUSY_BUDGET) fullPolls[l]!++;
            if (n === cap && r === 0) napi!.overloaded(governedAs[l]!, now());
            if (n === 0) break;
          }
        }
      } catch (err) {
        internalErrors++;
        const t = now();
        if (t - lastErrorLog > 10_000) {
          lastErrorLog = t;
          const error = (err as Error).stack ?? String(err);
          log.error(
            { event: "datapath.internal_error", link: l, count: internalErrors, error },
            `internal error #${internalErrors} on link ${l} (batch dropped): ${error}`,
          );
        }
      }
    });
  });

  let respondersSynced = 0;
  const timer = setInterval(() => {
    const t = now();
    if (workers !== undefined) {
      workers.tick(); // sysctls, timeouts, the defence's knobs
      steer(); // the fanout program, when the table's addresses may have changed
      workers.collect();
    }
    engine.maintain(t);
    if (responders.length > 0 && t - respondersSynced >= SYNC_MS) {
      respondersSynced = t;
      for (const r of responders) {
        try {
          r.sync();
        } catch (err) {
          log.warn(
            { event: "synproxy.xdp_sync_failed", error: (err as Error).message },
            `synproxy-xdp: updating the XDP maps failed: ${(err as Error).message}`,
          );
        }
      }
    }
    sendTx();
    engine.ct.sweep(SWEEP_PER_TICK);
    estimator.tick(t);
    announceNewVips();
  }, TICK_MS);

  // Drop bursts and link errors, every DROP_BURST_INTERVAL_MS: counters compared, never per packet.
  const dropWatch = new DropBurstWatch(DROP_NAMES, engine.drops, log, { now });
  const linkErrno = director.links.map(() => 0);
  const watchTimer = setInterval(() => {
    dropWatch.check();
    director.links.forEach((io, l) => {
      const errno = (io as { detail?: () => { lastErrno: number } }).detail?.().lastErrno ?? 0;
      if (errno === linkErrno[l]) return;
      linkErrno[l] = errno;
      if (errno !== 0)
        log.warn(
          { event: "link.error", link: l, ifname: io.name, errno },
          `link ${l}: ${io.name}: the data path saw ${errnoText(errno)}`,
        );
    });
  }, DROP_BURST_INTERVAL_MS);

  let stopped = false;
  return {
    engine,
    director,
    health,
    http,
    vrrp,
    sync: syncd,
    workers,
    reload() {
      const r = health.reload();
      if (!r.ok && health.configFile === undefined)
        log.warn({ event: "config.failed", trigger: "reload", error: r.error }, `SIGHUP: ${r.error}`);
      if (!r.ok || args.config === undefined || vrrp === undefined) return;
      // VRRP reloads from the file the health manager just loaded (lvsadm --import may have
      // switched it), keeping the state of unchanged instances (docs/ha.md).
      const file = health.configFile ?? args.config;
      let parsed: ReturnType<typeof parseConfigFile>;
      try {
        parsed = health.lastConfig ?? parseConfigFile(file, idOpt);
      } catch {
        return; // the health manager has reported it; the running VRRP stays
      }
      try {
        const v = vrrp.reload(parsed.vrrpInstances, parsed.vrrpSyncGroups);
        log.info(
          { event: "vrrp.reloaded", file, kept: v.kept, added: v.added, removed: v.removed },
          `vrrp: reloaded ${file}: ${v.kept.length} kept, ${v.added.length} added, ${v.removed.length} removed`,
        );
      } catch (err) {
        const msg = (err as Error).message;
        log.warn(
          { event: "vrrp.reload_failed", file, error: msg },
          `vrrp: SIGHUP: ${msg} (the running VRRP instances are kept)`,
        );
      }
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      const wasMaster = vrrp?.hasMaster() ?? false;
      const syncing = syncd.running("master");
      vrrp?.stop(); // a MASTER's priority-0 advert goes out before the links close
      syncd.stopAll(); // a master sends what it holds first
      // Closing a TAP destroys its device, and the kernel may drop what it has not delivered
      // from it yet: give the priority-0 advert and the last sync messages time to leave.
      if (wasMaster || syncing) await new Promise((r) => setTimeout(r, STOP_GRACE_MS));
      health.stop(); // health checks (src/control/health)
      defense.stop();
      trace.close(); // a running lvsadm --trace: its file completed and closed
      clearInterval(timer);
      clearInterval(watchTimer);
      closeResponders(); // the XDP programs off the interfaces before lvsd's sockets close
      director.links.forEach((io, l) => {
        io.onReadable(null);
        io.close();
        if (!args.quiet)
          log.info({ event: "link.closed", link: l, ifname: io.name }, `link ${l}: ${io.name} closed`);
      });
      await workers?.stop();
      for (const h of xdpPrograms.splice(0)) h.close(); // after the workers' sockets
      restoreIngress();
      process.removeListener("exit", restoreIngress);
      await control.close();
      await http?.close();
    },
  };
}

/** Whether interface `name` is a veth (its native XDP_TX drops frames unless the peer has NAPI). */
function isVeth(name: string): boolean {
  const r = spawnSync("ip", ["-d", "-o", "link", "show", "dev", name], { encoding: "utf8" });
  return r.status === 0 && /\bveth\b/.test(r.stdout);
}

/** "error 5 (EIO)" for link.error; the number alone when Node does not know its name. */
function errnoText(errno: number): string {
  for (const [name, n] of Object.entries(osConstants.errno))
    if (n === errno) return `error ${errno} (${name})`;
  return `error ${errno}`;
}

function errorText(err: unknown): string {
  if (err instanceof LvsdArgError) return err.message;
  if (err instanceof IoError) {
    if (err.code === "ERR_IO_NO_PRIVILEGE")
      return `${err.message} (lvsd needs root or CAP_NET_ADMIN and CAP_NET_RAW)`;
    return err.message;
  }
  if (err instanceof ControlServerError) return err.message;
  if (err instanceof HttpServerError) return err.message;
  return err instanceof Error ? err.message : String(err);
}

/** `--config-id ID`: keepalived's -i, the id `@ID` lines of the configuration are compared with. */
interface ConfigIdArg {
  configId?: string;
}

/**
 * `--config-test` (keepalived -t): load --config FILE as a start would, print every warning and
 * error with its file and line, exit 1 on errors and 0 otherwise; nothing is started.
 */
function configTest(argv: readonly string[], configId: string | undefined): number {
  const i = argv.indexOf("--config");
  const file = i >= 0 ? argv[i + 1] : undefined;
  if (file === undefined || file.startsWith("--")) {
    say("--config-test: needs --config FILE");
    return 2;
  }
  const r = checkConfigFile(file, configId !== undefined ? { configId } : {});
  for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`);
  for (const e of r.errors) process.stderr.write(`error: ${e.message}\n`);
  if (r.config) {
    const c = r.config;
    const rs = c.virtualServers.reduce((n, v) => n + v.realServers.length, 0);
    process.stdout.write(
      `${file}: ${c.virtualServers.length} virtual servers, ${rs} real servers, ${c.vrrpInstances.length} vrrp instances; ${r.warnings.length} warnings\n`,
    );
  }
  return r.errors.length > 0 ? 1 : 0;
}

export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  let args: LvsdArgs & ConfigIdArg;
  // --config-id and --config-test are handled here, before the other options
  const rest = [...argv];
  let configId: string | undefined;
  const idAt = rest.indexOf("--config-id");
  if (idAt >= 0) {
    configId = rest[idAt + 1];
    if (configId === undefined || configId === "") {
      say("--config-id: needs an id");
      process.exitCode = 2;
      return;
    }
    rest.splice(idAt, 2);
  }
  if (rest.includes("--config-test")) {
    process.exitCode = configTest(rest, configId);
    return;
  }
  try {
    args = { ...parseLvsdArgs(rest), ...(configId !== undefined ? { configId } : {}) };
  } catch (err) {
    say(errorText(err));
    process.exitCode = 2;
    return;
  }
  if (args.help) {
    process.stdout.write(LVSD_USAGE);
    return;
  }
  if (args.version) {
    process.stdout.write(`${VERSION}\n`);
    return;
  }
  const log = daemonLogger(args);
  let d: Daemon;
  try {
    d = await startDaemon(args, log);
  } catch (err) {
    const error = errorText(err).replace(/^lvsd: /, "");
    const code = (err as { code?: unknown }).code;
    log.fatal({ event: "lvsd.start_failed", error, ...(typeof code === "string" ? { code } : {}) }, error);
    process.exitCode = 1;
    return;
  }
  // an error nothing caught is logged and lvsd goes on with its tables (src/control/guard.ts)
  installLastResort(log);
  if (!args.quiet)
    log.info(
      {
        event: "lvsd.started",
        version: VERSION,
        control: args.control,
        links: args.links.map((l) => l.name),
        ...(args.config !== undefined ? { config: args.config } : {}),
        ...(d.http ? { http: d.http.port } : {}),
        logLevel: args.logLevel,
      },
      `ready; control socket ${args.control}`,
    );
  const shutdown = (sig: string): void => {
    if (!args.quiet) log.info({ event: "lvsd.stopping", signal: sig }, `${sig}: shutting down`);
    d.stop().then(
      () => {
        // the log is written synchronously: this line is out before the process ends
        if (!args.quiet) log.info({ event: "lvsd.stopped", signal: sig }, "stopped");
        process.exit(0);
      },
      (err: unknown) => {
        log.error(
          { event: "lvsd.stop_failed", signal: sig, error: (err as Error).stack ?? String(err) },
          `${sig}: stopping failed: ${(err as Error).message}`,
        );
        process.exit(1);
      },
    );
  };
  process.once("SIGINT", () => shutdown("SIGINT"));
  process.once("SIGTERM", () => shutdown("SIGTERM"));
  // health checks (src/control/health): SIGHUP reloads the keepalived.conf; an error keeps the old
  // state. The manager logs config.loaded or config.failed.
  process.on("SIGHUP", () => {
    log.info(
      {
        event: "config.reload",
        signal: "SIGHUP",
        ...(d.health.configFile ? { file: d.health.configFile } : {}),
      },
      "SIGHUP: reloading the configuration",
    );
    d.reload(); // services, checks and VRRP (docs/ha.md: unchanged VRRP instances keep their state)
  });
}
