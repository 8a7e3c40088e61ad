/**
 * What the control plane (lvsadm's commands, run inside lvsd) sees of a running director.
 * EngineControl (adapter.ts) implements it over a data-path Engine; tests may use an engine
 * without any I/O, or a fake.
 */
import type { MarkTable } from "../tables/marks.js";
import type { ServiceTable } from "../tables/services.js";
import type { Sysctl } from "../tables/sysctl.js";
import type { RateSource } from "./estimator.js";
import type { DaemonOptions } from "./types.js";

/** One connection-table entry as listed by `lvsadm -Lnc` (allocated per call: control plane only). */
export interface ConnEntry {
  proto: number;
  caddr: number;
  cport: number;
  vaddr: number;
  vport: number;
  daddr: number;
  dport: number;
  /** State name as ipvsadm prints it (ESTABLISHED, SYN_RECV, UDP, NONE, ASSURED, ...). */
  state: string;
  /** Milliseconds until expiry (>= 0). */
  expiresInMs: number;
  /** Persistence template (client port 0). */
  template: boolean;
  /** Forwarding method (FwdMethod). */
  fwd: number;
}

/** One link's counters as `lvsadm --links` lists them. */
export interface LinkStatRow {
  name: string;
  mac: string;
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  rxDropped: number;
  txDropped: number;
}

export interface Timeouts {
  /** Seconds; ESTABLISHED, FIN_WAIT and UDP timeouts as set by `--set tcp tcpfin udp`. */
  tcp: number;
  tcpfin: number;
  udp: number;
}

export interface ControlTarget {
  readonly table: ServiceTable;
  /** Snapshot of the connection table (templates included). */
  conns(): ConnEntry[];
  /**
   * A piece of the connection table for a streamed listing: at most `max` entries from position
   * `cursor` (0 to start) into `out`; returns where to go on, or -1 after the last entry.
   * Without it, a listing reads conns() whole.
   */
  connsFrom?(cursor: number, max: number, out: ConnEntry[]): number;
  /**
   * Fetch the connection table before a listing reads it, when it lives elsewhere (lvsd
   * --workers: in the worker threads, docs/workers.md); a streamed listing awaits it first.
   */
  refreshConns?(): Promise<void>;
  getTimeouts(): Timeouts;
  /** 0 leaves a value unchanged (ipvsadm semantics). */
  setTimeouts(t: Timeouts): void;
  /** Connection hash bucket count printed as "size=" in listings. */
  readonly connTabSize: number;
  /** Drop counters by reason (`lvsadm --drops`), when the target has a data path. */
  dropCounts?(): Record<string, number>;
  /** SYN proxy counters (`lvsadm --synproxy-stats`), when the target has a data path. */
  synProxyCounters?(): [string, number][];
  /** Per-link counters (`lvsadm --links`), when the target runs on links. */
  linkStats?(): LinkStatRow[];
  /** Rate estimates for `--rate` (lvsd's RateEstimator); without one, rates list as 0. */
  readonly rates?: RateSource;
  /** Connection sync daemons (`--start-daemon`, `--stop-daemon`, `-L --daemon`), in lvsd. */
  sync?: SyncControl;
  /** Run-time knobs (`--sysctl`), when the target has a data path. */
  readonly sysctl?: Sysctl;
  /** The mark rules (`lvsadm --iptables`, lvs-iptables), when the target has a data path. */
  readonly marks?: MarkTable;
}

export type SyncState = "master" | "backup";

/** A running sync daemon's configuration, every default filled in (what `-L --daemon` prints). */
export interface SyncDaemonInfo {
  state: SyncState;
  mcastIfn: string;
  syncid: number;
  maxlen: number;
  group: number;
  port: number;
  ttl: number;
}

/** lvsd's connection sync daemons (src/control/sync/daemon.ts). */
export interface SyncControl {
  /** Throws SyncDaemonError (EEXIST, ENODEV, EINVAL). */
  start(state: SyncState, o: DaemonOptions): SyncDaemonInfo;
  /** Throws SyncDaemonError (ESRCH). */
  stop(state: SyncState): void;
  daemons(): SyncDaemonInfo[];
  /** Counters by name, for `lvsadm --sync`. */
  counterRows(): [string, number][];
}
