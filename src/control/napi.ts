/**
 * `--link xdp=IFNAME,...,busy-poll=USECS`: preferred busy polling, and NAPI deferral while the
 * link is overloaded.
 *
 * The AF_XDP socket gets SO_PREFER_BUSY_POLL and each receive of lvsd's first runs the queue's
 * NAPI poll itself (src/datapath/io/xdp.ts). That alone changes little: the kernel still runs
 * the same poll in softirq as frames arrive, the XDP program and the copy into the UMEM for
 * every one of them, also for those a full RX ring then drops — under a flood beyond what lvsd
 * can take, that softirq work starves lvsd of the CPU it shares (receive livelock;
 * bench/RESULTS.md). With the interface's `napi_defer_hard_irqs` and `gro_flush_timeout` set, the
 * kernel leaves the poll to lvsd while lvsd keeps polling and runs it itself only when lvsd has
 * not polled for gro_flush_timeout; the excess then waits in (and overflows) the driver's queue
 * before any of that work is spent on it. But the deferral also holds back a frame arriving
 * while lvsd sleeps, up to gro_flush_timeout: request/response traffic would wait that long at
 * every turn.
 *
 * Hence a governor: the deferral goes on only while the link is overloaded, and off again once
 * lvsd keeps up. On: at once when a receive round of lvsd's comes back full (a whole batch was
 * waiting in the RX ring: `overloaded`), or at a tick (every 100 ms) when the kernel dropped
 * more than 1% of the frames for want of room in lvsd's RX ring (the socket's XDP_STATISTICS,
 * `kernelDrops`). Off: at the first tick at least HOLD_MS (500 ms) later at which lvsd did not
 * poll at all, or fewer than half of its receive polls since the last tick brought a full
 * busy-poll budget (under a flood
 * with the deferral on, nearly all do: frames wait in the driver's queue; with lvsd keeping up
 * most find the queue nearly empty). It writes napi_defer_hard_irqs = 2 and gro_flush_timeout =
 * USECS × 1000 ns under /sys/class/net/IFNAME, puts back the values it found when the deferral
 * comes off, and again when lvsd exits.
 */
import { readFileSync, writeFileSync } from "node:fs";

/** Deferred polls before the kernel re-enables the queue's own notifications. */
export const NAPI_DEFER_HARD_IRQS = 2;
/** How often the governor looks at the links' counters (ms). */
export const GOVERNOR_TICK_MS = 100;
/** How long the deferral stays on once switched on (ms). */
export const HOLD_MS = 500;
/** Frames a busy poll takes at most (lvsd sets it as the socket's SO_BUSY_POLL_BUDGET). */
export const BUSY_BUDGET = 64;

export class NapiDeferError extends Error {
  override readonly name = "NapiDeferError";
}

const FILES = ["napi_defer_hard_irqs", "gro_flush_timeout"] as const;

/** One governed link: its interface, the deferral's timeout and its counters. */
export interface GovernedLink {
  ifname: string;
  /** gro_flush_timeout while deferred, in µs (the link's busy-poll=). */
  usecs: number;
  /**
   * So far: frames received by lvsd, frames the kernel dropped for want of RX ring room, lvsd's
   * receive polls and those of them that brought at least BUSY_BUDGET frames.
   */
  sample(): {
    frames: number;
    drops: number;
    polls: number;
    fullPolls: number;
    /**
     * Worker threads: receive wake-ups whose first round brought a whole batch (lvsd's own
     * loop calls `overloaded` instead), and whether the counters have stopped moving (the
     * threads that poll are starved).
     */
    overloads?: number;
    stale?: boolean;
  };
}

interface LinkState {
  link: GovernedLink;
  dir: string;
  old: string[];
  deferred: boolean;
  since: number;
  frames: number;
  drops: number;
  polls: number;
  fullPolls: number;
  overloads: number;
}

/** Read the two files of `ifname`: the values to restore. Throws NapiDeferError when missing. */
function readNapi(dir: string): string[] {
  return FILES.map((f) => {
    try {
      return readFileSync(`${dir}/${f}`, "utf8").trim();
    } catch (err) {
      throw new NapiDeferError(
        `busy-poll: cannot read ${dir}/${f} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): ` +
          "NAPI deferral needs Linux 5.11+ and the interface in lvsd's network namespace",
      );
    }
  });
}

function writeNapi(dir: string, values: readonly string[]): void {
  for (let i = 0; i < FILES.length; i++) writeFileSync(`${dir}/${FILES[i]}`, values[i]!);
}

export class NapiGovernor {
  private readonly states: LinkState[];
  private stopped = false;
  /** Times the deferral was switched on, over all links. */
  enters = 0;
  /** Called when a link's deferral goes on or off (lvsd logs it). */
  onChange: ((ifname: string, deferred: boolean) => void) | null = null;

  /**
   * Checks that every link's files are there and writable (writing back what they hold), so a
   * kernel or interface without them fails at start with NapiDeferError, not at the first flood.
   */
  constructor(links: readonly GovernedLink[], sysfs = "/sys/class/net") {
    this.states = links.map((link) => {
      const dir = `${sysfs}/${link.ifname}`;
      const old = readNapi(dir);
      try {
        writeNapi(dir, old);
      } catch (err) {
        throw new NapiDeferError(
          `busy-poll: cannot write ${dir}/${FILES[0]} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
        );
      }
      const s = link.sample();
      return {
        link,
        dir,
        old,
        deferred: false,
        since: 0,
        frames: s.frames,
        drops: s.drops,
        polls: s.polls,
        fullPolls: s.fullPolls,
        overloads: s.overloads ?? 0,
      };
    });
  }

  /** Whether `ifname`'s deferral is on. */
  deferred(ifname: string): boolean {
    return this.states.some((s) => s.link.ifname === ifname && s.deferred);
  }

  /** One look at the counters (every GOVERNOR_TICK_MS); `now` in ms. */
  tick(now: number): void {
    if (this.stopped) return;
    for (const s of this.states) {
      const { frames, drops, polls, fullPolls, stale, overloads = 0 } = s.link.sample();
      const dOver = overloads - s.overloads;
      s.overloads = overloads;
      const dFrames = frames - s.frames;
      const dDrops = drops - s.drops;
      const dPolls = polls - s.polls;
      const dFull = fullPolls - s.fullPolls;
      s.frames = frames;
      s.drops = drops;
      s.polls = polls;
      s.fullPolls = fullPolls;
      if (s.deferred) {
        // calm: no polls at all (nothing arrived), or fewer than half brought a full budget; not
        // while the counters are stale (a starved worker stopped publishing its polls)
        if (!stale && now - s.since >= HOLD_MS && (dPolls === 0 || dFull * 2 < dPolls))
          this.set(s, false, now);
      } else if (stale || dOver > 0 || (dDrops > 64 && dDrops * 100 > dFrames)) {
        // more than 1% of what arrived was lost at lvsd's RX ring: overloaded; or the threads
        // that poll have not published their counters for a while: starved, in livelock
        this.set(s, true, now);
      }
    }
  }

  /**
   * Link `i` (in the order given) found a whole batch waiting: switch its deferral on now, not
   * at the next tick (which a starved event loop runs late).
   */
  overloaded(i: number, now: number): void {
    const s = this.states[i];
    if (s !== undefined && !s.deferred) this.set(s, true, now);
  }

  /** Put every link's files back as they were, for good: later ticks change nothing (at exit). */
  restore(): void {
    this.stopped = true;
    for (const s of this.states) {
      if (!s.deferred) continue;
      s.deferred = false;
      try {
        writeNapi(s.dir, s.old);
      } catch {
        // the interface is gone: nothing to restore
      }
    }
  }

  private set(s: LinkState, on: boolean, now: number): void {
    if (this.stopped) return;
    try {
      writeNapi(s.dir, on ? [String(NAPI_DEFER_HARD_IRQS), String(s.link.usecs * 1000)] : s.old);
    } catch {
      return; // the interface went away; the link's own errors tell
    }
    s.deferred = on;
    s.since = now;
    if (on) this.enters++;
    this.onChange?.(s.link.ifname, on);
  }
}
