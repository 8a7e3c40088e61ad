/**
 * The control plane's view of a running data path: adapts an Engine (src/datapath) to the
 * ControlTarget that lvsadm's commands run against. The data path knows nothing of it; lvsd
 * builds one and hands it to the control server. Everything here runs between batches and may
 * allocate (listings are control-plane work).
 */
import { clock } from "../datapath/clock.js";
import { TcpState } from "../datapath/conntrack/states.js";
import { CONN_F_TEMPLATE, CONN_F_USED } from "../datapath/conntrack/table.js";
import { DROP_COUNT, DROP_NAMES } from "../datapath/drops.js";
import type { Engine } from "../datapath/engine.js";
import type { MarkTable } from "../tables/marks.js";
import type { ServiceTable } from "../tables/services.js";
import type { Sysctl } from "../tables/sysctl.js";
import type { RateSource } from "./estimator.js";
import type { ConnEntry, ControlTarget, LinkStatRow, SyncControl, Timeouts } from "./target.js";

/** Drop counters by name, only the non-zero ones (`lvsadm --drops`, error messages). */
export function dropCounts(drops: Float64Array): Record<string, number> {
  const out: Record<string, number> = {};
  for (let r = 1; r < DROP_COUNT; r++) if (drops[r]! > 0) out[DROP_NAMES[r]!] = drops[r]!;
  return out;
}

export class EngineControl implements ControlTarget {
  readonly engine: Engine;
  readonly table: ServiceTable;
  /** Rate estimator for `--rate` (set by lvsd). */
  rates?: RateSource;
  /** Per-link counters for `lvsadm --links` (set by lvsd, which owns the links). */
  linkStats?: () => LinkStatRow[];

  constructor(engine: Engine) {
    this.engine = engine;
    this.table = engine.table;
  }

  /**
   * lvsd --workers (docs/workers.md): where the connection entries come from (the workers), and
   * the entries last fetched, which listings read instead of the master's empty table.
   */
  workerConns?: () => Promise<ConnEntry[]>;
  private fetched: ConnEntry[] | null = null;

  refreshConns(): Promise<void> {
    const get = this.workerConns;
    if (get === undefined) return Promise.resolve();
    return get().then((c) => {
      this.fetched = c;
    });
  }

  /** Connection sync daemons (set by lvsd). */
  sync?: SyncControl;

  get sysctl(): Sysctl {
    return this.engine.sysctl;
  }

  get marks(): MarkTable {
    return this.engine.marks;
  }

  get connTabSize(): number {
    return this.engine.ct.bucketCount;
  }

  conns(): ConnEntry[] {
    if (this.fetched !== null) return this.fetched.slice();
    const out: ConnEntry[] = [];
    this.connsFrom(0, this.engine.ct.capacity, out);
    return out;
  }

  /** Entries from slot `cursor` on, in slot order (ControlTarget.connsFrom). */
  connsFrom(cursor: number, max: number, out: ConnEntry[]): number {
    const f = this.fetched;
    if (f !== null) {
      let i = Math.max(0, cursor);
      for (; i < f.length && out.length < max; i++) out.push(f[i]!);
      return i < f.length ? i : -1;
    }
    const ct = this.engine.ct;
    const now = clock.nowMs;
    let i = Math.max(0, cursor);
    for (; i < ct.capacity && out.length < max; i++) {
      if ((ct.flags[i]! & CONN_F_USED) === 0) continue;
      out.push({
        proto: ct.proto[i]!,
        caddr: ct.caddr[i]!,
        cport: ct.cport[i]!,
        vaddr: ct.vaddr[i]!,
        vport: ct.vport[i]!,
        daddr: ct.daddr[i]!,
        dport: ct.dport[i]!,
        state: ct.stateName(i),
        expiresInMs: Math.max(0, ct.expiresAt(i) - now),
        template: (ct.flags[i]! & CONN_F_TEMPLATE) !== 0,
        fwd: ct.fwd[i]!,
      });
    }
    return i < ct.capacity ? i : -1;
  }

  getTimeouts(): Timeouts {
    const ct = this.engine.ct;
    return {
      tcp: ct.tcpTimeoutMs[TcpState.ESTABLISHED]! / 1000,
      tcpfin: ct.tcpTimeoutMs[TcpState.FIN_WAIT]! / 1000,
      udp: ct.udpTimeoutMs / 1000,
    };
  }

  setTimeouts(t: Timeouts): void {
    const ct = this.engine.ct;
    if (t.tcp > 0) ct.tcpTimeoutMs[TcpState.ESTABLISHED] = t.tcp * 1000;
    if (t.tcpfin > 0) ct.tcpTimeoutMs[TcpState.FIN_WAIT] = t.tcpfin * 1000;
    if (t.udp > 0) ct.udpTimeoutMs = t.udp * 1000;
  }

  dropCounts(): Record<string, number> {
    return dropCounts(this.engine.drops);
  }

  synProxyCounters(): [string, number][] {
    return this.engine.synproxy.counterRows();
  }
}
