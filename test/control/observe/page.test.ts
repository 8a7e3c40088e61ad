/**
 * The status page in a real browser: lvsd runs in the NAT lab (src/tools/lab/natlab.ts) with a
 * keepalived.conf and `--http 127.0.0.1:PORT`; Debian's Chromium runs headless inside the
 * director's namespace ("d", where that loopback address is lvsd's) and puppeteer-core drives it
 * over a pipe (--remote-debugging-pipe), so no traffic leaves the test's namespaces and loopback.
 * The test sends requests through the VIP and waits for the page's tables to show them, the
 * numbers checked against `lvsadm -Ln`.
 *
 * A screenshot goes to docs/status-page.png with LVS_UPDATE_SCREENSHOT=1 (after ~40 s of traffic,
 * so the charts have history), otherwise to a temporary folder. Needs root, the build (dist/),
 * chromium and curl; skipped with a message otherwise. The browser and the namespaces are
 * removed in afterAll, also when a test fails.
 */

import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import puppeteer, { type Browser, type ConnectionTransport, type Page } from "puppeteer-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EngineControl } from "../../../src/control/adapter.js";
import { RateEstimator } from "../../../src/control/estimator.js";
import { HealthManager } from "../../../src/control/health/manager.js";
import type { ObservedDaemon } from "../../../src/control/observe/daemon.js";
import { type HttpServer, startHttpServer } from "../../../src/control/observe/http.js";
import { statusRoutes } from "../../../src/control/observe/status.js";
import { Director } from "../../../src/datapath/director.js";
import { Engine } from "../../../src/datapath/engine.js";
import { MemoryLink } from "../../../src/datapath/io/memory.js";
import { nativeAvailable } from "../../../src/datapath/io/native.js";
import { macToBytes } from "../../../src/lib/addr.js";
import { NatLab, PEER, ROOT, rsIp, VIP } from "../../../src/tools/lab/natlab.js";
import { canUseNetns } from "../../../src/tools/lab/netns.js";
import { haveTools } from "../../support/tools.js";

const CHROMIUM = "/usr/bin/chromium";
/** Headless, no sandbox (root), and nothing that would reach out to the network by itself. */
const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
/** lvsd's --http port, on the loopback of the director's namespace (its own, so any port is free). */
const PORT = 9180;
const SCREENSHOT = process.env.LVS_UPDATE_SCREENSHOT === "1";

const privileged = canUseNetns() && nativeAvailable() && existsSync(PEER);
if (!privileged)
  console.warn("skipping status page browser test: needs root, the ip tool, the native addon and the build");
const ok = privileged && haveTools("status page browser test", "chromium", "curl");

/**
 * puppeteer's ConnectionTransport over Chromium's --remote-debugging-pipe: JSON messages ended
 * by a NUL byte, written to the browser's fd 3 and read from its fd 4.
 */
class PipeTransport implements ConnectionTransport {
  onmessage?: (message: string) => void;
  onclose?: () => void;
  private pending: Buffer[] = [];
  private closed = false;

  constructor(
    private readonly out: Writable,
    input: Readable,
  ) {
    input.on("data", (b: Buffer) => this.receive(b));
    input.on("close", () => {
      if (!this.closed) this.onclose?.();
      this.closed = true;
    });
    input.on("error", () => {});
    out.on("error", () => {});
  }

  send(message: string): void {
    if (this.closed) return;
    this.out.write(message);
    this.out.write("\0");
  }

  private receive(b: Buffer): void {
    let start = 0;
    let end = b.indexOf(0);
    while (end >= 0) {
      this.pending.push(b.subarray(start, end));
      const message = Buffer.concat(this.pending).toString("utf8");
      this.pending = [];
      // deliver in order, outside this stream callback (as puppeteer's own pipe transport does)
      setImmediate(() => this.onmessage?.(message));
      start = end + 1;
      end = b.indexOf(0, start);
    }
    if (start < b.length) this.pending.push(b.subarray(start));
  }

  close(): void {
    this.closed = true;
    this.out.end();
  }
}

/** What the test reads of the page's elements (the tests are compiled without the DOM library). */
interface DomCell {
  readonly classList: ArrayLike<string>;
  readonly textContent: string | null;
}
interface DomRow {
  readonly className: string;
  readonly dataset: Record<string, string | undefined>;
  readonly cells: ArrayLike<DomCell>;
}
interface DomDataset {
  readonly dataset: Record<string, string | undefined>;
}

/** The dest rows of the page as text: "service|dest" -> column class -> text. */
type Rows = Record<string, Record<string, string>>;

async function tableRows(page: Page): Promise<Rows> {
  return page.$$eval("#services-body tr", (trs) => {
    const out: Record<string, Record<string, string>> = {};
    for (const tr of trs as unknown as DomRow[]) {
      const svc = tr.dataset.service;
      if (!svc) continue;
      const key = tr.dataset.dest ? `${svc}|${tr.dataset.dest}` : svc;
      const cells: Record<string, string> = {};
      for (const td of Array.from(tr.cells)) {
        const c = Array.from(td.classList).find((x) => x.startsWith("c-"));
        if (c) cells[c.slice(2)] = (td.textContent ?? "").trim();
      }
      cells.row = tr.className;
      out[key] = cells;
    }
    return out;
  });
}

/** `lvsadm -Ln` dest lines as "addr:port" -> [weight, active, inactive]. */
function lvsadmDests(lab: NatLab, svc: string): Record<string, [number, number, number]> {
  const out: Record<string, [number, number, number]> = {};
  let inside = false;
  for (const line of lab.lvsadm("-Ln").stdout.split("\n")) {
    if (!line.startsWith("  ->")) inside = line.startsWith(svc);
    const m = /^ {2}-> (\S+)\s+\S+\s+(\d+)\s+(\d+)\s+(\d+)/.exec(line);
    if (inside && m) out[m[1]!] = [Number(m[2]), Number(m[3]), Number(m[4])];
  }
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await sleep(250);
  }
}

describe.skipIf(!ok)("the status page in Chromium", () => {
  const prefix = `sp${process.pid % 100000}`;
  const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  const conf = join(dir, "keepalived.conf");
  const lab = new NatLab({
    prefix,
    servers: 3,
    mgmt: true,
    lvsdArgs: ["--config", conf, "--http", `127.0.0.1:${PORT}`],
  });
  let chromium: ChildProcess | undefined;
  let chromiumLog = "";
  let browser: Browser | undefined;
  let page: Page;
  /** Script errors, console errors, CSP violations and requests anywhere but lvsd. */
  const pageErrors: string[] = [];
  const SVC = `TCP  ${VIP}:80`;
  const UDP = `UDP  ${VIP}:53`;

  beforeAll(async () => {
    // rs1 and rs2 checked on :80 (up); rs3 checked on :81 where nothing listens: down from the
    // start (alpha), so never in the table
    writeFileSync(
      conf,
      `virtual_server ${VIP} 80 {
  delay_loop 1
  warmup 0
  lb_algo wrr
  lb_kind NAT
  real_server ${rsIp(1)} 80 {
    weight 3
    TCP_CHECK { connect_timeout 1 }
  }
  real_server ${rsIp(2)} 80 {
    weight 1
    TCP_CHECK { connect_timeout 1 }
  }
  real_server ${rsIp(3)} 80 {
    weight 1
    TCP_CHECK {
      connect_port 81
      connect_timeout 1
      alpha
    }
  }
  protocol TCP
}
`,
    );
    try {
      await lab.up();
    } catch (err) {
      throw new Error(`${(err as Error).message}\nlvsd: ${lab.log()}`);
    }
    for (const c of [
      ["-A", "-u", `${VIP}:53`, "-s", "rr"],
      ["-a", "-u", `${VIP}:53`, "-r", `${rsIp(2)}:53`, "-m", "-w", "2"],
    ]) {
      const r = lab.lvsadm(...c);
      if (r.code !== 0) throw new Error(`lvsadm ${c.join(" ")}: ${r.stderr}`);
    }

    const profile = join(dir, "chromium-profile");
    chromium = spawn(
      "ip",
      [
        "netns",
        "exec",
        lab.topo.ns("d"),
        CHROMIUM,
        ...CHROMIUM_FLAGS,
        `--user-data-dir=${profile}`,
        "--remote-debugging-pipe",
        "about:blank",
      ],
      // fd 3: what puppeteer writes, fd 4: what it reads; own process group, ended in afterAll
      { stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"], detached: true },
    );
    chromium.stderr?.on("data", (b: Buffer) => {
      if (chromiumLog.length < 20_000) chromiumLog += b.toString();
    });
    const transport = new PipeTransport(chromium.stdio[3] as Writable, chromium.stdio[4] as Readable);
    try {
      browser = await Promise.race([
        puppeteer.connect({
          transport,
          defaultViewport: { width: 1360, height: 900 },
          protocolTimeout: 60_000,
        }),
        // a loaded 2-vCPU CI machine once took longer than 30 s to start Chromium
        sleep(60_000).then(() => {
          throw new Error("Chromium did not answer on its pipe within 60 s");
        }),
      ]);
    } catch (err) {
      throw new Error(`${(err as Error).message}\nchromium: ${chromiumLog.slice(0, 4000)}`);
    }
    page = await browser.newPage();
    page.on("pageerror", (err) => pageErrors.push(`pageerror: ${String(err)}`));
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warn") pageErrors.push(`console.${m.type()}: ${m.text()}`);
    });
    page.on("requestfailed", (r) => pageErrors.push(`request failed: ${r.url()}`));
    page.on("request", (r) => {
      if (!r.url().startsWith(`http://127.0.0.1:${PORT}/`)) pageErrors.push(`request to ${r.url()}`);
    });
    page.setDefaultTimeout(20_000);
    const res = await page.goto(`http://127.0.0.1:${PORT}/`, { waitUntil: "load", timeout: 20_000 });
    expect(res?.status()).toBe(200);
  }, 120_000);

  afterAll(async () => {
    if (browser) await Promise.race([browser.close().catch(() => {}), sleep(5_000)]);
    if (chromium?.pid !== undefined && chromium.exitCode === null) {
      try {
        process.kill(-chromium.pid, "SIGKILL"); // the browser's process group, which we created
      } catch {
        // gone already
      }
    }
    lab.down();
    rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it("shows the services and their dests before any traffic", async () => {
    await page.waitForSelector(`#services-body tr.dest[data-dest="${rsIp(2)}:80"]`);
    const rows = await tableRows(page);
    expect(rows[SVC]).toMatchObject({ name: SVC, fwd: "wrr", conns: "0", active: "0", inactive: "0" });
    expect(rows[`${SVC}|${rsIp(1)}:80`]).toMatchObject({
      fwd: "Masq",
      weight: "3",
      health: "UP",
      conns: "0",
    });
    expect(rows[`${SVC}|${rsIp(2)}:80`]).toMatchObject({
      fwd: "Masq",
      weight: "1",
      health: "UP",
      conns: "0",
    });
    // rs3's check fails: out of the pool, shown DOWN
    expect(rows[`${SVC}|${rsIp(3)}:80`]).toMatchObject({ fwd: "out of pool", health: "DOWN" });
    expect(rows[UDP]).toMatchObject({ name: UDP, fwd: "rr" });
    expect(rows[`${UDP}|${rsIp(2)}:53`]).toMatchObject({ weight: "2", health: "no check" });
    expect(await page.$eval("#version", (e) => e.textContent)).toMatch(/^lvsd \(lvs-ts\)/);
    expect(await page.$eval("#state", (e) => e.textContent)).toBe("live");
  });

  it("shows the connections and counters of requests through the VIP (wrr 3:1)", async () => {
    for (let i = 0; i < 8; i++) expect(lab.get(`http://${VIP}/`).trim()).toMatch(/^rs[12]$/);
    // lvsd's own view: 6 and 2 connections, all closed (inactive: TIME_WAIT)
    const stats = lab.lvsadm("-Ln", "--stats").stdout;
    expect(stats).toMatch(new RegExp(`-> ${rsIp(1).replaceAll(".", "\\.")}:80 +6 `));
    expect(stats).toMatch(new RegExp(`-> ${rsIp(2).replaceAll(".", "\\.")}:80 +2 `));
    const rows = await until(
      "the page to show 6 and 2 connections",
      async () => {
        const r = await tableRows(page);
        return r[`${SVC}|${rsIp(1)}:80`]?.conns === "6" && r[`${SVC}|${rsIp(2)}:80`]?.conns === "2"
          ? r
          : undefined;
      },
      15_000,
    );
    expect(rows[SVC]).toMatchObject({ conns: "8" });
    const want = lvsadmDests(lab, SVC);
    for (const rs of [rsIp(1), rsIp(2)]) {
      const [weight, active, inactive] = want[`${rs}:80`]!;
      expect(rows[`${SVC}|${rs}:80`], rs).toMatchObject({
        weight: String(weight),
        active: String(active),
        inactive: String(inactive),
      });
    }
    expect(
      Number(rows[`${SVC}|${rsIp(1)}:80`]!.inactive) + Number(rows[`${SVC}|${rsIp(1)}:80`]!.active),
    ).toBe(6);

    // a long download: one active connection, counted on the page as lvsadm counts it
    lab.topo.spawn("c", "curl", [
      "-s",
      "-o",
      "/dev/null",
      "--limit-rate",
      "100k",
      `http://${VIP}/bytes/500000000`,
    ]);
    const live = await until(
      "an active connection on the page",
      async () => {
        const r = await tableRows(page);
        return r[SVC]?.active === "1" ? r : undefined;
      },
      15_000,
    );
    const now = lvsadmDests(lab, SVC);
    const activeDest = Object.entries(now).find(([, v]) => v[1] === 1)?.[0];
    expect(activeDest).toBeDefined();
    expect(live[`${SVC}|${activeDest}`]?.active).toBe("1");

    // the links table: both TAP devices, with traffic
    const links = await page.$$eval("#links-body tr", (trs) =>
      (trs as unknown as DomRow[]).map((tr) => Array.from(tr.cells).map((td) => td.textContent ?? "")),
    );
    expect(links.map((l) => l[0])).toEqual([lab.topo.dev("t0"), lab.topo.dev("t1")]);
    for (const l of links) expect(Number((l[2] ?? "0").replaceAll(",", ""))).toBeGreaterThan(0);
  });

  it("draws live charts from a minute of history and can be captured", async () => {
    // steady requests for the charts: about 5 a second
    lab.topo.spawn("c", "sh", [
      "-c",
      `i=0; while [ $i -lt 600 ]; do curl -s -o /dev/null -m 2 http://${VIP}/; i=$((i+1)); sleep 0.2; done`,
    ]);
    const samples = SCREENSHOT ? 45 : 6;
    await until(
      `${samples} chart samples with traffic`,
      async () => {
        const c = await page.$eval(`tr.svc[data-service="${SVC}"] td.c-cpschart canvas`, (e) => ({
          n: Number((e as unknown as DomDataset).dataset.samples),
          max: Number((e as unknown as DomDataset).dataset.max),
        }));
        return c.n >= samples && c.max > 0 ? c : undefined;
      },
      (samples + 20) * 1000,
    );
    const pps = await page.$eval(`tr.dest[data-dest="${rsIp(1)}:80"] td.c-ppschart canvas`, (e) =>
      Number((e as unknown as DomDataset).dataset.max),
    );
    expect(pps).toBeGreaterThan(0);
    const rows = await tableRows(page);
    expect(Number(rows[SVC]?.cps)).toBeGreaterThan(0); // the estimator's rate, after a 2 s step
    const out = SCREENSHOT ? join(ROOT, "docs", "status-page.png") : join(dir, "status-page.png");
    await page.screenshot({ path: out as `${string}.png`, fullPage: true });
    // no script error, no CSP violation (inline script and style are allowed by hash), no
    // request to anything but lvsd's page and API
    expect(pageErrors).toEqual([]);
    const png = readFileSync(out);
    expect(png.subarray(1, 4).toString("latin1")).toBe("PNG");
    expect(png.readUInt32BE(16)).toBe(1360); // IHDR width: the viewport's
  }, 120_000);
});

/**
 * Without namespaces (no root needed): the page of an in-process daemon with nothing configured,
 * on a loopback port of this process, in Chromium launched by puppeteer. Link names and the
 * version carry markup, which the page must show as text.
 */
describe.skipIf(!haveTools("status page browser test (empty daemon)", "chromium"))(
  "the status page of an empty daemon in Chromium",
  () => {
    const dir = mkdtempSync(join(tmpdir(), "lvs-page-"));
    const evil = '<img src=x onerror="document.body.dataset.pwned=1">';
    let http: HttpServer | undefined;
    let browser: Browser | undefined;

    beforeAll(async () => {
      const engine = new Engine({ maxConns: 1024 });
      const director = new Director(engine);
      director.attach(new MemoryLink(`${evil}0`, macToBytes("02:00:00:00:00:01")));
      const target = new EngineControl(engine);
      const observed: ObservedDaemon = {
        engine,
        director,
        target,
        health: new HealthManager(engine.table, { log: () => {} }),
        estimator: new RateEstimator(engine.table),
        linkNames: [`${evil}0`],
        maxConns: 1024,
        startedAtMs: Date.now() - 90_000,
        version: `lvsd <b>${evil}</b>`,
      };
      http = await startHttpServer("127.0.0.1", 0, statusRoutes(observed), () => {});
      browser = await puppeteer.launch({
        executablePath: CHROMIUM,
        args: [...CHROMIUM_FLAGS, `--user-data-dir=${join(dir, "profile")}`],
        pipe: true,
        timeout: 60_000,
        protocolTimeout: 60_000,
        handleSIGINT: false,
        handleSIGTERM: false,
        handleSIGHUP: false,
      });
    }, 120_000);

    afterAll(async () => {
      if (browser) await Promise.race([browser.close().catch(() => {}), sleep(5_000)]);
      await http?.close();
      // (Chromium's profile may still be being written when it is killed: retry the removal)
      rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
    }, 30_000);

    it("says there are no services and shows every text as text", async () => {
      const page = await browser!.newPage();
      const errors: string[] = [];
      page.on("pageerror", (err) => errors.push(String(err)));
      page.on("console", (m) => {
        if (m.type() === "error") errors.push(m.text());
      });
      await page.goto(`http://127.0.0.1:${http!.port}/`, { waitUntil: "load", timeout: 20_000 });
      await page.waitForSelector("body[data-updates]", { timeout: 10_000 });
      const rows = await page.$$eval("#services-body tr", (trs) =>
        (trs as unknown as DomRow[]).map((tr) => Array.from(tr.cells).map((td) => td.textContent ?? "")),
      );
      expect(rows).toEqual([[expect.stringMatching(/^No virtual services\. Add one with lvsadm -A/)]]);
      expect(await page.$eval("#drops-empty", (e) => (e as unknown as { hidden: boolean }).hidden)).toBe(
        false,
      );
      expect(await page.$eval("#states", (e) => e.textContent)).toBe("no connections");
      expect(await page.$eval("#conns", (e) => e.textContent)).toBe("0 / 1,024 (0.0%)");
      expect(await page.$eval("#uptime", (e) => e.textContent)).toMatch(/^up 1m 3\ds$/);
      // the markup arrived as text: shown verbatim, no element made of it, no handler run
      expect(await page.$eval("#version", (e) => e.textContent)).toBe(`lvsd <b>${evil}</b>`);
      expect(await page.$eval("#links-body td.c-name", (e) => e.textContent)).toBe(`${evil}0`);
      expect(await page.$$("img")).toHaveLength(0);
      expect(await page.$$("#version b")).toHaveLength(0);
      expect(await page.$eval("body", (e) => (e as unknown as DomDataset).dataset.pwned)).toBeUndefined();
      expect(errors).toEqual([]);
    });
  },
);
