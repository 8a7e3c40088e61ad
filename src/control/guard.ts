/**
 * lvsd's last resort against its own bugs (docs/security.md): an exception that nothing caught (in
 * a health check's callback, a notify script's exit handler, a timer of the control plane) or a
 * promise rejection that nothing handled is logged (`lvsd.internal_error`, at error level) and
 * lvsd goes on forwarding with the tables it has, instead of ending and taking every rule and
 * connection with it. The tables are changed only by synchronous control-plane code that runs to
 * its end between two batches, and the data path throws nothing (it counts drops), so such an
 * error leaves the one callback it happened in unfinished and the state whole.
 *
 * The log is bounded: at most LOG_BURST lines per LOG_WINDOW_MS, then one line saying how many
 * were left out. `count` says how many errors there were since start.
 */
import type { EventLog } from "./observe/log.js";

const LOG_BURST = 10;
const LOG_WINDOW_MS = 10_000;

export interface LastResort {
  /** Errors caught since install. */
  readonly count: number;
  /** Remove the handlers. */
  uninstall(): void;
}

export function installLastResort(log: EventLog, now: () => number = Date.now): LastResort {
  let count = 0;
  let windowStart = Number.NEGATIVE_INFINITY;
  let inWindow = 0;
  let skipped = 0;
  const report = (kind: "exception" | "rejection", err: unknown) => {
    count++;
    const t = now();
    if (t - windowStart >= LOG_WINDOW_MS) {
      if (skipped > 0)
        log.error(
          { event: "lvsd.internal_error", skipped },
          `${skipped} more internal errors were not logged in the last ${LOG_WINDOW_MS / 1000} s`,
        );
      windowStart = t;
      inWindow = 0;
      skipped = 0;
    }
    if (++inWindow > LOG_BURST) {
      skipped++;
      return;
    }
    const error = err instanceof Error ? (err.stack ?? err.message) : String(err);
    log.error(
      { event: "lvsd.internal_error", kind, error, count },
      `internal error (uncaught ${kind}), lvsd carries on: ${err instanceof Error ? err.message : String(err)}`,
    );
  };
  const onException = (err: unknown) => report("exception", err);
  const onRejection = (err: unknown) => report("rejection", err);
  process.on("uncaughtException", onException);
  process.on("unhandledRejection", onRejection);
  return {
    get count() {
      return count;
    },
    uninstall() {
      process.off("uncaughtException", onException);
      process.off("unhandledRejection", onRejection);
    },
  };
}
