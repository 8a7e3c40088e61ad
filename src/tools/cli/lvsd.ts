/**
 * lvsd: the forwarding daemon. Opens its links (TAP or AF_PACKET), runs the engine on every
 * batch the links deliver, serves lvsadm on a Unix socket, and runs the timers (connection
 * expiry sweep, ARP retries, rate estimation, gratuitous ARP for new VIPs). Runs until
 * SIGINT/SIGTERM, then closes its links (TAP devices it created disappear) and its socket.
 */

import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { EngineControl } from "../../control/adapter.js";
import { run as runCommand } from "../../control/commands.js";
import { RateEstimator } from "../../control/estimator.js";
import { HealthManager } from "../../control/health/manager.js";
import { type ControlServer, ControlServerError, startControlServer } from "../../control/server.js";
import { Director, type LinkBackend } from "../../datapath/director.js";
import { Engine } from "../../datapath/engine.js";
import { IoError } from "../../datapath/io/link.js";
import { openRaw } from "../../datapath/io/rawsock.js";
import { openTap } from "../../datapath/io/tap.js";
import { bytesToMac, u32ToIp } from "../../lib/addr.js";
import { LVSD_USAGE, LvsdArgError, type LvsdArgs, parseLvsdArgs } from "./lvsd-args.js";

const VERSION = "lvsd (lvs-ts) 0.1.0";
/** How often the timers run. */
const TICK_MS = 200;
/** Connection-table slots swept per tick (a 1M table is swept in ~20 s when idle). */
const SWEEP_PER_TICK = 10_000;
/** Rounds of batches per readable event before yielding to the event loop. */
const ROUNDS_PER_WAKE = 64;

function log(msg: string): void {
  process.stderr.write(`lvsd: ${msg}\n`);
}

export interface Daemon {
  readonly engine: Engine;
  readonly director: Director;
  /** Health checks and keepalived.conf (src/control/health); reload() on SIGHUP. */
  readonly health: HealthManager;
  stop(): Promise<void>;
}

/** Start a director from parsed arguments. Throws LvsdArgError/IoError/ControlServerError. */
export async function startDaemon(args: LvsdArgs): Promise<Daemon> {
  const engine = new Engine({ maxConns: args.maxConns, sweepPerBatch: 64 });
  const director = new Director(engine);
  const opened: LinkBackend[] = [];
  const now = (): number => performance.now();
  try {
    for (const spec of args.links) {
      const io =
        spec.kind === "tap"
          ? openTap({
              name: spec.name,
              ...(spec.bridge !== undefined ? { bridge: spec.bridge } : {}),
              ...(spec.mtu !== undefined ? { mtu: spec.mtu } : {}),
              ...(spec.mac !== undefined ? { mac: spec.mac } : {}),
            })
          : openRaw({ ifname: spec.name });
      opened.push(io);
      engine.net.addLink(spec.name, io.mac, spec.addrs, io.mtu);
      director.attach(io);
      if (!args.quiet) {
        const addrs = spec.addrs.map((a) => `${u32ToIp(a.addr)}/${a.prefix}`).join(",");
        const br = spec.bridge ? ` bridge ${spec.bridge}` : "";
        log(
          `link ${director.links.length - 1}: ${spec.kind} ${spec.name}${br} mac ${bytesToMac(io.mac)} mtu ${io.mtu} addr ${addrs}`,
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
  } catch (err) {
    for (const io of opened) io.close();
    throw err;
  }

  const estimator = new RateEstimator(engine.table);
  const target = new EngineControl(engine);
  target.rates = estimator;
  target.linkStats = () =>
    director.links.map((io) => ({
      name: io.name,
      mac: bytesToMac(io.mac),
      ...io.stats,
    }));
  const sendTx = (): void => {
    const tx = engine.tx;
    if (tx.count === 0) return;
    for (let l = 0; l < director.links.length; l++) director.links[l]!.send(tx, l);
    tx.reset();
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

  if (args.restore) {
    const text = readFileSync(args.restore, "utf8");
    const r = runCommand(["-R"], target, text);
    if (r.code !== 0) throw new LvsdArgError(`--restore ${args.restore}: ${r.stderr.trim() || "failed"}`);
  }

  // ---- health checks and keepalived.conf (src/control/health, src/control/config; docs/health.md) ----
  // The configuration is applied before the control socket opens; checks start once it is
  // open. Their table changes run on timers, between batches. SIGHUP (main) reloads; stop()
  // stops the checks (omega scripts).
  const health = new HealthManager(engine.table, { log });
  if (args.config) {
    const r = health.loadFile(args.config);
    if (!r.ok) {
      for (const io of opened) io.close();
      throw new LvsdArgError(`--config: ${r.error}`);
    }
  }
  // ---- end of health checks ----

  let control: ControlServer;
  try {
    control = await startControlServer(args.control, target, { onRequest: () => announceNewVips(), health });
  } catch (err) {
    for (const io of opened) io.close();
    throw err;
  }
  health.start(); // health checks (src/control/health)
  announceNewVips();

  // Per link: read a batch, process, send; go on only while batches come back full (the
  // readiness callback is level-triggered, so anything left brings us back next loop turn).
  const cap = director.rx.capacity;
  let internalErrors = 0;
  let lastErrorLog = Number.NEGATIVE_INFINITY;
  director.links.forEach((io, l) => {
    io.onReadable(() => {
      // The data path returns statuses and never throws; should a bug make it throw anyway,
      // lvsd logs it (rate-limited), counts it and keeps forwarding with its state intact.
      try {
        for (let r = 0; r < ROUNDS_PER_WAKE; r++) if (director.pumpLink(l, now()) < cap) break;
      } catch (err) {
        internalErrors++;
        const t = now();
        if (t - lastErrorLog > 10_000) {
          lastErrorLog = t;
          log(
            `internal error #${internalErrors} on link ${l} (batch dropped): ${(err as Error).stack ?? err}`,
          );
        }
      }
    });
  });

  const timer = setInterval(() => {
    const t = now();
    engine.maintain(t);
    sendTx();
    engine.ct.sweep(SWEEP_PER_TICK);
    estimator.tick(t);
    announceNewVips();
  }, TICK_MS);

  let stopped = false;
  return {
    engine,
    director,
    health,
    async stop() {
      if (stopped) return;
      stopped = true;
      health.stop(); // health checks (src/control/health)
      clearInterval(timer);
      for (const io of director.links) {
        io.onReadable(null);
        io.close();
      }
      await control.close();
    },
  };
}

function errorText(err: unknown): string {
  if (err instanceof LvsdArgError) return err.message;
  if (err instanceof IoError) {
    if (err.code === "ERR_IO_NO_PRIVILEGE")
      return `${err.message} (lvsd needs root or CAP_NET_ADMIN and CAP_NET_RAW)`;
    return err.message;
  }
  if (err instanceof ControlServerError) return err.message;
  return err instanceof Error ? err.message : String(err);
}

export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  let args: LvsdArgs;
  try {
    args = parseLvsdArgs(argv);
  } catch (err) {
    log(errorText(err));
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
  let d: Daemon;
  try {
    d = await startDaemon(args);
  } catch (err) {
    log(errorText(err));
    process.exitCode = 1;
    return;
  }
  if (!args.quiet) log(`ready; control socket ${args.control}`);
  const shutdown = (sig: string): void => {
    if (!args.quiet) log(`${sig}: shutting down`);
    d.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once("SIGINT", () => shutdown("SIGINT"));
  process.once("SIGTERM", () => shutdown("SIGTERM"));
  // health checks (src/control/health): SIGHUP reloads the keepalived.conf; an error keeps the old state
  process.on("SIGHUP", () => {
    log("SIGHUP: reloading the configuration");
    const r = d.health.reload();
    if (!r.ok && d.health.configFile === undefined) log(`SIGHUP: ${r.error}`);
  });
}
