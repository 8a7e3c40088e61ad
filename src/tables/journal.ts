/**
 * The service table's change journal, for data-path workers (docs/workers.md): every change the
 * control plane makes to the master ServiceTable is also written as a small plain record (a
 * TableOp) that can cross a worker_threads port by structured clone; each worker applies the
 * same records, in the same order, to its own ServiceTable between batches (TableReplica). So
 * every worker's service table holds the same services, dests (in the kernel's list order),
 * weights, flags and local addresses as the master, while the connections, the schedulers'
 * state and the counters stay per worker (as DPVS: no locks, nothing shared per packet).
 *
 * A worker that starts late is brought up to date with `snapshotOps`: the ops that rebuild the
 * table as it is now. Records carry the master's service and dest ids, so a worker can publish
 * its counters by the master's ids (its own ids may differ: a removed dest keeps its slot while
 * the worker's connections still use it).
 *
 * Control plane only: records are built once per change, never per packet.
 */

import { type Dest, type Service, SVC_F_SYNPROXY } from "./model.js";
import type { DestOptions, ServiceKey, ServiceOptions, ServiceTable, TableOp } from "./services.js";

export type { TableOp };

/** The key of service `s` as ServiceTable's methods take it. */
export function keyOf(s: Service): ServiceKey {
  return s.fwmark !== 0
    ? { proto: s.proto, addr: s.addr, port: s.port, fwmark: s.fwmark }
    : { proto: s.proto, addr: s.addr, port: s.port };
}

/** The options that recreate service `s`. */
function optionsOf(s: Service): ServiceOptions {
  return {
    sched: s.schedName,
    flags: s.flags & ~SVC_F_SYNPROXY,
    timeout: s.timeout,
    netmask: s.netmask,
    proxyProtocol: s.proxyProtocol,
    synProxy: (s.flags & SVC_F_SYNPROXY) !== 0,
  };
}

function destOptionsOf(d: Dest, weight: number): DestOptions {
  return {
    addr: d.addr,
    port: d.port,
    weight,
    fwd: d.fwd,
    uThreshold: d.uThreshold,
    lThreshold: d.lThreshold,
    tunType: d.tunType,
    tunPort: d.tunPort,
  };
}

/**
 * The ops that rebuild `table` from empty: services in slot order, each with its local addresses
 * and its dests added last-first (addDest puts a new dest at the head, so the list order comes
 * out the same). A dest at weight 0 is added at its last non-zero weight and then edited to 0,
 * so `lastWeight` (which mh keeps its table with) matches too.
 */
export function snapshotOps(table: ServiceTable): TableOp[] {
  const ops: TableOp[] = [];
  for (const s of table.list()) {
    const key = keyOf(s);
    ops.push({ op: "addService", id: s.id, key, opts: optionsOf(s) });
    for (const a of s.laddrs?.list() ?? []) ops.push({ op: "addLaddr", key, addr: a });
    for (let i = s.dests.length - 1; i >= 0; i--) {
      const d = s.dests[i]!;
      ops.push({ op: "addDest", id: d.id, key, dest: destOptionsOf(d, d.lastWeight) });
      if (d.weight !== d.lastWeight) ops.push({ op: "editDest", key, dest: destOptionsOf(d, d.weight) });
    }
  }
  const marks = table.markVipList();
  if (marks.length > 0) ops.push({ op: "markVips", addrs: marks });
  return ops;
}

/**
 * A worker's copy of the master's table: applies TableOps to `table` and keeps which of its
 * services and dests stand for which of the master's ids (`svcs[masterId]`, `dests[masterId]`),
 * so counters can be published by the master's ids.
 */
export class TableReplica {
  readonly table: ServiceTable;
  /** The replica's service for each master service id (null: none). */
  readonly svcs: (Service | null)[] = [];
  /** The replica's dest for each master dest id (null: none, or removed). */
  readonly dests: (Dest | null)[] = [];
  /** Ops that failed here although they succeeded on the master (should stay 0). */
  failures = 0;
  lastError = "";

  constructor(table: ServiceTable) {
    this.table = table;
  }

  /** Apply one op; an op the replica refuses is counted (failures, lastError), not thrown. */
  apply(o: TableOp): void {
    try {
      this.applyOrThrow(o);
    } catch (err) {
      this.failures++;
      this.lastError = `${o.op}: ${(err as Error).message}`;
    }
  }

  /** The master id of each mapped service and dest (so a delete unmaps in O(its dests)). */
  private readonly svcId = new Map<Service, number>();
  private readonly destId = new Map<Dest, number>();

  private unmapDest(d: Dest): void {
    const id = this.destId.get(d);
    if (id === undefined) return;
    this.destId.delete(d);
    if (this.dests[id] === d) this.dests[id] = null;
  }

  /** Unmap service `s` and `dests`, the dests it had (its list is emptied when it is deleted). */
  private unmapService(s: Service, dests: readonly Dest[]): void {
    for (const d of dests) this.unmapDest(d);
    const id = this.svcId.get(s);
    if (id === undefined) return;
    this.svcId.delete(s);
    if (this.svcs[id] === s) this.svcs[id] = null;
  }

  private applyOrThrow(o: TableOp): void {
    const t = this.table;
    switch (o.op) {
      case "addService": {
        const s = t.addService(o.key, o.opts);
        this.svcs[o.id] = s;
        this.svcId.set(s, o.id);
        return;
      }
      case "editService":
        t.editService(o.key, o.opts);
        return;
      case "deleteService": {
        const s = t.find(o.key);
        const dests = s ? s.dests.slice() : [];
        t.deleteService(o.key);
        if (s) this.unmapService(s, dests);
        return;
      }
      case "clear":
        t.clear();
        this.svcs.length = 0;
        this.dests.length = 0;
        this.svcId.clear();
        this.destId.clear();
        return;
      case "addDest": {
        const d = t.addDest(o.key, o.dest);
        this.dests[o.id] = d;
        this.destId.set(d, o.id);
        return;
      }
      case "editDest":
        t.editDest(o.key, o.dest);
        return;
      case "deleteDest": {
        const s = t.find(o.key);
        const d = s ? t.findDest(s, o.addr, o.port) : undefined;
        t.deleteDest(o.key, o.addr, o.port);
        if (d) this.unmapDest(d);
        return;
      }
      case "addLaddr":
        t.addLaddr(o.key, o.addr);
        return;
      case "deleteLaddr":
        t.deleteLaddr(o.key, o.addr);
        return;
      case "zero":
        if (o.key) t.zero(o.key);
        else t.zero();
        return;
      case "markVips":
        t.setMarkVips(o.addrs);
        return;
      default: {
        const never: never = o;
        throw new Error(`unknown table op ${(never as { op: string }).op}`);
      }
    }
  }
}
