/**
 * `npm run lab -- ha` (issue 10): the failover lab. Two directors share the VIP by VRRP (lvsd
 * MASTER priority 150, lvsd BACKUP priority 100, each configured only by a keepalived.conf that
 * the lab writes and prints; src/tools/lab/halab.ts has the topology). The client holds long
 * downloads checked byte for byte, keep-alive request loops and a stream of new connections
 * (src/tools/lab/haclient.ts), the lab kills the MASTER's lvsd with SIGKILL in the middle,
 * measures the takeover (kill → the BACKUP's vrrp.transition to MASTER, and → the first byte
 * flowing again), lets it run, restarts the first director (it preempts: failback), and prints a
 * timeline and a verdict: connections broken, bytes corrupted, requests failed.
 *
 * Connections survive only with connection sync (`global_defs { lvs_sync_daemon ... }`); the
 * result says whether lvsd accepted it. `withKeepalived`: the BACKUP is a real keepalived (VRRP
 * only), so only the VIP moves and connections through it break: reported, not failed.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import type { ConnReport, HaClientOptions, HaClientResult } from "./haclient.js";
import {
  directorMac,
  HA_ADVERT_INT,
  HA_CLIENT,
  HA_PERSIST_TIMEOUT,
  HA_PRIORITY,
  HA_SYSCTLS,
  HA_VIP,
  HaLab,
  type HaMode,
} from "./halab.js";
import { ROOT } from "./labbase.js";

export const HACLIENT = join(ROOT, "dist", "src", "tools", "lab", "haclient.js");

export interface HaRunOptions {
  prefix: string;
  mode: HaMode;
  withKeepalived: boolean;
  dir: string;
  downloads: number;
  loops: number;
  newPerSec: number;
  loopIntervalMs: number;
  fileBytes: number;
  /** How long a download lasts (nginx limit_rate = fileBytes / this). */
  downloadSeconds: number;
  /** Traffic before the kill, after the takeover, after the failback (ms). */
  beforeKillMs: number;
  afterTakeoverMs: number;
  afterFailbackMs: number;
  /** A persistent service: every connection of the client must get the same real server. */
  persistent?: boolean;
  /** The SYN proxy on the service (NAT, FULLNAT): its sequence offsets must survive by sync. */
  synProxy?: boolean;
  /**
   * How the MASTER's lvsd is stopped: SIGKILL (default: a crash; the BACKUP waits
   * Master_Down_Interval) or SIGTERM (a clean stop: its priority-0 advert hands over within
   * the BACKUP's Skew_Time).
   */
  stopSignal?: "SIGKILL" | "SIGTERM";
  say: (s: string) => void;
}

export const HA_DEFAULTS = {
  downloads: 60,
  loops: 460,
  newPerSec: 25,
  loopIntervalMs: 50,
  fileBytes: 4 * 1024 * 1024,
  downloadSeconds: 24,
  beforeKillMs: 3000,
  afterTakeoverMs: 3000,
  afterFailbackMs: 3000,
} as const;

export interface HaCounts {
  download: number;
  loop: number;
  new: number;
}

export interface HaResult {
  mode: HaMode;
  withKeepalived: boolean;
  /** lvsd took lvs_sync_daemon without a warning (connection sync present). */
  syncAccepted: boolean;
  /** Both directors' keepalived.conf text. */
  configs: string[];
  /** Established long-lived connections when the MASTER was killed. */
  establishedAtKill: number;
  takeoverMs: number | undefined;
  /** 3 × advert_int + Skew_Time of the BACKUP + 100 ms. */
  takeoverBoundMs: number;
  /** Kill → first download byte after the stall. */
  resumeMs: number | undefined;
  /** Kill → first new connection answered that was opened after the kill. */
  firstNewAfterKillMs: number | undefined;
  /** The client's MAC for the VIP before the kill and after the takeover. */
  macBefore: string;
  macAfter: string;
  /** After the takeover: the VIP answered (HTTP through lvsd; an ARP answer from keepalived). */
  vipAnswered: boolean;
  vipAnswer: string;
  /** Restart of director 1 → its transition to MASTER (the preemption). */
  failbackMs: number | undefined;
  /** Director 2 went back to BACKUP after the failback. */
  backupAgain: boolean;
  /** Connections opened, and established ones reset, per kind. */
  opened: HaCounts;
  resets: HaCounts;
  /** Established connections that did not end as expected (reset, closed, stalled, bad). */
  broken: HaCounts;
  /**
   * Of `broken`: new connections opened less than SYNC_WINDOW_MS before (or SWITCH_RACE_MS after) the kill or the
   * failback and lost there, before the old MASTER's sync could have sent them (reported, not failed).
   */
  brokenInSyncWindow: number;
  bytesCorrupted: number;
  checksumFailures: number;
  requestsFailed: number;
  requests: number;
  downloadedBytes: number;
  conns: ConnReport[];
  /**
   * Just before the kill: the client's connections in the MASTER's table, and how many of them
   * the BACKUP's table lacked a moment later (does sync keep up with the MASTER's rate?).
   */
  backupTable: { master: number; missing: number } | undefined;
  /** The real servers that answered the client's loops and new connections (by name, sorted). */
  servers: string[];
  /**
   * With `synProxy`: the MASTER's SYN-proxy handshakes just before the kill (lvsadm
   * --synproxy-stats), and the SEQ options the BACKUP took as a SYN-proxy offset by then
   * (lvsadm --sync seq_applied, read after the takeover).
   */
  synProxy: { handshakesAtKill: number; seqApplied: number } | undefined;
  timeline: string[];
  /**
   * Default mode: no established connection reset, none broken (but for brokenInSyncWindow), no
   * byte corrupted; with `persistent`, one real server for every connection.
   */
  ok: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A connection the MASTER took less than this before it died (or before the failback) may not
 * have been sent to the other director yet: the kernel syncs a connection at its third packet
 * (with the lab's knobs: when it becomes ESTABLISHED) and lvsd sends at its next tick (20 ms).
 */
export const SYNC_WINDOW_MS = 500;
/**
 * A connection opened this soon after a switch may still have gone to the old master (the
 * client's ARP entry changes with the new master's gratuitous ARP): reported with the others.
 */
export const SWITCH_RACE_MS = 50;

/** How long after reading the MASTER's table the BACKUP's is read (sync's send interval and more). */
const TABLE_LAG_MS = 200;

/**
 * The client's connections (protocol, client port) in director 1's table, read first, and how
 * many of them are not in director 2's, read TABLE_LAG_MS later. undefined unless both are lvsd.
 */
async function compareTables(lab: HaLab): Promise<{ master: number; missing: number } | undefined> {
  if (!lab.isLvsd(1) || !lab.isLvsd(2) || lab.exited(1) || lab.exited(2)) return undefined;
  const keys = (k: number): Set<string> =>
    new Set(
      lab
        .lvsadm(k, "-Lnc")
        .stdout.split("\n")
        .filter((l) => l.includes(`${HA_CLIENT}:`))
        .map((l) => {
          const w = l.trim().split(/\s+/);
          return `${w[0]} ${w[3]}`; // protocol and client address:port
        }),
    );
  const m = keys(1);
  await sleep(TABLE_LAG_MS);
  const b = keys(2);
  let missing = 0;
  for (const x of m) if (!b.has(x)) missing++;
  return { master: m.size, missing };
}

/** Skew_Time of VRRPv2 for a priority (ms): (256 − p) / 256 s. */
export function skewMs(priority: number): number {
  return ((256 - priority) * 1000) / 256;
}

class ClientProc {
  readonly p: ChildProcess;
  private buf = "";
  ready: { t: number; established: number } | undefined;
  result: HaClientResult | undefined;
  progress: { t: number; open: number; downloaded: number; answers: number; newConns: number } | undefined;
  err = "";

  constructor(lab: HaLab, o: HaClientOptions) {
    // spawned directly (not through Topology.spawn): its stdin carries `stop`
    this.p = spawn("ip", ["netns", "exec", lab.topo.ns("c"), process.execPath, HACLIENT, JSON.stringify(o)], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    this.p.stdout?.on("data", (b: Buffer) => {
      this.buf += b.toString();
      let i = this.buf.indexOf("\n");
      while (i >= 0) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        i = this.buf.indexOf("\n");
        try {
          const m = JSON.parse(line) as { ev: string };
          if (m.ev === "ready") this.ready = m as unknown as ClientProc["ready"];
          else if (m.ev === "progress") this.progress = m as unknown as ClientProc["progress"];
          else if (m.ev === "done") this.result = m as HaClientResult;
        } catch {
          this.err += `${line}\n`;
        }
      }
    });
    this.p.stderr?.on("data", (b: Buffer) => {
      this.err += b.toString();
    });
  }

  /** End the loops and new connections; whatever is still open `drainMs` later is cut. */
  stop(drainMs: number): void {
    this.p.stdin?.write(`stop ${Math.round(drainMs)}\n`);
  }

  kill(): void {
    if (this.p.exitCode === null && this.p.signalCode === null) this.p.kill("SIGKILL");
  }
}

async function until<T>(what: string, f: () => T | undefined, ms: number): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Build the lab, run the failover and the failback under load, tear it down, return the result. */
export async function runHaLab(o: HaRunOptions, onLab?: (lab: HaLab) => void): Promise<HaResult> {
  const lab = new HaLab({
    prefix: o.prefix,
    mode: o.mode,
    withKeepalived: o.withKeepalived,
    dir: o.dir,
    fileBytes: o.fileBytes,
    limitRate: Math.ceil(o.fileBytes / o.downloadSeconds),
    ...(o.persistent ? { persistent: true } : {}),
    ...(o.synProxy ? { synProxy: true } : {}),
  });
  onLab?.(lab);
  let client: ClientProc | undefined;
  try {
    return await run(lab, o, (c) => {
      client = c;
    });
  } finally {
    client?.kill();
    lab.down();
  }
}

async function run(lab: HaLab, o: HaRunOptions, setClient: (c: ClientProc) => void): Promise<HaResult> {
  const say = o.say;
  const timeline: [number, string][] = [];
  const mark = (at: number, what: string): void => {
    timeline.push([at, what]);
  };
  const configs = [lab.config(1), lab.config(2)];
  for (const k of [1, 2]) {
    say(`# ${lab.confFile(k)}${lab.isLvsd(k) ? "" : "  (keepalived)"}`);
    o.say(configs[k - 1]!.trimEnd());
  }
  say(
    `# each lvsd also gets ${HA_SYSCTLS.map((x) => `--sysctl ${x}`).join(" ")} (sync resent every 2 s of traffic, for failback)`,
  );
  if (o.mode === "fullnat") {
    say(`# ${lab.rulesFile()}  (lvsd --restore: FULLNAT has no keepalived.conf spelling)`);
    say(lab.rules().trimEnd());
  }
  say("# building the namespaces; starting director 1, then director 2");
  const t0 = Date.now();
  await lab.up();
  mark(lab.transitionAt(1, "MASTER", 0) ?? Date.now(), "director 1 MASTER");
  mark(Date.now(), `director 2 ${lab.state(2)}`);
  await sleep(200); // the directors' log lines of their start arrive
  const syncAccepted = lab.syncAccepted(1) && (o.withKeepalived || lab.syncAccepted(2));
  say(
    `# up in ${((Date.now() - t0) / 1000).toFixed(1)} s; connection sync (lvs_sync_daemon): ${
      syncAccepted
        ? "running (sync.start logged)"
        : "NOT running (no sync.start, or lvs_sync_daemon warned): connections will not survive"
    }`,
  );
  if (lab.isLvsd(1)) {
    say("# director 1: lvsadm -Ln");
    say(lab.lvsadm(1, "-Ln").stdout.trimEnd());
    say("# director 1: lvsadm --vrrp");
    say(lab.lvsadm(1, "--vrrp").stdout.trimEnd());
  }

  // load
  const copts: HaClientOptions = {
    vip: HA_VIP,
    port: 80,
    downloads: o.downloads,
    path: "/big",
    expectFile: lab.bigFile,
    loops: o.loops,
    loopIntervalMs: o.loopIntervalMs,
    newPerSec: o.newPerSec,
    rampPer10ms: 10,
    connectTimeoutMs: 10_000,
    deadlineMs: 120_000,
    drainMs: 30_000,
  };
  say(
    `# client: ${o.downloads} downloads of ${o.fileBytes} bytes (limit_rate ${Math.ceil(o.fileBytes / o.downloadSeconds)} B/s), ${o.loops} keep-alive loops (a request every ${o.loopIntervalMs} ms), ${o.newPerSec} new connections/s`,
  );
  const client = new ClientProc(lab, copts);
  setClient(client);
  const ready = await until("the client's connections", () => client.ready, 30_000).catch((e: Error) => {
    throw new Error(`${e.message}\n${client.err}`);
  });
  mark(ready.t, `client: ${ready.established} long-lived connections established`);
  say(`# client: ${ready.established} long-lived connections established`);
  await sleep(o.beforeKillMs);
  const macBefore = lab.clientVipMac();
  const establishedAtKill = client.progress?.open ?? ready.established;
  // Does the BACKUP keep up with the MASTER's rate? Every connection in the MASTER's table
  // should be in the BACKUP's a moment later (the sync daemon sends every 20 ms).
  const peer = await compareTables(lab);
  if (peer !== undefined) {
    const held = peer.master - peer.missing;
    say(
      `# before the kill: the BACKUP's table has ${held} of the MASTER's ${peer.master} connections of the client (${peer.missing} missing ${TABLE_LAG_MS} ms later)`,
    );
    mark(Date.now(), `BACKUP has ${held} of the MASTER's ${peer.master} connections`);
  }

  // SYN proxy: the connections are the director's splices, and the BACKUP has their offsets
  const counter = (k: number, args: string[], name: string): number => {
    const line = lab
      .lvsadm(k, ...args)
      .stdout.split("\n")
      .find((l) => l.trim().split(/\s+/)[0] === name);
    return Number(line?.trim().split(/\s+/).at(-1) ?? Number.NaN);
  };
  const handshakesAtKill = o.synProxy ? counter(1, ["--synproxy-stats"], "handshakes") : 0;
  if (o.synProxy) say(`# SYN proxy: director 1 spliced ${handshakesAtKill} handshakes before the kill`);

  // failover
  const sig = o.stopSignal ?? "SIGKILL";
  const killAt = lab.kill(1, sig);
  mark(killAt, `${sig} to director 1 (lvsd MASTER); ${establishedAtKill} connections open`);
  say(`# ${sig} to director 1's lvsd with ${establishedAtKill} connections open`);
  let takeoverAt: number | undefined;
  try {
    takeoverAt = await until("director 2 MASTER", () => lab.transitionAt(2, "MASTER", killAt), 10_000);
  } catch {
    takeoverAt = undefined;
  }
  // SIGKILL: Master_Down_Interval (3 x advert_int + Skew_Time) + 100 ms; SIGTERM (priority 0): Skew_Time + 100 ms
  const bound = (sig === "SIGKILL" ? 3 * HA_ADVERT_INT * 1000 : 0) + skewMs(HA_PRIORITY[1]) + 100;
  const takeoverMs = takeoverAt !== undefined ? takeoverAt - killAt : undefined;
  if (takeoverAt !== undefined) {
    mark(takeoverAt, "director 2 MASTER (takeover)");
    say(
      `# takeover: director 2 MASTER ${takeoverMs} ms after the ${sig} (bound ${sig === "SIGKILL" ? "3 x advert_int + " : ""}skew + 100 ms = ${bound.toFixed(0)} ms)`,
    );
  } else say(`# takeover: director 2 did NOT become MASTER within 10 s\n${lab.logText(2)}`);
  await sleep(1000);
  const macAfter = lab.clientVipMac();
  let synProxy: HaResult["synProxy"];
  if (o.synProxy && lab.isLvsd(2)) {
    synProxy = { handshakesAtKill, seqApplied: counter(2, ["--sync"], "seq_applied") };
    say(
      `# SYN proxy: director 2 took ${synProxy.seqApplied} SYN-proxy offsets from sync (lvsadm --sync seq_applied)`,
    );
  }
  // the VIP answers through the new master
  let vipAnswer = "";
  let vipAnswered = false;
  if (lab.isLvsd(2)) {
    const r = lab.client("curl", ["-s", "-m", "5", `http://${HA_VIP}/`]);
    vipAnswer = r.stdout.trim();
    vipAnswered = r.code === 0 && /^rs\d+$/.test(vipAnswer);
  } else {
    const r = lab.client("arping", ["-c", "1", "-w", "2", "-I", lab.topo.dev("ca"), HA_VIP], 5000);
    vipAnswer = /\[([0-9a-fA-F:]{17})\]/.exec(r.stdout)?.[1]?.toLowerCase() ?? "";
    vipAnswered = vipAnswer === directorMac(2, 0);
  }
  mark(Date.now(), `VIP ${vipAnswered ? "answers" : "does NOT answer"} (${vipAnswer || "nothing"})`);
  say(
    `# after the takeover: the client's MAC for the VIP ${macBefore} -> ${macAfter}; ${
      lab.isLvsd(2) ? "GET /" : "arping VIP"
    } -> ${vipAnswer || "(no answer)"}`,
  );
  await sleep(o.afterTakeoverMs);

  // failback
  const restartAt = Date.now();
  lab.startDirector(1);
  mark(restartAt, "director 1 restarted");
  say("# director 1 restarted (state MASTER, priority 150: it preempts)");
  // while director 1 is BACKUP (Master_Down_Interval after its start), the MASTER's sync fills
  // its table: how much of it it holds before it preempts
  let syncedBeforeFailback = "";
  if (lab.isLvsd(1) && lab.isLvsd(2)) {
    try {
      await until("director 1 BACKUP", () => (lab.state(1) === "BACKUP" ? true : undefined), 10_000);
      await sleep(2000);
      const count = (k: number): number =>
        lab
          .lvsadm(k, "-Lnc")
          .stdout.split("\n")
          .filter((l) => l.includes(`${HA_CLIENT}:`) && l.includes("ESTABLISHED")).length;
      const [n1, n2] = [count(1), count(2)];
      syncedBeforeFailback = `${n1} of the MASTER's ${n2}`;
      mark(Date.now(), `director 1 (BACKUP) holds ${syncedBeforeFailback} ESTABLISHED connections`);
      say(
        `# director 1 (BACKUP, before it preempts) holds ${syncedBeforeFailback} ESTABLISHED connections (sync)`,
      );
    } catch {
      // reported by the failback below
    }
  }
  let failbackAt: number | undefined;
  try {
    failbackAt = await until(
      "director 1 MASTER again",
      () => lab.transitionAt(1, "MASTER", restartAt),
      15_000,
    );
    mark(failbackAt, "director 1 MASTER (failback)");
  } catch {
    say(`# director 1 did NOT become MASTER again within 15 s\n${lab.logText(1)}`);
  }
  let backupAgain = false;
  try {
    const at = await until("director 2 BACKUP", () => lab.transitionAt(2, "BACKUP", restartAt), 5000);
    mark(at, "director 2 BACKUP");
    backupAgain = true;
  } catch {
    backupAgain = false;
  }
  const failbackMs = failbackAt !== undefined ? failbackAt - restartAt : undefined;
  if (failbackMs !== undefined) say(`# failback: director 1 MASTER ${failbackMs} ms after its restart`);
  await sleep(o.afterFailbackMs);

  // the end
  // the directors' connection tables before the client ends anything (for the diagnosis below)
  const tables = [1, 2].map((k) =>
    lab.isLvsd(k) && !lab.exited(k) ? lab.lvsadm(k, "-Lnc").stdout.split("\n") : [],
  );
  const stopAt = Date.now();
  // the downloads end downloadSeconds after they started (limit_rate catches up after a stall);
  // one still running 8 s after that is stalled
  client.stop(Math.max(3000, ready.t + o.downloadSeconds * 1000 + 8000 - stopAt));
  mark(stopAt, "client: stop (loops and new connections end; downloads run to their end)");
  say("# client: stop; waiting for the downloads to finish");
  const result = await until("the client's result", () => client.result, copts.deadlineMs).catch(
    (e: Error) => {
      throw new Error(`${e.message}\n${client.err}`);
    },
  );
  mark(Date.now(), "client: done");
  if (lab.isLvsd(1)) {
    say("# director 1: lvsadm -Ln --stats");
    say(lab.lvsadm(1, "-Ln", "--stats").stdout.trimEnd());
  }
  if (lab.isLvsd(2)) {
    say("# director 2: lvsadm --vrrp");
    say(lab.lvsadm(2, "--vrrp").stdout.trimEnd());
  }
  for (const k of [1, 2] as const) {
    if (!lab.isLvsd(k) || lab.exited(k)) continue;
    say(`# director ${k}: lvsadm -L --daemon; lvsadm --sync (connection sync counters)`);
    say(lab.lvsadm(k, "-L", "--daemon").stdout.trimEnd());
    say(lab.lvsadm(k, "--sync").stdout.trimEnd());
  }

  // the numbers
  const conns = result.conns;
  const zero = (): HaCounts => ({ download: 0, loop: 0, new: 0 });
  const opened = zero();
  const resets = zero();
  const broken = zero();
  let bytesCorrupted = 0;
  let checksumFailures = 0;
  let requestsFailed = 0;
  let requests = 0;
  let downloadedBytes = 0;
  let brokenInSyncWindow = 0;
  const switches = [killAt, ...(failbackAt !== undefined ? [failbackAt] : [])];
  for (const c of conns) {
    opened[c.kind]++;
    if (
      c.kind === "new" &&
      c.established &&
      c.outcome === "unfinished" &&
      c.lastDataAt === 0 &&
      switches.some((at) => c.openedAt <= at + SWITCH_RACE_MS && c.openedAt > at - SYNC_WINDOW_MS)
    )
      brokenInSyncWindow++;
    if (c.established && c.outcome === "reset") resets[c.kind]++;
    if (c.established && c.outcome !== "ok") broken[c.kind]++;
    bytesCorrupted += c.corrupted;
    if (c.kind === "download") {
      downloadedBytes += c.bytes;
      if (c.checksumOk !== true) checksumFailures++;
    }
    requests += c.kind === "new" ? 1 : c.requests;
    requestsFailed += c.outcome === "ok" ? c.failedRequests : Math.max(1, c.failedRequests);
  }
  const resumeAt = resumeAfter(result, killAt);
  const firstNew = conns
    .filter((c) => c.kind === "new" && c.openedAt >= killAt && c.outcome === "ok")
    .reduce((m, c) => Math.min(m, c.closedAt), Number.POSITIVE_INFINITY);
  if (resumeAt !== undefined) mark(resumeAt, "first download byte after the stall");
  if (Number.isFinite(firstNew)) mark(firstNew, "first new connection (opened after the kill) answered");
  const total = (c: HaCounts): number => c.download + c.loop + c.new;
  const servers = [...new Set(conns.filter((c) => c.rs !== "").map((c) => c.rs))].sort();
  const ok =
    total(resets) === 0 &&
    total(broken) === brokenInSyncWindow &&
    bytesCorrupted === 0 &&
    checksumFailures === 0 &&
    (!o.persistent || servers.length === 1) &&
    (!o.synProxy ||
      (synProxy !== undefined && synProxy.handshakesAtKill >= establishedAtKill && synProxy.seqApplied > 0));

  // per connection: every download, every connection that did not end well
  const rel = (at: number): string => (at === 0 ? "never" : `${((at - killAt) / 1000).toFixed(2)} s`);
  say("# downloads (id, local port, bytes/expected, checksum, outcome, longest gap)");
  for (const c of conns.filter((x) => x.kind === "download")) {
    say(
      `  ${String(c.id).padStart(4)} :${c.lport} ${c.bytes}/${c.expected} ${
        c.checksumOk === true ? "sha256 ok" : c.checksumOk === false ? "sha256 BAD" : "sha256 -"
      } ${c.outcome}${c.error ? ` (${c.error})` : ""} max gap ${c.maxGapMs} ms${
        c.outcome === "ok" ? "" : `, last data ${rel(c.lastDataAt)}`
      }${c.corrupted ? ` CORRUPTED ${c.corrupted}` : ""}`,
    );
  }
  const bad = conns.filter((c) => c.kind !== "download" && c.outcome !== "ok");
  if (bad.length > 0) {
    say(`# other connections that did not end well: ${bad.length}`);
    for (const c of bad.slice(0, 40))
      say(
        `  ${String(c.id).padStart(4)} ${c.kind} :${c.lport} ${c.established ? "established" : "not established"} ${c.outcome} (${c.error}) requests ${c.requests} failed ${c.failedRequests} rs ${c.rs || "-"}; opened ${rel(c.openedAt)}, last data ${rel(c.lastDataAt)}`,
      );
    if (bad.length > 40) say(`  ... and ${bad.length - 40} more`);
  }
  // where the broken ones are in the directors' connection tables (lvsadm -Lnc), for diagnosis
  const lost = conns.filter((c) => c.established && c.outcome !== "ok" && c.lport !== 0).slice(0, 40);
  if (lost.length > 0) {
    say(
      "# broken connections in the directors' tables before the client stopped (lvsadm -Lnc: state, expiry)",
    );
    for (const c of lost) {
      const where = [1, 2].map((k) => {
        const row = tables[k - 1]!.find((l) => l.includes(`${HA_CLIENT}:${c.lport} `));
        return `d${k}: ${row ? row.trim().split(/\s+/).slice(1, 3).join(" ") : "-"}`;
      });
      say(`  :${c.lport} ${c.kind} ${where.join("; ")}`);
    }
  }
  const lines = timeline
    .sort((a, b) => a[0] - b[0])
    .map(([at, what]) => `${((at - killAt) / 1000).toFixed(3).padStart(8)} s  ${what}`);
  say("# timeline (seconds from the kill)");
  for (const l of lines) say(l);

  const r: HaResult = {
    mode: o.mode,
    withKeepalived: o.withKeepalived,
    syncAccepted,
    configs,
    establishedAtKill,
    takeoverMs,
    takeoverBoundMs: bound,
    resumeMs: resumeAt !== undefined ? resumeAt - killAt : undefined,
    firstNewAfterKillMs: Number.isFinite(firstNew) ? firstNew - killAt : undefined,
    macBefore,
    macAfter,
    vipAnswered,
    vipAnswer,
    failbackMs,
    backupAgain,
    opened,
    resets,
    broken,
    brokenInSyncWindow,
    bytesCorrupted,
    checksumFailures,
    requestsFailed,
    requests,
    downloadedBytes,
    conns,
    backupTable: peer,
    servers,
    synProxy,
    timeline: lines,
    ok,
  };
  const fmt = (c: HaCounts): string => `${total(c)} (downloads ${c.download}, loops ${c.loop}, new ${c.new})`;
  say("# verdict");
  say(
    `  takeover after ${sig}: ${takeoverMs ?? "none"} ms (bound ${bound.toFixed(0)} ms: ${
      takeoverMs !== undefined && takeoverMs <= bound ? "met" : "MISSED"
    }); first byte again after ${r.resumeMs ?? "-"} ms; first new connection after ${r.firstNewAfterKillMs ?? "-"} ms`,
  );
  say(
    `  failback: director 1 MASTER ${failbackMs ?? "-"} ms after its restart; director 2 BACKUP again: ${backupAgain}`,
  );
  say(`  connections opened: ${fmt(opened)}; ${establishedAtKill} open at the kill`);
  say(`  established connections reset: ${fmt(resets)}`);
  say(
    `  established connections broken (reset, closed, stalled or bad): ${fmt(broken)}${
      brokenInSyncWindow > 0
        ? `; of them ${brokenInSyncWindow} new connection(s) opened < ${SYNC_WINDOW_MS} ms before (or < ${SWITCH_RACE_MS} ms after) the kill or the failback: not synced yet, or sent to the old master (not failed)`
        : ""
    }`,
  );
  say(
    `  bytes corrupted: ${bytesCorrupted} of ${downloadedBytes} downloaded; checksum failures ${checksumFailures} of ${opened.download}`,
  );
  say(`  requests failed: ${requestsFailed} of ${requests}`);
  if (o.persistent)
    say(
      `  persistence (persistence_timeout ${HA_PERSIST_TIMEOUT}): the client's connections were answered by ${servers.join(", ") || "none"}${servers.length === 1 ? " only, across both switches" : ": FAIL (one real server expected)"}`,
    );
  say(
    `  connection sync: ${o.withKeepalived ? "none (the BACKUP is keepalived without IPVS)" : syncAccepted ? "on" : "NOT running in lvsd"}; ${
      o.withKeepalived
        ? "BACKUP was keepalived (VRRP only): resets are expected and not failed"
        : ok
          ? "PASS: no established connection lost"
          : "FAIL: established connections were lost"
    }`,
  );
  return r;
}

/**
 * Kill → the end of the stall: the first 10 ms bucket with download bytes after the longest run
 * of empty buckets that starts within 15 s of the kill (limit_rate makes short gaps all the time;
 * the failover's is seconds long). undefined when no download byte came after the kill.
 */
export function resumeAfter(r: HaClientResult, killAt: number): number | undefined {
  const from = Math.max(0, Math.floor((killAt - r.startedAt) / r.bucketMs));
  const last = from + Math.ceil(15_000 / r.bucketMs);
  let best = -1;
  let bestLen = 0;
  let runStart = -1;
  for (let i = from; i < r.dlBytes.length; i++) {
    const v = r.dlBytes[i] ?? 0;
    if (v === 0) {
      if (runStart < 0 && i <= last) runStart = i;
    } else if (runStart >= 0) {
      if (i - runStart > bestLen) {
        bestLen = i - runStart;
        best = i;
      }
      runStart = -1;
    }
  }
  return best >= 0 ? r.startedAt + best * r.bucketMs : undefined;
}
