/**
 * The commands of lvs-realserver as functions (the CLI in src/tools/cli/realserver.ts parses, prints
 * and handles signals and --daemon around them; tests call them directly).
 */
import { IoError, IoErrorCode } from "../../datapath/io/link.js";
import {
  AddrScope,
  addAddr,
  ifIndex,
  ipv4Conf,
  listAddrs,
  sysctlGet,
  sysctlSet,
} from "../../datapath/io/netconf.js";
import { u32ToIp } from "../../lib/addr.js";
import type { RsArgs } from "./args.js";
import { defaultTunName } from "./args.js";
import { type DecapStats, Decapsulator } from "./decap.js";
import { fromIoError, RealServerError, RsErrorCode } from "./errors.js";
import {
  claim,
  io,
  openTarget,
  type ReleaseReport,
  release,
  requireIf,
  setDecap,
  sysctlName,
  type Target,
} from "./setup.js";
import { decapAlive, procStart, type RsState } from "./state.js";

/** Where commands report (the CLI prints; tests collect). */
export interface Reporter {
  info(msg: string): void;
  warn(msg: string): void;
}

export const silent: Reporter = { info() {}, warn() {} };

function nsText(t: Target): string {
  return t.netns === undefined ? "" : ` in netns ${t.netns}`;
}

/** `dr`: VIPs on lo, ARP sysctls. */
export function runDr(a: RsArgs, out: Reporter = silent): void {
  const t = openTarget(a.netns, a.stateDir);
  const r = claim(t, "dr", a.vips, a.devs);
  const vipText = [
    ...r.added.map((v) => `${v}/32 added to lo`),
    ...r.present.map((v) => `${v} already on lo`),
  ].join(", ");
  out.info(`dr${nsText(t)}: ${vipText}`);
  if (r.changed.length > 0) out.info(`  ${r.changed.map(([p, , v]) => `${sysctlName(p)}=${v}`).join(" ")}`);
}

function reportRelease(label: string, t: Target, r: ReleaseReport, out: Reporter): void {
  if (r.nothing) {
    out.info(`${label}${nsText(t)}: nothing recorded, nothing to undo`);
    return;
  }
  const parts: string[] = [];
  if (r.removed.length > 0) parts.push(`removed ${r.removed.join(", ")} from lo`);
  if (r.kept.length > 0) parts.push(`left ${r.kept.join(", ")} on lo (not ours to remove, or still claimed)`);
  if (r.restored.length > 0)
    parts.push(`restored ${r.restored.map(([p, v]) => `${sysctlName(p)}=${v}`).join(" ")}`);
  if (r.stillClaimed) parts.push("sysctls kept: other VIPs are still set up in this namespace");
  out.info(`${label}${nsText(t)}: ${parts.join("; ") || "nothing left to revert"}`);
  for (const w of r.warnings) out.warn(w);
}

function merge(a: ReleaseReport, b: ReleaseReport): ReleaseReport {
  return {
    nothing: a.nothing && b.nothing,
    removed: [...a.removed, ...b.removed],
    kept: [...a.kept, ...b.kept],
    restored: [...a.restored, ...b.restored],
    warnings: [...a.warnings, ...b.warnings],
    stillClaimed: b.stillClaimed,
  };
}

/** Stop a recorded decapsulator and wait for it to exit (it reverts its own setup). */
async function stopDecap(t: Target, out: Reporter): Promise<boolean> {
  const st = t.store.load();
  const d = st?.decap;
  if (d === undefined || !decapAlive(d)) return false;
  process.kill(d.pid, "SIGTERM");
  const deadline = Date.now() + 10_000;
  while (decapAlive(d) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
  if (decapAlive(d)) {
    out.warn(`decapsulator pid ${d.pid} did not stop on SIGTERM within 10 s: killing it`);
    process.kill(d.pid, "SIGKILL");
    while (decapAlive(d)) await new Promise((r) => setTimeout(r, 25));
  } else {
    out.info(`stopped the decapsulator (pid ${d.pid}); it reverted its own setup`);
  }
  return true;
}

/** `dr --undo` / `tun --undo`. Idempotent. */
export async function runUndo(a: RsArgs, out: Reporter = silent): Promise<ReleaseReport> {
  const t = openTarget(a.netns, a.stateDir);
  const by = a.command === "tun" ? "tun" : "dr";
  let r: ReleaseReport;
  if (by === "tun" && a.vips.length > 0) {
    // Release the named VIPs; stop the decapsulator only when no tunnel VIP is left.
    r = release(t, "tun", a.vips);
    if (!(t.store.load()?.vips.some((c) => c.by === "tun") ?? false)) {
      await stopDecap(t, out);
      r = merge(r, release(t, "tun"));
    }
  } else if (by === "tun") {
    const stopped = await stopDecap(t, out); // it reverts its own setup as it exits
    r = release(t, "tun"); // and whatever a killed one left behind
    if (stopped && r.nothing) return r;
  } else {
    r = release(t, "dr", a.vips.length > 0 ? a.vips : undefined);
  }
  reportRelease(`${by} --undo`, t, r, out);
  return r;
}

/** `status`: the recorded state as text. */
export function runStatus(a: RsArgs, out: Reporter = silent): RsState | undefined {
  const t = openTarget(a.netns, a.stateDir);
  const st = t.store.load();
  if (st === undefined) {
    out.info(`nothing recorded${nsText(t)} (${t.store.file})`);
    return undefined;
  }
  out.info(`state${nsText(t)}: ${t.store.file}`);
  for (const c of st.vips) out.info(`  vip ${c.addr} (${c.by}${c.added ? ", added by us" : ", was there"})`);
  for (const s of st.sysctls) out.info(`  sysctl ${sysctlName(s.path)} (was ${s.prev})`);
  if (st.decap !== undefined) {
    const alive = decapAlive(st.decap);
    out.info(
      `  decapsulator pid ${st.decap.pid} ${alive ? "running" : "NOT running"}: IPIP to ${st.decap.locals.join(", ")} on ${st.decap.dev} -> ${st.decap.tun}`,
    );
  }
  return st;
}

/** Exists `name` in the namespace? */
function hasIf(name: string, netns: string | undefined): boolean {
  try {
    ifIndex(name, netns);
    return true;
  } catch (err) {
    if (err instanceof IoError && err.code === IoErrorCode.NO_DEVICE) return false;
    throw fromIoError(err);
  }
}

/** A running `tun` setup: VIPs claimed, decapsulator pumping. */
export class TunSession {
  readonly target: Target;
  readonly decap: Decapsulator;
  readonly dev: string;
  readonly tunName: string;
  readonly locals: number[];
  private stopped = false;

  private constructor(target: Target, decap: Decapsulator, dev: string, tunName: string, locals: number[]) {
    this.target = target;
    this.decap = decap;
    this.dev = dev;
    this.tunName = tunName;
    this.locals = locals;
  }

  /**
   * Set up and start. Checks everything it can before changing anything; on a failure after the
   * first change it reverts what it did.
   */
  static start(a: RsArgs, out: Reporter = silent, extra: { pidFile?: string } = {}): TunSession {
    const t = openTarget(a.netns, a.stateDir);
    const ns = a.netns;
    const dev = a.devs[0]!;
    if (hasIf("tunl0", ns)) {
      throw new RealServerError(
        RsErrorCode.KERNEL_IPIP,
        `this kernel has the ipip module (tunl0 exists${nsText(t)}): the kernel decapsulates IPIP itself and a userspace decapsulator would deliver every packet twice. Use 'ip link set tunl0 up', 'sysctl net.ipv4.conf.tunl0.rp_filter=0' (or 2) and 'lvs-realserver dr --vip ...' instead (docs/realserver.md).`,
      );
    }
    const devIdx = requireIf(dev, ns);
    let locals = a.locals;
    if (locals.length === 0) {
      locals = io(() => listAddrs(ns))
        .filter((x) => x.ifindex === devIdx && x.scope === 0 && !a.vips.includes(x.addr))
        .map((x) => x.addr);
      if (locals.length === 0) {
        throw new RealServerError(
          RsErrorCode.NO_DEVICE,
          `${dev} has no IPv4 address${nsText(t)} for IPIP to arrive at: give one with --local`,
        );
      }
    } else {
      const mine = io(() => listAddrs(ns));
      for (const l of locals) {
        if (!mine.some((x) => x.addr === l)) {
          throw new RealServerError(
            RsErrorCode.BAD_ADDRESS,
            `--local ${u32ToIp(l)} is not an address of this host${nsText(t)}`,
          );
        }
      }
    }
    const st = t.store.load();
    if (st !== undefined && decapAlive(st.decap)) {
      throw new RealServerError(
        RsErrorCode.BUSY,
        `a decapsulator already runs${nsText(t)} (pid ${st.decap!.pid} on ${st.decap!.dev}): run 'lvs-realserver tun --undo' first`,
      );
    }
    const tunName = a.tunName ?? defaultTunName(dev);
    if (hasIf(tunName, ns)) {
      throw new RealServerError(
        RsErrorCode.BUSY,
        `an interface named ${tunName} exists${nsText(t)}: choose another with --tun-name`,
      );
    }
    const r = claim(t, "tun", a.vips, [dev]);
    let decap: Decapsulator | undefined;
    try {
      decap = io(
        () =>
          new Decapsulator({
            dev,
            locals,
            tunName,
            mode: a.mode,
            ...(ns === undefined ? {} : { netns: ns }),
          }),
      );
      // Reverse-path filtering. The inner packets come in on the TUN with the client's address
      // as source, which the routing table reaches through another interface: strict mode (1)
      // drops them, and so does *any* mode on an interface without an IPv4 address (the kernel's
      // __fib_validate_source gives up on such a device). The kernel applies max(all, dev). So:
      // loose (2) on the TUN, which beats a strict `all` without touching it, and the outer
      // address(es) on the TUN as /32 scope host (the tunnel endpoint; never chosen as a source
      // for anything beyond this host). Both go away with the device.
      const all = io(() => sysctlGet(ipv4Conf("all", "rp_filter"), ns));
      io(() => sysctlSet(ipv4Conf(tunName, "rp_filter"), all === "0" ? "0" : "2", ns));
      for (const l of locals) io(() => addAddr(tunName, l, 32, ns, AddrScope.HOST));
      try {
        sysctlSet(`net/ipv6/conf/${tunName}/disable_ipv6`, "1", ns);
      } catch {
        // IPv6 disabled or absent: nothing to quiet
      }
      const start = procStart(process.pid) ?? "";
      const rec: NonNullable<RsState["decap"]> = {
        pid: process.pid,
        start,
        dev,
        tun: tunName,
        locals: locals.map(u32ToIp),
      };
      if (extra.pidFile !== undefined) rec.pidFile = extra.pidFile;
      setDecap(t, rec);
      decap.start();
    } catch (err) {
      decap?.close();
      try {
        t.store.withLock(() => {
          if (t.store.load()?.decap?.pid === process.pid) setDecap(t, undefined);
          release(t, "tun");
        });
      } catch (e2) {
        out.warn(`could not revert after the failure: ${(e2 as Error).message}`);
      }
      throw fromIoError(err);
    }
    const vipText = [
      ...r.added.map((v) => `${v}/32 added to lo`),
      ...r.present.map((v) => `${v} already on lo`),
    ];
    out.info(
      `tun${nsText(t)}: ${vipText.join(", ")}; decapsulating IPIP to ${locals.map(u32ToIp).join(", ")} on ${dev} into ${tunName} (pid ${process.pid})`,
    );
    return new TunSession(t, decap, dev, tunName, locals);
  }

  /** Stop the decapsulator and revert this session's setup. Returns the final counters. */
  stop(out: Reporter = silent): DecapStats {
    const stats = this.decap.stats();
    if (this.stopped) return stats;
    this.stopped = true;
    this.decap.close();
    const r = this.target.store.withLock(() => {
      const st = this.target.store.load();
      if (st?.decap?.pid === process.pid) setDecap(this.target, undefined);
      return release(this.target, "tun");
    });
    reportRelease("tun: stopping", this.target, r, out);
    return stats;
  }
}
