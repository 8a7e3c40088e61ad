/**
 * The pure parts of the end-to-end bench (bench/e2e/nat.ts): reading a process's CPU time from
 * /proc/PID/stat, the machine's from /proc/stat, lvsd's link counters from `lvsadm --links`,
 * wrk's totals, and the median and spread of repeated ratios.
 */

/**
 * utime + stime, in clock ticks, from the text of /proc/PID/stat (fields 14 and 15). The command
 * name (field 2) is in parentheses and may hold spaces or parentheses itself, so the fields are
 * counted from the last ")". The times cover every thread of the process. NaN when malformed.
 */
export function statCpuTicks(stat: string): number {
  const close = stat.lastIndexOf(")");
  if (close < 0) return Number.NaN;
  // after ") ": field 3 (state) is index 0, so utime (14) is index 11 and stime (15) index 12
  const f = stat
    .slice(close + 2)
    .trim()
    .split(/\s+/);
  if (f.length < 13) return Number.NaN;
  const u = Number(f[11]);
  const s = Number(f[12]);
  return Number.isInteger(u) && Number.isInteger(s) ? u + s : Number.NaN;
}

/**
 * CPU time from /proc/stat, in ticks: busy (not idle/iowait) and total — of the whole machine
 * (the "cpu " line), or of one CPU (the "cpuN " line) when `cpu` is given.
 */
export function machineTicks(procStat: string, cpu?: number): { busy: number; total: number } {
  const head = cpu === undefined ? "cpu " : `cpu${cpu} `;
  const line = procStat.split("\n").find((l) => l.startsWith(head));
  if (!line) return { busy: Number.NaN, total: Number.NaN };
  // user nice system idle iowait irq softirq steal guest guest_nice; guest time is already in user
  const v = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: total - idle, total };
}

/** One row of `lvsadm --links`. */
export interface LinkCounters {
  name: string;
  rxPackets: number;
  txPackets: number;
  rxDropped: number;
  txDropped: number;
}

/** The rows of `lvsadm --links` (header: Link MAC RxPkts RxBytes RxDrop TxPkts TxBytes TxDrop). */
export function parseLinks(text: string): LinkCounters[] {
  const rows: LinkCounters[] = [];
  const lines = text.split("\n");
  if (!/^Link\s+MAC\s+RxPkts/.test(lines[0] ?? ""))
    throw new Error(`lvsadm --links: unexpected header '${lines[0]}'`);
  for (const line of lines.slice(1)) {
    if (line.trim() === "") continue;
    const f = line.trim().split(/\s+/);
    if (f.length !== 8 || !f.slice(2).every((x) => /^\d+$/.test(x)))
      throw new Error(`lvsadm --links: unexpected row '${line}'`);
    rows.push({
      name: f[0]!,
      rxPackets: Number(f[2]),
      rxDropped: Number(f[4]),
      txPackets: Number(f[5]),
      txDropped: Number(f[7]),
    });
  }
  return rows;
}

/** Frames lvsd sent on all its links (what it forwarded, plus its few ARP/ICMP answers). */
export function totalTx(rows: readonly LinkCounters[]): number {
  return rows.reduce((n, r) => n + r.txPackets, 0);
}

/** wrk's summary: requests completed and requests/s; undefined when it did not finish. */
export function parseWrk(stdout: string): { requests: number; rps: number; errors: number } | undefined {
  const total = /(\d+) requests in ([\d.]+)(ms|s|m)/.exec(stdout);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(stdout);
  if (!total || !rps) return undefined;
  // "Socket errors: connect 0, read 3, write 0, timeout 1" and "Non-2xx or 3xx responses: N"
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(stdout);
  const errors =
    (sock ? sock.slice(1, 5).reduce((n, x) => n + Number(x), 0) : 0) + (non2xx ? Number(non2xx[1]) : 0);
  return { requests: Number(total[1]), rps: Number(rps[1]), errors };
}

export interface Spread {
  median: number;
  min: number;
  max: number;
  n: number;
}

/** Median and range of the finite values (NaN median when there are none). */
export function spread(values: readonly number[]): Spread {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN, n: 0 };
  const m = v.length >> 1;
  const median = v.length % 2 === 1 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
  return { median, min: v[0]!, max: v[v.length - 1]!, n: v.length };
}

/** "0.93 (0.90-0.97)" — or "n/a" without values; the range only when there are several. */
export function formatSpread(s: Spread, digits = 2): string {
  if (s.n === 0) return "n/a";
  const m = s.median.toFixed(digits);
  return s.n === 1 ? m : `${m} (${s.min.toFixed(digits)}-${s.max.toFixed(digits)})`;
}

/** The list started at position `rep` (mod its length): repeat r measures the setups in this order. */
export function rotate<T>(list: readonly T[], rep: number): T[] {
  const n = list.length;
  return list.map((_, i) => list[(i + rep) % n]!);
}
