/**
 * `lvsadm --health`: one line per checker of each real server, under its virtual server:
 *
 *   Health checks: /etc/keepalived/keepalived.conf, loaded 3m ago
 *   1 virtual server, 2 real servers, 2 checks; probes 120, failed 7; transitions 1 up, 2 down
 *   Prot LocalAddress:Port   Quorum
 *     -> RemoteAddress:Port  State Weight Check                    Last result   Last change  Reason
 *   TCP  10.0.0.100:80       up (live weight 1, quorum 1)
 *     -> 192.168.10.1:80     UP    1      HTTP_GET 192...:80/      ok 0.4s ago   -            HTTP_GET 192.168.10.1:80 status 200
 *     -> 192.168.10.2:80     DOWN  -      HTTP_GET 192...:80/      fail 0.4s ago 12s ago      HTTP_GET 192.168.10.2:80 status 503, want 200
 *
 * State is the checker's (UP, DOWN, RETRY while a failure is being retried); Weight is what the
 * service table holds (what `lvsadm -Ln` shows), `-` when the dest is out of the table.
 */

/** Counters of everything the manager did. */
export interface HealthCounters {
  probes: number;
  failures: number;
  /** Real-server transitions. */
  ups: number;
  downs: number;
  quorumLost: number;
  quorumGained: number;
  weightChanges: number;
  reloads: number;
  reloadErrors: number;
}

export interface CheckerStatus {
  label: string;
  up: boolean;
  lastOk?: boolean;
  lastReason?: string;
  lastAt?: number;
  lastChangeAt?: number;
  /** How long the last finished probe took (ms); absent before the first. */
  lastDurationMs?: number;
  probes: number;
  failures: number;
  retrying: boolean;
}

export interface RealServerStatus {
  name: string;
  alive: boolean;
  weight: number;
  /** The weight in the service table; undefined when the dest is not in it. */
  tableWeight: number | undefined;
  lastChangeAt?: number;
  reason: string;
  ups: number;
  downs: number;
  checkers: CheckerStatus[];
}

export interface VirtualServerStatus {
  name: string;
  services: string[];
  quorum: number;
  hysteresis: number;
  quorumUp: boolean;
  liveWeight: number;
  sorry?: { name: string; active: boolean; tableWeight: number | undefined };
  realServers: RealServerStatus[];
}

export interface HealthSnapshot {
  now: number;
  file?: string;
  loadedAt?: number;
  counters: HealthCounters;
  virtualServers: VirtualServerStatus[];
}

/** "0.4s", "12s", "4m05s", "3h07m", "2d03h". */
export function age(ms: number): string {
  const s = Math.max(0, ms) / 1000;
  if (s < 10) return `${s.toFixed(1)}s`;
  if (s < 60) return `${Math.floor(s)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.floor(s % 60)).padStart(2, "0")}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${String(m % 60).padStart(2, "0")}m`;
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, "0")}h`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

export function formatHealth(s: HealthSnapshot): string {
  if (s.file === undefined && s.virtualServers.length === 0) {
    return "No health checks: lvsd has no keepalived configuration (lvsd --config FILE, or lvsadm --import FILE)\n";
  }
  const lines: string[] = [];
  const loaded = s.loadedAt !== undefined ? `, loaded ${age(s.now - s.loadedAt)} ago` : "";
  lines.push(`Health checks: ${s.file ?? "(no file)"}${loaded}`);
  let nrs = 0;
  let nchk = 0;
  for (const v of s.virtualServers) {
    nrs += v.realServers.length;
    for (const r of v.realServers) nchk += r.checkers.length;
  }
  const c = s.counters;
  lines.push(
    `${plural(s.virtualServers.length, "virtual server")}, ${plural(nrs, "real server")}, ${plural(nchk, "check")}; ` +
      `probes ${c.probes}, failed ${c.failures}; transitions ${c.ups} up, ${c.downs} down`,
  );

  // Rows: [dest, state, weight, check, last result, last change, reason]; virtual servers span.
  type Row = string[] | { span: string };
  const rows: Row[] = [];
  for (const v of s.virtualServers) {
    const q = v.quorumUp ? "up" : "LOST";
    const svc = v.services.length === 1 ? (v.services[0] ?? v.name) : `${v.name}: ${v.services.join(", ")}`;
    rows.push({
      span: `${svc.padEnd(24)} quorum ${q} (live weight ${v.liveWeight}, quorum ${v.quorum}, hysteresis ${v.hysteresis})`,
    });
    for (const r of v.realServers) {
      const weight = r.tableWeight === undefined ? "-" : String(r.tableWeight);
      const checks: (CheckerStatus | undefined)[] = r.checkers.length > 0 ? r.checkers : [undefined];
      checks.forEach((k, i) => {
        const dest = i === 0 ? `  -> ${r.name}` : "";
        if (!k) {
          rows.push([dest, r.alive ? "UP" : "DOWN", weight, "(no checker)", "-", "-", r.reason]);
          return;
        }
        const state = k.retrying ? "RETRY" : k.up ? "UP" : "DOWN";
        const last =
          k.lastAt === undefined ? "not yet" : `${k.lastOk ? "ok" : "fail"} ${age(s.now - k.lastAt)} ago`;
        const change = k.lastChangeAt === undefined ? "-" : `${age(s.now - k.lastChangeAt)} ago`;
        const reason = k.lastReason ?? (k.up ? "" : r.reason);
        rows.push([dest, state, i === 0 ? weight : "", k.label, last, change, reason]);
      });
    }
    if (v.sorry) {
      const weight = v.sorry.tableWeight === undefined ? "-" : String(v.sorry.tableWeight);
      rows.push([
        `  -> ${v.sorry.name}`,
        v.sorry.active ? "SORRY" : "idle",
        weight,
        "sorry_server",
        "-",
        "-",
        v.sorry.active ? "quorum lost: serving" : "standby until quorum is lost",
      ]);
    }
  }
  const header = [
    "  -> RemoteAddress:Port",
    "State",
    "Weight",
    "Check",
    "Last result",
    "Last change",
    "Reason",
  ];
  const widths = header.map((h) => h.length);
  for (const r of rows) {
    if (!Array.isArray(r)) continue;
    r.forEach((cell, i) => {
      if (i < widths.length - 1) widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  }
  const fmt = (cells: string[]): string =>
    cells
      .map((cell, i) => (i < cells.length - 1 ? cell.padEnd(widths[i] ?? 0) : cell))
      .join(" ")
      .trimEnd();
  lines.push("Prot LocalAddress:Port     Quorum");
  lines.push(fmt(header));
  for (const r of rows) lines.push(Array.isArray(r) ? fmt(r) : r.span);
  return `${lines.join("\n")}\n`;
}
