/**
 * The status API and page of `lvsd --http` (docs/observability.md, "Status page and API"):
 *
 *   GET /api/v1/status   one JSON document: the daemon, the connection table by state, every
 *                        service with its dests (counters, rates, health), drops, links
 *   GET /                the live page (page.ts) that polls it every second
 *
 * Read at request time, between batches of the data path; nothing here changes any state. The
 * document's field names are stable (`apiVersion` changes if one ever has to change meaning);
 * addresses are text, every count a JSON number.
 */

import { createHash } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { TCP_STATE_COUNT, TCP_STATE_NAMES } from "../../datapath/conntrack/states.js";
import { COUNT_SLOTS, type ConnTable } from "../../datapath/conntrack/table.js";
import { forwardingMethod } from "../../datapath/modes/index.js";
import { bytesToMac, u32ToIp } from "../../lib/addr.js";
import { DEST_F_OVERLOAD, type Dest, type Service, SVC_F_ONEPACKET } from "../../tables/model.js";
import { dropCounts } from "../adapter.js";
import type { Counters, Rates } from "../estimator.js";
import { compareDests, compareServices, protoName } from "../format.js";
import type { DestHealth } from "../health/manager.js";
import { schedFlagsText } from "../sched.js";
import type { ObservedDaemon } from "./daemon.js";
import { type Route, reply } from "./http.js";
import { PAGE_CSS, PAGE_JS, STATUS_PAGE } from "./page.js";

export const STATUS_API_VERSION = 1;

// ---- the document (docs/observability.md describes every field) ----

export interface StatusDocument {
  apiVersion: 1;
  version: string;
  /** Date.now() when the document was made. */
  timeMs: number;
  startedAtMs: number;
  uptimeSeconds: number;
  connections: ConnectionsStatus;
  services: ServiceStatus[];
  /** Non-zero drop counters by reason (names of src/datapath/drops.ts). */
  drops: Record<string, number>;
  links: LinkStatus[];
}

export interface ConnectionsStatus {
  /** Entries in use: connections and persistence templates. */
  size: number;
  /** Capacity (--max-conns). */
  limit: number;
  /** Hash buckets (ipvsadm's "size=" in `-Ln`). */
  buckets: number;
  templates: number;
  /** Connections (not templates) by state name as `lvsadm -Lnc` prints it; every key always present. */
  states: Record<string, number>;
  /** Entries evicted to make room, and connections refused because nothing could be evicted. */
  evictions: number;
  allocFailures: number;
}

export interface ServiceStatus {
  /** The service as `lvsadm -Ln` prints it: "TCP  10.0.0.100:80", "FWM  5". */
  name: string;
  proto: string;
  /** null for fwmark services. */
  address: string | null;
  port: number | null;
  /** null unless a fwmark service. */
  fwmark: number | null;
  scheduler: string;
  /** Scheduler flags (-b) by name, as lvsadm prints them. */
  flags: string[];
  onePacket: boolean;
  /** null unless persistent (-p). */
  persistence: { timeout: number; netmask: string } | null;
  /** PROXY protocol version sent by FULLNAT (0 = off). */
  proxyProtocol: number;
  /** Sums over the dests. */
  activeConns: number;
  inactiveConns: number;
  counters: Counters;
  rates: Rates;
  dests: DestStatus[];
  /** Servers the health checker has for this service that are not in the table now. */
  outOfPool: OutOfPoolStatus[];
}

export interface DestStatus {
  address: string;
  port: number;
  /** ipvsadm's Forward column: Masq, Route, Tunnel, FullNat, Local. */
  forward: string;
  weight: number;
  activeConns: number;
  inactiveConns: number;
  persistentConns: number;
  upperThreshold: number;
  lowerThreshold: number;
  overloaded: boolean;
  counters: Counters;
  rates: Rates;
  /** null when no health check configuration has this dest. */
  health: HealthStatus | null;
}

export interface OutOfPoolStatus {
  address: string;
  port: number;
  health: HealthStatus;
}

export interface HealthStatus {
  /** "real": a real_server of the configuration; "sorry": its sorry_server. */
  role: "real" | "sorry";
  /** real: UP, DOWN, or RETRY (up, a failure being retried); sorry: SORRY (serving) or STANDBY. */
  state: "UP" | "DOWN" | "RETRY" | "SORRY" | "STANDBY";
  virtualServer: string;
  /** Why the server is in its state (the last transition's or failure's reason); "" when none. */
  reason: string;
  /** When the state last changed (health manager clock: Date.now()), null if never. */
  lastChangeMs: number | null;
  /** The most recent result of any of its checkers, null before the first. */
  lastCheck: { ok: boolean; reason: string; atMs: number } | null;
  checks: CheckStatus[];
}

export interface CheckStatus {
  /** "TCP_CHECK 192.168.10.1:80", "HTTP_GET 192.168.10.1:80/health", ... */
  label: string;
  state: "UP" | "DOWN" | "RETRY";
  lastOk: boolean | null;
  lastReason: string | null;
  lastAtMs: number | null;
  probes: number;
  failures: number;
}

export interface LinkStatus {
  id: number;
  name: string;
  mac: string;
  rxPackets: number;
  rxBytes: number;
  rxDropped: number;
  txPackets: number;
  txBytes: number;
  txDropped: number;
}

// ---- building it ----

/**
 * The connection table by state, from the counts the table keeps (ConnTable.kindCounts and
 * templateCounts: no walk). With data-path workers, `kinds` holds their sums in that layout and
 * `size` their entries.
 */
export function connectionsStatus(
  ct: ConnTable,
  limit: number,
  kinds?: Float64Array,
  size?: number,
): ConnectionsStatus {
  const k = kinds ?? ct.countsInto(new Float64Array(COUNT_SLOTS));
  const total = size ?? ct.count;
  const templates = k[TCP_STATE_COUNT + 2]! + k[TCP_STATE_COUNT + 3]!;
  const states: Record<string, number> = {};
  let counted = 0;
  for (let s = 0; s < TCP_STATE_COUNT; s++) {
    states[TCP_STATE_NAMES[s]!] = k[s]!;
    counted += k[s]!;
  }
  states.UDP = k[TCP_STATE_COUNT]!;
  states.ICMP = k[TCP_STATE_COUNT + 1]!;
  counted += states.UDP + states.ICMP;
  // `lvsadm -Lnc` names an entry of another protocol NONE, as ipvsadm does; the table keeps no
  // count of those, so they are what the kept counts leave of the entries
  states.NONE = (states.NONE ?? 0) + Math.max(0, total - templates - counted);
  return {
    size: total,
    limit,
    buckets: ct.bucketCount,
    templates,
    states,
    evictions: ct.evictions,
    allocFailures: ct.allocFailures,
  };
}

function counters(o: Service | Dest): Counters {
  return { conns: o.conns, inPkts: o.inPkts, outPkts: o.outPkts, inBytes: o.inBytes, outBytes: o.outBytes };
}

function healthStatus(h: DestHealth): HealthStatus {
  const rs = h.realServer;
  if (!rs) {
    const active = h.sorry?.active ?? false;
    return {
      role: "sorry",
      state: active ? "SORRY" : "STANDBY",
      virtualServer: h.virtualServer,
      reason: active ? "quorum lost: the sorry server serves" : "standby until quorum is lost",
      lastChangeMs: null,
      lastCheck: null,
      checks: [],
    };
  }
  let lastCheck: HealthStatus["lastCheck"] = null;
  const checks: CheckStatus[] = rs.checkers.map((c) => {
    if (c.lastAt !== undefined && c.lastOk !== undefined && (lastCheck === null || c.lastAt > lastCheck.atMs))
      lastCheck = { ok: c.lastOk, reason: c.lastReason ?? "", atMs: c.lastAt };
    return {
      label: c.label,
      state: c.retrying ? "RETRY" : c.up ? "UP" : "DOWN",
      lastOk: c.lastOk ?? null,
      lastReason: c.lastReason ?? null,
      lastAtMs: c.lastAt ?? null,
      probes: c.probes,
      failures: c.failures,
    };
  });
  return {
    role: "real",
    state: !rs.alive ? "DOWN" : checks.some((c) => c.state === "RETRY") ? "RETRY" : "UP",
    virtualServer: h.virtualServer,
    reason: rs.reason,
    lastChangeMs: rs.lastChangeAt ?? null,
    lastCheck,
    checks,
  };
}

/** The whole /api/v1/status document. */
export function statusDocument(o: ObservedDaemon, nowMs = Date.now()): StatusDocument {
  const rates = (x: Service | Dest): Rates => o.estimator.rates(x);
  // The health manager's view, once per document: by table dest, and per service what is out.
  const byDest = new Map<Dest, DestHealth>();
  const outOf = new Map<Service, DestHealth[]>();
  for (const h of o.health.destHealth()) {
    if (h.service === undefined) continue; // a service of the configuration the table lacks
    if (h.dest) {
      if (!byDest.has(h.dest)) byDest.set(h.dest, h);
    } else {
      const list = outOf.get(h.service) ?? [];
      if (!list.some((x) => x.addr === h.addr && x.port === h.port)) list.push(h);
      outOf.set(h.service, list);
    }
  }

  const services = [...o.target.table.list()].sort(compareServices).map((s): ServiceStatus => {
    const dests = [...s.dests].sort(compareDests).map((d): DestStatus => {
      const h = byDest.get(d);
      return {
        address: u32ToIp(d.addr),
        port: d.port,
        forward: forwardingMethod(d.fwd).label,
        weight: d.weight,
        activeConns: d.activeConns,
        inactiveConns: d.inactConns,
        persistentConns: d.persistConns,
        upperThreshold: d.uThreshold,
        lowerThreshold: d.lThreshold,
        overloaded: (d.flags & DEST_F_OVERLOAD) !== 0,
        counters: counters(d),
        rates: rates(d),
        health: h ? healthStatus(h) : null,
      };
    });
    const fw = s.fwmark !== 0;
    const flags = schedFlagsText(s.schedName, s.flags);
    return {
      name: fw ? `FWM  ${s.fwmark}` : `${protoName(s.proto)}  ${u32ToIp(s.addr)}:${s.port}`,
      proto: protoName(s.proto),
      address: fw ? null : u32ToIp(s.addr),
      port: fw ? null : s.port,
      fwmark: fw ? s.fwmark : null,
      scheduler: s.schedName,
      flags: flags === "" ? [] : flags.split(","),
      onePacket: (s.flags & SVC_F_ONEPACKET) !== 0,
      persistence: s.isPersistent() ? { timeout: s.timeout, netmask: u32ToIp(s.netmask >>> 0) } : null,
      proxyProtocol: s.proxyProtocol,
      activeConns: dests.reduce((n, d) => n + d.activeConns, 0),
      inactiveConns: dests.reduce((n, d) => n + d.inactiveConns, 0),
      counters: counters(s),
      rates: rates(s),
      dests,
      outOfPool: (outOf.get(s) ?? [])
        .sort((a, b) => a.addr - b.addr || a.port - b.port)
        .map((h) => ({ address: u32ToIp(h.addr), port: h.port, health: healthStatus(h) })),
    };
  });

  const links = o.director.links.map(
    (io, id): LinkStatus => ({
      id,
      name: o.linkNames[id] ?? io.name,
      mac: bytesToMac(io.mac),
      rxPackets: io.stats.rxPackets,
      rxBytes: io.stats.rxBytes,
      rxDropped: io.stats.rxDropped,
      txPackets: io.stats.txPackets,
      txBytes: io.stats.txBytes,
      txDropped: io.stats.txDropped,
    }),
  );

  return {
    apiVersion: STATUS_API_VERSION,
    version: o.version,
    timeMs: nowMs,
    startedAtMs: o.startedAtMs,
    uptimeSeconds: Math.max(0, Math.floor((nowMs - o.startedAtMs) / 1000)),
    connections:
      o.conntrackKinds !== undefined
        ? connectionsStatus(
            o.engine.ct,
            o.maxConns,
            o.conntrackKinds(new Float64Array(COUNT_SLOTS)),
            o.conntrackEntries?.(),
          )
        : connectionsStatus(o.engine.ct, o.maxConns),
    services,
    drops: dropCounts(o.engine.drops),
    links,
  };
}

// ---- the routes ----

function sha256(text: string): string {
  return `'sha256-${createHash("sha256").update(text, "utf8").digest("base64")}'`;
}

/**
 * The page may run its own inline script and style (named by hash) and fetch from its own
 * origin; nothing else: no other scripts, frames, forms, plugins or hosts.
 */
export const STATUS_PAGE_CSP = [
  "default-src 'none'",
  `script-src ${sha256(PAGE_JS)}`,
  `style-src ${sha256(PAGE_CSS)}`,
  "connect-src 'self'",
  "img-src data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

export function statusRoutes(o: ObservedDaemon): Record<string, Route> {
  return {
    "/api/v1/status": (req: IncomingMessage, res: ServerResponse) => {
      reply(req, res, "application/json; charset=utf-8", `${JSON.stringify(statusDocument(o))}\n`);
    },
    "/": (req: IncomingMessage, res: ServerResponse) => {
      res.setHeader("content-security-policy", STATUS_PAGE_CSP);
      res.setHeader("referrer-policy", "no-referrer");
      reply(req, res, "text/html; charset=utf-8", STATUS_PAGE);
    },
  };
}
