/**
 * lvsd with a keepalived.conf, end to end in the NAT lab (src/tools/lab/natlab.ts with `mgmt`, so the
 * director's kernel has 192.168.10.253 on the inside network and the checks leave from it):
 * failure and recovery timing, removal versus inhibit_on_failure for open connections, quorum
 * and the sorry server, misc_dynamic weights, alpha, a SIGHUP reload under traffic, and the
 * fault test (a real server's web server stops: after detection no request fails).
 *
 * Checks are driven by the real servers themselves: an HTTP /health whose status the test sets
 * (fixtures/server.mjs on :8081), MISC_CHECK scripts reading state files, or the lab's web
 * server stopping. Needs root; skipped with a message otherwise. Namespaces are removed in
 * afterAll, also on failure.
 */

import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nativeAvailable } from "../../../src/datapath/io/native.js";
import { NatLab, PEER, rsIp, VIP } from "../../../src/tools/lab/natlab.js";
import { canUseNetns } from "../../../src/tools/lab/netns.js";
import { pattern } from "../../../src/tools/lab/peer.js";
import { haveTools } from "../../support/tools.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const privileged = canUseNetns() && nativeAvailable() && existsSync(PEER);
if (!privileged)
  console.warn("skipping lvsd health-check tests: needs root, the ip tool, the native addon and the build");
const ok = privileged && haveTools("lvsd health-check tests", "curl"); // requests, /health switches

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!ok)("lvsd with keepalived.conf health checks", () => {
  const prefix = `hl${process.pid % 100000}`;
  const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  const conf = join(dir, "keepalived.conf");
  const state = (name: string) => join(dir, `state-${name}`);
  const setState = (name: string, code: number) => writeFileSync(state(name), `${code}\n`);
  const events = join(dir, "events");
  const misc = (name: string, extra = "") =>
    `MISC_CHECK {\n      misc_path "/bin/sh -c 'exit $(cat ${state(name)})'"\n      ${extra}\n    }`;
  const lab = new NatLab({ prefix, servers: 4, mgmt: true, lvsdArgs: ["--config", conf] });

  /** The configuration; `reloaded` is the variant the SIGHUP test switches to. */
  const config = (reloaded = false) => `! lvsd end-to-end health checks
# timing: HTTP_GET on the real servers' /health (fixture on :8081)
virtual_server ${VIP} 80 {
  protocol TCP
  delay_loop 1
  warmup 0
  lb_algo rr
${[1, 2, 3]
  .map(
    (k) => `  real_server ${rsIp(k)} 80 {
    weight ${reloaded && k === 1 ? 2 : 1}
    HTTP_GET {
      connect_port 8081
      connect_timeout 0.5
      retry 1
      delay_before_retry 0.5
      url {
        path /health
      }
    }
  }`,
  )
  .join("\n")}
}

# open connections: weight 0 (inhibit_on_failure) keeps them, removal drops them
virtual_server ${VIP} 8080 {
  protocol TCP
  delay_loop 0.5
  warmup 0
  inhibit_on_failure
  real_server ${rsIp(1)} 8080 {
    ${misc("inhibit")}
  }
}
virtual_server ${VIP} 8090 {
  protocol TCP
  delay_loop 0.5
  warmup 0
  real_server ${rsIp(2)} 8080 {
    ${misc("remove")}
  }
}

# quorum 2 of weight 1 + 1, the sorry server is rs4
virtual_server ${VIP} 81 {
  protocol TCP
  delay_loop 0.5
  warmup 0
  lb_algo rr
  quorum 2
  sorry_server ${rsIp(4)} 80
  quorum_up "/bin/sh -c 'echo quorum_up >> ${events}'"
  quorum_down "/bin/sh -c 'echo quorum_down >> ${events}'"
  real_server ${rsIp(1)} 80 {
    notify_down "/bin/sh -c 'echo rs1_down >> ${events}'"
    notify_up "/bin/sh -c 'echo rs1_up >> ${events}'"
    ${misc("q1")}
  }
  real_server ${rsIp(2)} 80 {
    ${misc("q2")}
  }
}

# misc_dynamic
virtual_server ${VIP} 82 {
  protocol TCP
  delay_loop 0.5
  warmup 0
  real_server ${rsIp(3)} 80 {
    ${misc("dyn", "misc_dynamic")}
  }
}
${
  reloaded
    ? `include ${join(dir, "extra.conf")}`
    : `
# alpha: out of the pool until the first success
virtual_server ${VIP} 83 {
  protocol TCP
  delay_loop 0.5
  warmup 0
  alpha
  real_server ${rsIp(1)} 80 {
    ${misc("alpha")}
  }
}`
}

# the fault test: the web server itself (TCP :80 of rs1..rs3)
virtual_server ${VIP} 84 {
  protocol TCP
  delay_loop 1
  warmup 0
  lb_algo rr
${[1, 2, 3]
  .map(
    (k) => `  real_server ${rsIp(k)} 80 {
    HTTP_GET {
      connect_timeout 0.5
      retry 1
      delay_before_retry 1
      url {
        path /
      }
    }
  }`,
  )
  .join("\n")}
}
`;

  const must = (...args: string[]) => {
    const r = lab.lvsadm(...args);
    expect(r.stderr, `lvsadm ${args.join(" ")}`).toBe("");
    return r.stdout;
  };
  /** "addr:port weight" of each dest of service VIP:port in `lvsadm -Ln`. */
  const dests = (port: number): string[] => {
    const out = must("-Ln", "-t", `${VIP}:${port}`);
    return out
      .split("\n")
      .filter((l) => l.startsWith("  -> ") && !l.includes("RemoteAddress"))
      .map((l) => l.trim().split(/\s+/))
      .map((w) => `${w[1]} ${w[3]}`)
      .sort();
  };
  const waitDests = async (port: number, want: string[], ms: number): Promise<number> => {
    const t0 = Date.now();
    for (;;) {
      const d = dests(port);
      if (JSON.stringify(d) === JSON.stringify(want)) return Date.now() - t0;
      if (Date.now() - t0 > ms)
        throw new Error(`:${port} dests ${JSON.stringify(d)}, want ${JSON.stringify(want)}`);
      await sleep(100);
    }
  };
  /** Wait for a new lvsd log line matching `re`; returns the time it took. */
  const waitLog = async (re: RegExp, from: number, ms: number): Promise<number> => {
    const t0 = Date.now();
    for (;;) {
      if (re.test(lab.log().slice(from))) return Date.now() - t0;
      if (Date.now() - t0 > ms)
        throw new Error(`no lvsd log line ${re} in ${ms} ms:\n${lab.log().slice(from)}`);
      await sleep(20);
    }
  };
  const get = (port: number) => lab.get(`http://${VIP}:${port}/`).trim();
  const setHealth = (k: number, status: number) => {
    const r = lab.topo.exec(`r${k}`, "curl", ["-s", "-m", "2", `http://127.0.0.1:8081/set/${status}`]);
    expect(r.stdout.trim()).toBe(`set ${status}`);
  };
  /** A slow download from the client: `done` gives curl's status and the body's SHA-256. */
  const download = (
    port: number,
    bytes: number,
    rate: string,
  ): { done: Promise<{ code: number; sha: string }>; proc: ChildProcess } => {
    const out = join(dir, `dl-${port}`);
    const p: ChildProcess = spawn(
      "ip",
      [
        "netns",
        "exec",
        lab.topo.ns("c"),
        "curl",
        "-s",
        "--limit-rate",
        rate,
        "--speed-time",
        "1",
        "--speed-limit",
        "1000",
        "-o",
        out,
        `http://${VIP}:${port}/bytes/${bytes}`,
      ],
      { stdio: "ignore" },
    );
    const done = new Promise<{ code: number; sha: string }>((resolve) => {
      p.on("exit", (code) => {
        const sha = existsSync(out) ? createHash("sha256").update(readFileSync(out)).digest("hex") : "";
        resolve({ code: code ?? -1, sha });
      });
    });
    return { done, proc: p };
  };
  const lvsdPid = (): number => {
    const pids = lab.topo.exec("d", "ip", ["netns", "pids", lab.topo.ns("d")]).stdout;
    for (const p of pids.split(/\s+/).filter(Boolean)) {
      try {
        if (readFileSync(`/proc/${p}/cmdline`, "utf8").includes("bin/lvsd")) return Number(p);
      } catch {
        // gone
      }
    }
    throw new Error("lvsd's pid not found");
  };

  beforeAll(async () => {
    for (const s of ["inhibit", "remove", "q1", "q2"]) setState(s, 0);
    setState("dyn", 7);
    setState("alpha", 1);
    writeFileSync(conf, config());
    writeFileSync(
      join(dir, "extra.conf"),
      `virtual_server ${VIP} 85 {\n  protocol TCP\n  real_server ${rsIp(4)} 80 {\n  }\n}\n`,
    );
    await lab.up();
    // a small receive window, so that slow downloads are really in flight through the director
    lab.topo.exec("c", "sysctl", ["-qw", "net.ipv4.tcp_rmem=4096 16384 32768"]);
    for (let k = 1; k <= 4; k++) {
      lab.topo.spawn(`r${k}`, process.execPath, [join(HERE, "fixtures", "server.mjs"), "--http", "8081"]);
    }
    // lvsd's first checks may have run before the fixtures listened: wait until every /health
    // check has succeeded since (UP with an ok last result), so the tests start from a known state
    const healthy = /-> 192\.168\.10\.\d:80 +UP +1 +HTTP_GET \S+:8081\/health +ok /g;
    const t0 = Date.now();
    while ((must("--health").match(healthy) ?? []).length < 3) {
      if (Date.now() - t0 > 10_000)
        throw new Error(`the /health checks did not settle:\n${must("--health")}`);
      await sleep(100);
    }
    await waitDests(80, [`${rsIp(1)}:80 1`, `${rsIp(2)}:80 1`, `${rsIp(3)}:80 1`], 10_000);
  }, 60_000);
  afterAll(() => {
    lab.down();
    rmSync(dir, { recursive: true, force: true });
  });

  it("loads the configuration at start and lists the checks", async () => {
    await waitLog(
      /"msg":"health: loaded .*keepalived\.conf: 7 virtual servers, 12 real servers, 12 checks"\}\n/,
      0,
      2000,
    );
    const h = must("--health");
    expect(h).toMatch(/^Health checks: .*keepalived\.conf, loaded /);
    expect(h).toMatch(/\n {2}-> 192\.168\.10\.2:80 +UP +1 +HTTP_GET 192\.168\.10\.2:8081\/health +ok /);
    expect(h).toMatch(/\n {2}-> 192\.168\.10\.4:80 +idle +- +sorry_server /);
  });

  it("alpha: the server stays out until its first successful check", async () => {
    expect(dests(83)).toEqual([]);
    setState("alpha", 0);
    await waitDests(83, [`${rsIp(1)}:80 1`], 3000);
  });

  it("misc_dynamic: the script's exit status sets the weight", async () => {
    await waitDests(82, [`${rsIp(3)}:80 5`], 3000);
    setState("dyn", 12);
    await waitDests(82, [`${rsIp(3)}:80 10`], 3000);
    await waitLog(/health: TCP 10\.0\.0\.100:82 192\.168\.10\.3:80 weight 5 -> 10: MISC_CHECK /, 0, 2000);
  });

  it("a failing HTTP check takes the server out within delay_loop x (retry + 1), and it comes back", async () => {
    const from = lab.log().length;
    const t0 = Date.now();
    setHealth(2, 503);
    await waitLog(/health: TCP 10\.0\.0\.100:80 192\.168\.10\.2:80 down: /, from, 5000);
    const detected = Date.now() - t0;
    // the bound, plus the probes' own time and this loop's observation lag (800 ms: a loaded CI
    // machine once took 752)
    expect(detected).toBeLessThanOrEqual(1 * (1 + 1) * 1000 + 800);
    expect(lab.log().slice(from)).toContain(
      '"msg":"health: TCP 10.0.0.100:80 192.168.10.2:80 down: HTTP_GET 192.168.10.2:8081/health status 503, want 200-299; out of the pool"}\n',
    );
    expect(dests(80)).toEqual([`${rsIp(1)}:80 1`, `${rsIp(3)}:80 1`]);
    const answers = Array.from({ length: 6 }, () => get(80));
    expect(answers.sort()).toEqual(["rs1", "rs1", "rs1", "rs3", "rs3", "rs3"]);
    const t1 = Date.now();
    setHealth(2, 200);
    await waitDests(80, [`${rsIp(1)}:80 1`, `${rsIp(2)}:80 1`, `${rsIp(3)}:80 1`], 3000);
    expect(Date.now() - t1).toBeLessThanOrEqual(1000 + 700);
    expect(Array.from({ length: 6 }, () => get(80)).sort()).toEqual([
      "rs1",
      "rs1",
      "rs2",
      "rs2",
      "rs3",
      "rs3",
    ]);
    expect(must("--health")).toMatch(
      /\n {2}-> 192\.168\.10\.2:80 +UP +1 +HTTP_GET \S+ +ok \S+ ago +\S+ ago +HTTP_GET 192\.168\.10\.2:8081\/health status 200\n/,
    );
  });

  it("inhibit_on_failure keeps open connections (weight 0); removal drops them", async () => {
    const n = 1_000_000;
    const want = createHash("sha256").update(pattern(n)).digest("hex");
    const kept = download(8080, n, "250k");
    const dropped = download(8090, n, "250k");
    let droppedResult: { code: number; sha: string } | undefined;
    void dropped.done.then((r) => {
      droppedResult = r;
    });
    await sleep(1000);
    setState("inhibit", 1);
    setState("remove", 1);
    await waitDests(8080, [`${rsIp(1)}:8080 0`], 3000);
    await waitDests(8090, [], 3000);
    // the connection to the weight-0 server goes on to the end, byte for byte
    expect(await kept.done).toEqual({ code: 0, sha: want });
    // the one to the removed server was dropped: no entry left, and it never completes (at the
    // same rate it would have finished with the other one)
    await sleep(1000);
    expect(must("-Lnc")).not.toMatch(/ 192\.168\.10\.2:8080 *\n/);
    expect(droppedResult?.code ?? "stalled").not.toBe(0);
    dropped.proc.kill("SIGKILL");
    await dropped.done;
    // no new connections to a weight-0 server
    expect(lab.get(`http://${VIP}:8080/`)).toBe("");
    setState("inhibit", 0);
    setState("remove", 0);
    await waitDests(8080, [`${rsIp(1)}:8080 1`], 3000);
    await waitDests(8090, [`${rsIp(2)}:8080 1`], 3000);
  }, 30_000);

  it("losing quorum brings in the sorry server; recovery hands back", async () => {
    expect(dests(81)).toEqual([`${rsIp(1)}:80 1`, `${rsIp(2)}:80 1`]);
    setState("q1", 1);
    await waitDests(81, [`${rsIp(4)}:80 1`], 3000);
    expect(Array.from({ length: 3 }, () => get(81))).toEqual(["rs4", "rs4", "rs4"]);
    await waitLog(
      /health: TCP 10\.0\.0\.100:81 lost quorum: live weight 1 < 2 \(quorum 2, hysteresis 0\); sorry server 192\.168\.10\.4:80 in service"\}\n/,
      0,
      2000,
    );
    setState("q1", 0);
    await waitDests(81, [`${rsIp(1)}:80 1`, `${rsIp(2)}:80 1`], 3000);
    expect(Array.from({ length: 4 }, () => get(81)).sort()).toEqual(["rs1", "rs1", "rs2", "rs2"]);
    await sleep(200); // the scripts run on their own
    expect(readFileSync(events, "utf8")).toBe("rs1_down\nquorum_down\nrs1_up\nquorum_up\n");
  });

  it("SIGHUP reloads under traffic: an established download continues byte for byte", async () => {
    const n = 2_000_000;
    const want = createHash("sha256").update(pattern(n)).digest("hex");
    const dl = download(80, n, "500k").done;
    await sleep(1000);
    const svcBefore = must("-Ln", "--stats", "-t", `${VIP}:80`);
    writeFileSync(conf, config(true));
    const from = lab.log().length;
    process.kill(lvsdPid(), "SIGHUP");
    await waitLog(/health: loaded .*: 7 virtual servers, 12 real servers, 11 checks"\}\n/, from, 3000);
    expect(dests(80)).toEqual([`${rsIp(1)}:80 2`, `${rsIp(2)}:80 1`, `${rsIp(3)}:80 1`]);
    expect(dests(85)).toEqual([`${rsIp(4)}:80 1`]);
    expect(lab.lvsadm("-Ln", "-t", `${VIP}:83`).stderr).toBe("No such service\n");
    expect(await dl).toEqual({ code: 0, sha: want });
    // the service was changed in place: its counters went on
    const conns = (s: string) => Number(/TCP {2}10\.0\.0\.100:80 +(\d+)/.exec(s)?.[1]);
    expect(conns(must("-Ln", "--stats", "-t", `${VIP}:80`))).toBeGreaterThanOrEqual(conns(svcBefore));
    // a broken file changes nothing
    writeFileSync(
      conf,
      `${config(true)}\nvirtual_server ${VIP} 86 {\n  protocol TCP\n  delay_loop soon\n}\n`,
    );
    const from2 = lab.log().length;
    process.kill(lvsdPid(), "SIGHUP");
    await waitLog(
      /reload failed, keeping the running configuration: .*keepalived\.conf:\d+: delay_loop: expected a time/,
      from2,
      3000,
    );
    expect(dests(80)).toEqual([`${rsIp(1)}:80 2`, `${rsIp(2)}:80 1`, `${rsIp(3)}:80 1`]);
  }, 30_000);

  it("fault test: a real server's web server stops; after detection no request fails; it comes back", async () => {
    const from = lab.log().length;
    const peer = lab.topo.exec("r3", "ss", ["-ltnpH", "sport = :80"]).stdout;
    const pid = Number(/pid=(\d+)/.exec(peer)?.[1]);
    expect(pid).toBeGreaterThan(0);
    process.kill(pid, "SIGKILL");
    const t0 = Date.now();
    let detectedAt = 0;
    const failedAfter: number[] = [];
    let before = 0;
    let after = 0;
    while (Date.now() - t0 < 6000) {
      const answer = get(84);
      if (
        detectedAt === 0 &&
        /health: TCP 10\.0\.0\.100:84 192\.168\.10\.3:80 down: /.test(lab.log().slice(from))
      ) {
        detectedAt = Date.now();
      }
      if (detectedAt) {
        after++;
        if (answer === "" || answer === "rs3") failedAfter.push(Date.now() - t0);
        if (after >= 20) break;
      } else before++;
      await sleep(20);
    }
    expect(detectedAt, `no down line in:\n${lab.log().slice(from)}`).toBeGreaterThan(0);
    expect(detectedAt - t0).toBeLessThanOrEqual(1 * (1 + 1) * 1000 + 500);
    expect(failedAfter).toEqual([]);
    expect(after).toBe(20);
    expect(before).toBeGreaterThan(0);
    // start it again: it returns within delay_loop
    lab.topo.spawn("r3", process.execPath, [PEER, "--name", "rs3", "--http", "80"]);
    await waitDests(84, [`${rsIp(1)}:80 1`, `${rsIp(2)}:80 1`, `${rsIp(3)}:80 1`], 4000);
    expect(Array.from({ length: 6 }, () => get(84)).sort()).toEqual([
      "rs1",
      "rs1",
      "rs2",
      "rs2",
      "rs3",
      "rs3",
    ]);
  }, 30_000);
});
