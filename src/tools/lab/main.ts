/**
 * `npm run lab [-- nat|dr|tun|fullnat]` (as root): build an LVS lab in network namespaces,
 * configure it with lvsadm exactly as the tutorials do with ipvsadm, send requests from the
 * client and show the real servers answering in turn, then the `lvsadm -Ln --stats` table.
 * Everything is removed at the end, also on Ctrl-C or failure.
 *
 * `nat --fault`: lvsd configured from a generated keepalived.conf with HTTP_GET checks instead;
 * one real server's web server stops and starts again while the client keeps asking.
 *
 * `ha`: the failover lab (src/tools/lab/ha.ts): two directors sharing the VIP by VRRP, the
 * MASTER killed under load, takeover time, failback, and a verdict on the connections.
 *
 * Usage: node dist/src/tools/lab/main.js [nat|dr|tun|fullnat] [--backend tap|raw] [--requests N] [--keep]
 *        node dist/src/tools/lab/main.js nat --fault [--backend tap|raw]
 *        node dist/src/tools/lab/main.js ha [--mode nat|dr|fullnat] [--with-keepalived] [--persistent] [--synproxy] [--signal kill|term] [--downloads N] [--loops N] [--new-rate N]
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HA_DEFAULTS, runHaLab } from "./ha.js";
import type { HaMode } from "./halab.js";
import type { LabBase } from "./labbase.js";
import { DIRECTOR_MGMT, NatLab, PEER, rsIp, VIP } from "./natlab.js";
import { canUseNetns } from "./netns.js";
import { RoutedLab } from "./routedlab.js";

function say(s: string): void {
  process.stdout.write(`${s}\n`);
}

const LABS = ["nat", "dr", "tun", "fullnat"] as const;
type LabName = (typeof LABS)[number];
/** Options of `lab ha` that take a value. */
const HA_VALUE_OPTS = /^--(mode|downloads|loops|new-rate|signal)$/;

/** `lab ha`: the failover lab; exit 1 when an established connection was lost (not with --with-keepalived). */
async function haMain(args: string[]): Promise<number> {
  const val = (name: string): string | undefined => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const stray = args.find(
    (a, i) => a !== "ha" && !a.startsWith("-") && !HA_VALUE_OPTS.test(args[i - 1] ?? ""),
  );
  if (stray) {
    process.stderr.write(`lab ha: unexpected '${stray}'\n`);
    return 2;
  }
  const mode = val("--mode") ?? "nat";
  if (mode !== "nat" && mode !== "dr" && mode !== "fullnat") {
    process.stderr.write(`lab ha: --mode ${mode}: expected nat, dr or fullnat\n`);
    return 2;
  }
  const num = (name: string, dflt: number): number => {
    const v = Number(val(name) ?? dflt);
    return Number.isInteger(v) && v >= 0 && v <= 5000 ? v : dflt;
  };
  const withKeepalived = args.includes("--with-keepalived");
  const persistent = args.includes("--persistent");
  const synProxy = args.includes("--synproxy");
  if (synProxy && mode === "dr") {
    process.stderr.write("lab ha: --synproxy needs --mode nat or fullnat\n");
    return 2;
  }
  const signal = val("--signal") ?? "kill";
  if (signal !== "kill" && signal !== "term") {
    process.stderr.write(`lab ha: --signal ${signal}: expected kill or term\n`);
    return 2;
  }
  const dir = mkdtempSync(join(tmpdir(), "lvs-ha-"));
  let lab: { down(): void } | undefined;
  let done = false;
  const cleanup = (): void => {
    if (done) return;
    done = true;
    lab?.down();
    rmSync(dir, { recursive: true, force: true });
  };
  process.once("SIGINT", () => {
    cleanup();
    process.exit(130);
  });
  process.once("SIGTERM", () => {
    cleanup();
    process.exit(143);
  });
  try {
    say(
      `== failover lab, LVS-${mode.toUpperCase()}: two directors share VIP ${VIP} by VRRP; the MASTER's lvsd is killed under load, then restarted${withKeepalived ? " (BACKUP: a real keepalived, VRRP only)" : ""}`,
    );
    const r = await runHaLab(
      {
        ...HA_DEFAULTS,
        prefix: `ha${process.pid % 10000}`,
        mode: mode as HaMode,
        withKeepalived,
        persistent,
        synProxy,
        stopSignal: signal === "term" ? "SIGTERM" : "SIGKILL",
        dir,
        downloads: num("--downloads", HA_DEFAULTS.downloads),
        loops: num("--loops", HA_DEFAULTS.loops),
        newPerSec: num("--new-rate", HA_DEFAULTS.newPerSec),
        say,
      },
      (l) => {
        lab = l;
      },
    );
    return withKeepalived || r.ok ? 0 : 1;
  } catch (err) {
    process.stderr.write(`lab ha: ${(err as Error).message}\n`);
    return 1;
  } finally {
    cleanup();
  }
}

interface Plan {
  lab: LabBase;
  title: string;
  commands: string[][];
}

// nat --fault: lvsd takes its services from a generated keepalived.conf whose HTTP_GET checks
// (src/control/health; docs/health.md) notice a real server stopping and starting again.

/** Health-check timing of the fault demo: detection within DELAY_LOOP x (RETRY + 1) s. */
const DELAY_LOOP = 1;
const RETRY = 1;

function faultConfig(): string {
  const rs = [1, 2, 3, 4].map(
    (k) => `    real_server ${rsIp(k)} 80 {
        weight 1
        HTTP_GET {
            url {
                path /
                status_code 200
            }
            connect_timeout 1
            retry ${RETRY}
            delay_before_retry ${DELAY_LOOP}
        }
    }`,
  );
  return `! generated by npm run lab -- nat --fault
virtual_server ${VIP} 80 {
    delay_loop ${DELAY_LOOP}
    warmup 0
    lvs_sched rr
    lvs_method NAT
    protocol TCP
${rs.join("\n")}
}
`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Stop rs2's web server while the client keeps asking, then start it again. */
async function faultDemo(lab: NatLab, requests: number): Promise<number> {
  const ask = (): string => lab.get(`http://${VIP}/`).trim();
  const waitLog = async (re: RegExp, from: number, ms: number): Promise<boolean> => {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      if (re.test(lab.log().slice(from))) return true;
      await sleep(20);
    }
    return false;
  };
  say("# lvsadm --health");
  process.stdout.write(lab.lvsadm("--health").stdout);
  say(`# client: ${requests} x curl http://${VIP}/`);
  for (let i = 1; i <= requests; i++) say(`  request ${i}: ${ask() || "(no answer)"}`);

  const ss = lab.topo.exec("r2", "ss", ["-ltnpH", "sport = :80"]).stdout;
  const pid = Number(/pid=(\d+)/.exec(ss)?.[1] ?? 0);
  if (!pid) throw new Error("rs2's web server is not running");
  const from = lab.log().length;
  process.kill(pid, "SIGKILL");
  const t0 = Date.now();
  const t = (): string => `${((Date.now() - t0) / 1000).toFixed(2)}s`;
  say(`# rs2's web server stopped (pid ${pid}); the client asks every 100 ms`);
  // lvsd's log is JSON lines (stderr is a pipe): the event's message is its "msg" field
  const down = /"msg":"(health: TCP \S+ 192\.168\.10\.2:80 down: [^"\n]*)"/;
  let detected = "";
  let after = 0;
  let failedAfter = 0;
  while (Date.now() - t0 < 10_000 && after < 12) {
    const answer = ask();
    const at = t();
    if (!detected) {
      detected = down.exec(lab.log().slice(from))?.[1] ?? "";
      if (detected) say(`  t=${at} lvsd: ${detected}`);
    }
    if (detected) {
      after++;
      if (!answer || answer === "rs2") failedAfter++;
    }
    say(`  t=${at} ${answer || "(failed)"}${detected ? "" : "   (before detection)"}`);
    await sleep(100);
  }
  if (!detected) throw new Error(`rs2 was not detected as down:\n${lab.log().slice(from)}`);
  say(
    `# after detection: ${after} requests, ${failedAfter} failed (bound: delay_loop x (retry+1) = ${DELAY_LOOP * (RETRY + 1)} s)`,
  );
  say("# lvsadm -Ln");
  process.stdout.write(lab.lvsadm("-Ln").stdout);
  say("# lvsadm --health");
  process.stdout.write(lab.lvsadm("--health").stdout);

  const from2 = lab.log().length;
  lab.topo.spawn("r2", process.execPath, [PEER, "--name", "rs2", "--http", "80"]);
  const t1 = Date.now();
  say("# rs2's web server started again");
  if (!(await waitLog(/"msg":"health: TCP \S+ 192\.168\.10\.2:80 up: /, from2, 10_000))) {
    throw new Error(`rs2 did not come back:\n${lab.log().slice(from2)}`);
  }
  const up =
    /"msg":"(health: [^"\n]*192\.168\.10\.2:80 up: [^"\n]*)"/.exec(lab.log().slice(from2))?.[1] ?? "";
  say(`  after ${((Date.now() - t1) / 1000).toFixed(2)}s: lvsd: ${up}`);
  say(`# client: ${requests} x curl http://${VIP}/`);
  for (let i = 1; i <= requests; i++) say(`  request ${i}: ${ask() || "(no answer)"}`);
  say("# lvsadm -Ln --stats");
  process.stdout.write(lab.lvsadm("-Ln", "--stats").stdout);
  return failedAfter === 0 ? 0 : 1;
}

function plan(name: LabName, backend: "tap" | "raw", prefix: string, config?: string): Plan {
  const svc = `${VIP}:80`;
  switch (name) {
    case "nat": {
      if (config) {
        const lab = new NatLab({ prefix, servers: 4, backend, mgmt: true, lvsdArgs: ["--config", config] });
        return {
          lab,
          title: `LVS-NAT with health checks (${backend} backend): lvsd --config keepalived.conf; checks leave from ${DIRECTOR_MGMT}`,
          commands: [],
        };
      }
      const lab = new NatLab({ prefix, servers: 4, backend });
      return {
        lab,
        title: `LVS-NAT (${backend} backend): client 10.0.0.7, director 10.0.0.1 / 192.168.10.254, four real servers`,
        commands: [
          ["-A", "-t", svc, "-s", "rr"],
          ...[1, 2, 3, 4].map((k) => ["-a", "-t", svc, "-r", `${rsIp(k)}:80`, "-m"]),
        ],
      };
    }
    case "fullnat": {
      const lab = new NatLab({ prefix, servers: 2, backend, rsRoute: false });
      return {
        lab,
        title:
          "FULLNAT: the real servers have no route to the client; PROXY protocol v1 tells them who it is",
        commands: [
          ["-A", "-t", svc, "-s", "rr"],
          ["--add-laddr", "-t", svc, "-z", "192.168.10.200"],
          ...[1, 2].map((k) => ["-a", "-t", svc, "-r", `${rsIp(k)}:80`, "--fullnat"]),
          ["-A", "-t", `${VIP}:81`, "-s", "rr", "--proxy-protocol", "v1"],
          ["--add-laddr", "-t", `${VIP}:81`, "-z", "192.168.10.200"],
          ["-a", "-t", `${VIP}:81`, "-r", `${rsIp(1)}:8082`, "--fullnat"],
        ],
      };
    }
    case "dr":
    case "tun": {
      const lab = new RoutedLab({ prefix, mode: name });
      const flag = name === "dr" ? "-g" : "-i";
      return {
        lab,
        title:
          name === "dr"
            ? "LVS-DR: client behind a router; director and two real servers (VIP on lo, arp_ignore) on one segment"
            : "LVS-TUN: client behind a router; real servers on another subnet, IPIP decapsulated by lvs-realserver",
        commands: [
          ["-A", "-t", svc, "-s", "rr"],
          ...[1, 2].map((k) => ["-a", "-t", svc, "-r", lab.rsIp(k), flag]),
        ],
      };
    }
  }
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  if (args.includes("ha")) {
    if (!canUseNetns()) {
      process.stderr.write("lab: needs root and the ip tool (network namespaces): run with sudo\n");
      return 2;
    }
    return haMain(args);
  }
  const name = args.find((a) => !a.startsWith("-") && LABS.includes(a as LabName)) ?? "nat";
  const unknown = args.find(
    (a, i) =>
      !a.startsWith("-") && !LABS.includes(a as LabName) && !/^--(backend|requests)$/.test(args[i - 1] ?? ""),
  );
  if (unknown) {
    process.stderr.write(`lab: unknown lab '${unknown}' (available: ${LABS.join(", ")}, ha)\n`);
    return 2;
  }
  const backend = args.includes("--backend") && args[args.indexOf("--backend") + 1] === "raw" ? "raw" : "tap";
  const nIdx = args.indexOf("--requests");
  const requests = nIdx >= 0 ? Number(args[nIdx + 1]) : 8;
  const keep = args.includes("--keep");
  const fault = args.includes("--fault");
  if (fault && name !== "nat") {
    process.stderr.write("lab: --fault goes with the nat lab\n");
    return 2;
  }
  if (!canUseNetns()) {
    process.stderr.write("lab: needs root and the ip tool (network namespaces): run with sudo\n");
    return 2;
  }
  // nat --fault: a generated keepalived.conf for lvsd --config
  const confDir = fault ? mkdtempSync(join(tmpdir(), "lvs-lab-")) : undefined;
  const config = confDir ? join(confDir, "keepalived.conf") : undefined;
  if (config) writeFileSync(config, faultConfig());
  const p = plan(name as LabName, backend, `lab${process.pid % 10000}`, config);
  const lab = p.lab;
  let done = false;
  const cleanup = (): void => {
    if (done) return;
    done = true;
    lab.down();
    if (confDir) rmSync(confDir, { recursive: true, force: true });
  };
  process.once("SIGINT", () => {
    cleanup();
    process.exit(130);
  });
  process.once("SIGTERM", () => {
    cleanup();
    process.exit(143);
  });
  try {
    say(`== ${p.title}; VIP ${VIP}`);
    if (config) {
      say(`# ${config}`);
      process.stdout.write(faultConfig());
    }
    await lab.up();
    if (config) return await faultDemo(lab as NatLab, requests);
    for (const c of p.commands) {
      say(`# lvsadm ${c.join(" ")}`);
      const r = lab.lvsadm(...c);
      if (r.code !== 0) throw new Error(`lvsadm ${c.join(" ")}: ${r.stderr.trim()}`);
    }
    say("# lvsadm -Ln");
    process.stdout.write(lab.lvsadm("-Ln").stdout);
    say(`# client: ${requests} x curl http://${VIP}/`);
    for (let i = 1; i <= requests; i++)
      say(`  request ${i}: ${lab.get(`http://${VIP}/`).trim() || "(no answer)"}`);
    if (name === "fullnat") {
      say(
        `# client: curl http://${VIP}:81/ (PROXY v1 to the real server, which answers with the client's address)`,
      );
      say(`  ${lab.get(`http://${VIP}:81/`).trim() || "(no answer)"}`);
    }
    say("# lvsadm -Ln --stats");
    process.stdout.write(lab.lvsadm("-Ln", "--stats").stdout);
    say("# lvsadm -Lnc");
    process.stdout.write(lab.lvsadm("-Lnc").stdout);
    if (keep) {
      say(`lab kept: namespaces ${lab.topo.ns("*")}; LVSD_CONTROL=${lab.control}; press Ctrl-C to remove it`);
      await new Promise(() => {});
    }
    return 0;
  } catch (err) {
    process.stderr.write(`lab: ${(err as Error).message}\n${lab.log()}`);
    return 1;
  } finally {
    if (!keep) cleanup();
  }
}

main().then((code) => process.exit(code));
