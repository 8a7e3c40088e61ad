/**
 * lvsadm's cost per command, whole process, as a user sees it: `bin/lvsadm -Ln` (the native
 * client when it is built) against `node -e 0` (the floor of any Node.js client) and against the
 * Node.js client (`node bin/lvsadm -Ln`), in turn (A B A B ...), so each A/B ratio is taken pair
 * by pair on the same machine state.
 *
 *   npm run build && node dist/bench/lvsadm-startup.js [--runs N] [--services N]
 *
 * It starts its own control server (a child process holding a table of N services with one real
 * server each, default 10, on a Unix socket in a temp directory; no lvsd, no links) and prints,
 * per command, the median and min/max wall time of the runs and the median of the pair ratios.
 * Output goes to a pipe that is read and dropped, as in a script's `$(lvsadm -Ln)`.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { startControlServer } from "../src/control/server.js";
import type { ControlTarget } from "../src/control/target.js";
import { getScheduler } from "../src/datapath/schedulers/index.js";
import { FwdMethod } from "../src/tables/model.js";
import { ServiceTable } from "../src/tables/services.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const BIN = join(ROOT, "bin", "lvsadm");

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

/** The child: a control server for a table of `n` services. */
async function serve(path: string, n: number): Promise<void> {
  const table = new ServiceTable((name) => getScheduler(name));
  for (let i = 0; i < n; i++) {
    const svc = { proto: 6, addr: (10 << 24) + i + 1, port: 80, fwmark: 0 };
    table.addService(svc, { sched: "wlc", flags: 0, timeout: 0, netmask: 0xffffffff });
    const dest = { addr: ((192 << 24) >>> 0) + (168 << 16) + i + 1, port: 8080, weight: 1 };
    table.addDest(svc, { ...dest, fwd: FwdMethod.MASQ, uThreshold: 0, lThreshold: 0 });
  }
  const target: ControlTarget = {
    table,
    connTabSize: 4096,
    conns: () => [],
    getTimeouts: () => ({ tcp: 900, tcpfin: 120, udp: 300 }),
    setTimeouts: () => {},
  };
  await startControlServer(path, target);
  process.stdout.write("ready\n");
}

/** Wall time of one run, in ms. */
function timeRun(cmd: readonly string[], env: NodeJS.ProcessEnv): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd[0]!, cmd.slice(1), { env, stdio: ["ignore", "pipe", "pipe"] });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd.join(" ")}: exit ${r.status}: ${r.stderr}`);
  return ms;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function main(): Promise<void> {
  if (process.argv[2] === "serve") return serve(process.argv[3]!, Number(process.argv[4]));
  const runs = arg("--runs", 30);
  const services = arg("--services", 10);
  const dir = mkdtempSync(join(tmpdir(), "lvsadm-bench-"));
  const path = join(dir, "control.sock");
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), "serve", path, String(services)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.once("data", () => resolve());
      child.once("exit", (code) => reject(new Error(`control server exited (${code})`)));
    });
    const env = { ...process.env, LVSD_CONTROL: path };
    const cmds: [string, string[]][] = [
      ["bin/lvsadm -Ln", [BIN, "-Ln"]],
      ["node -e 0", [process.execPath, "-e", "0"]],
      ["node bin/lvsadm -Ln (Node.js client)", [process.execPath, BIN, "-Ln"]],
    ];
    for (const [, c] of cmds) timeRun(c, env); // warm-up
    const times: number[][] = cmds.map(() => []);
    for (let i = 0; i < runs; i++) for (const [k, [, c]] of cmds.entries()) times[k]!.push(timeRun(c, env));
    console.log(
      `lvsadm start-up: ${runs} runs each, in turn; ${services} services; ${cpus()[0]?.model ?? "?"}`,
    );
    console.log(
      `${"command".padEnd(40)} ${"median ms".padStart(10)} ${"min".padStart(8)} ${"max".padStart(8)}  A/B`,
    );
    const a = times[0]!;
    for (const [k, [name]] of cmds.entries()) {
      const t = times[k]!;
      const ratio = k === 0 ? "" : median(a.map((x, i) => x / t[i]!)).toFixed(3);
      console.log(
        `${name.padEnd(40)} ${median(t).toFixed(1).padStart(10)} ${Math.min(...t)
          .toFixed(1)
          .padStart(8)} ${Math.max(...t)
          .toFixed(1)
          .padStart(8)}  ${ratio}`,
      );
    }
  } finally {
    child.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
