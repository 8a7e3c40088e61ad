/**
 * What the observability endpoints (metrics, status page and API, traces) read of a running
 * lvsd. lvsd builds one and hands it to them; they read it at request time, between batches,
 * and never change it.
 */
import type { Director } from "../../datapath/director.js";
import type { Engine } from "../../datapath/engine.js";
import type { EngineControl } from "../adapter.js";
import type { RateEstimator } from "../estimator.js";
import type { HealthManager } from "../health/manager.js";
import type { SyncDaemon } from "../sync/daemon.js";
import type { VrrpManager } from "../vrrp/manager.js";

export interface ObservedDaemon {
  readonly engine: Engine;
  readonly director: Director;
  /** The control plane's view of the tables (services, dests, connections, drops). */
  readonly target: EngineControl;
  readonly health: HealthManager;
  readonly estimator: RateEstimator;
  /** Link names in link-id order, as given with --link. */
  readonly linkNames: readonly string[];
  /** Connection table capacity (--max-conns). */
  readonly maxConns: number;
  /** Date.now() when lvsd started. */
  readonly startedAtMs: number;
  readonly version: string;
  /** VRRP instances (keepalived.conf vrrp_instance), when lvsd runs any. */
  readonly vrrp?: VrrpManager;
  /** Connection sync daemons (lvsadm --start-daemon, lvs_sync_daemon). */
  readonly sync?: SyncDaemon;
  /**
   * lvsd --workers (docs/workers.md): the entries of the workers' connection tables, summed
   * (the master engine's table is empty); absent: the engine's own count.
   */
  readonly conntrackEntries?: () => number;
  /**
   * With data-path workers: their connections by kind and templates by state, summed into `out`
   * (ConnTable.kindCounts then templateCounts; WorkerPool.kindTotals).
   */
  readonly conntrackKinds?: (out: Float64Array) => Float64Array;
}
