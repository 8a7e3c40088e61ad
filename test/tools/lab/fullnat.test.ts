/**
 * FULLNAT end to end: lvsd between a client and real servers that have no route to the client
 * at all (NatLab with rsRoute: false). Real nginx reads the PROXY protocol (v1 and v2) and logs
 * the client's address. Needs root; skipped with a message otherwise.
 */
import { createHash } from "node:crypto";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nativeAvailable } from "../../../src/datapath/io/native.js";
import { NatLab, rsIp, VIP } from "../../../src/tools/lab/natlab.js";
import { canUseNetns } from "../../../src/tools/lab/netns.js";
import { nginxConf } from "../../../src/tools/lab/nginx.js";
import { pattern } from "../../../src/tools/lab/peer.js";
import { haveTools, skipWithout } from "../../support/tools.js";

const privileged = canUseNetns() && nativeAvailable();
if (!privileged)
  console.warn("skipping FULLNAT namespace tests: needs root, the ip tool and the native addon");
const ok = privileged && haveTools("FULLNAT namespace tests", "curl"); // the client's requests
// nginx reads the PROXY protocol on the real servers: only the tests of that need it
const withNginx = ok && haveTools("FULLNAT PROXY protocol tests (nginx)", "nginx");

const LADDR = "192.168.10.200";
const BIG = 10 * 1024 * 1024;

describe.skipIf(!ok)("FULLNAT through lvsd", () => {
  const prefix = `fn${process.pid % 100000}`;
  const lab = new NatLab({ prefix, servers: 2, rsRoute: false });
  const dirs = [1, 2].map((k) => `/tmp/${prefix}-ngx${k}`);
  const bigFile = `/tmp/${prefix}-big.bin`;

  const must = (...args: string[]) => {
    const r = lab.lvsadm(...args);
    expect(r.stderr, `lvsadm ${args.join(" ")}`).toBe("");
    expect(r.code).toBe(0);
    return r.stdout;
  };

  beforeAll(async () => {
    writeFileSync(bigFile, pattern(BIG));
    await lab.up();
    for (const k of withNginx ? [1, 2] : []) {
      const conf = nginxConf({ dir: dirs[k - 1]!, name: `ngx${k}`, port: 8090, proxyPort: 8081, bigFile });
      lab.topo.spawn(`r${k}`, "nginx", ["-c", conf, "-g", "daemon off;"]);
    }
    await new Promise((r) => setTimeout(r, 500));
    must("-A", "-t", `${VIP}:80`, "-s", "rr");
    must("--add-laddr", "-t", `${VIP}:80`, "-z", LADDR);
    for (let k = 1; k <= 2; k++) must("-a", "-t", `${VIP}:80`, "-r", `${rsIp(k)}:80`, "--fullnat");
  }, 60_000);
  afterAll(() => {
    lab.down();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    rmSync(bigFile, { force: true });
  });

  it("balances HTTP with rr although the real servers have no route to the client", () => {
    expect(lab.topo.exec("r1", "ip", ["route", "get", "10.0.0.7"]).code).not.toBe(0);
    const answers = Array.from({ length: 4 }, () => lab.get(`http://${VIP}/`).trim());
    expect(answers).toEqual(["rs2", "rs1", "rs2", "rs1"]);
    expect(must("-Ln")).toMatch(/-> 192\.168\.10\.1:80 +FullNat +1 /);
    expect(must("-Lnc")).toMatch(
      /TCP \d\d:\d\d {2}TIME_WAIT {3}10\.0\.0\.7:\d+ +10\.0\.0\.100:80 +192\.168\.10\.[12]:80/,
    );
  });

  it("moves 10 MB byte for byte", () => {
    const want = createHash("sha256").update(pattern(BIG)).digest("hex");
    const r = lab.client(
      "sh",
      ["-c", `curl -s -m 60 http://${VIP}/bytes/${BIG} | sha256sum`],
      undefined,
      90_000,
    );
    expect(r.stdout.split(" ")[0]).toBe(want);
  });

  it("answers UDP through a local address", (ctx) => {
    skipWithout(ctx, "socat");
    must("-A", "-u", `${VIP}:53`, "-s", "rr");
    must("--add-laddr", "-u", `${VIP}:53`, "-z", LADDR);
    must("-a", "-u", `${VIP}:53`, "-r", `${rsIp(1)}:53`, "--fullnat");
    const r = lab.client("sh", ["-c", `printf ping | socat -t 2 - UDP4:${VIP}:53`]);
    expect(r.stdout).toBe("rs1:ping");
  });

  it.skipIf(!withNginx).each([
    [1, 81],
    [2, 82],
  ])(
    "delivers the client address to nginx with PROXY protocol v%i, and a 10 MB body intact after the shift",
    (ver, port) => {
      must("-A", "-t", `${VIP}:${port}`, "-s", "rr", "--proxy-protocol", `v${ver}`);
      must("--add-laddr", "-t", `${VIP}:${port}`, "-z", LADDR);
      must("-a", "-t", `${VIP}:${port}`, "-r", `${rsIp(1)}:8081`, "--fullnat");
      const body = lab.get(`http://${VIP}:${port}/`).trim();
      expect(body).toMatch(/^ngx1 10\.0\.0\.7:\d+$/);
      const log = readFileSync(`${dirs[0]}/access.log`, "utf8");
      expect(log).toMatch(
        new RegExp(`^10\\.0\\.0\\.7 ${LADDR.replaceAll(".", "\\.")} "GET / HTTP/1\\.1" 200$`, "m"),
      );
      const want = createHash("sha256").update(pattern(BIG)).digest("hex");
      const r = lab.client(
        "sh",
        ["-c", `curl -s -m 60 http://${VIP}:${port}/big | sha256sum`],
        undefined,
        90_000,
      );
      expect(r.stdout.split(" ")[0]).toBe(want);
      // an upload: the request's bytes travel with shifted sequence numbers and arrive intact
      must("-A", "-t", `${VIP}:${port + 10}`, "-s", "rr", "--proxy-protocol", `v${ver}`);
      must("--add-laddr", "-t", `${VIP}:${port + 10}`, "-z", LADDR);
      must("-a", "-t", `${VIP}:${port + 10}`, "-r", `${rsIp(2)}:8082`, "--fullnat");
      expect(lab.get(`http://${VIP}:${port + 10}/`).trim()).toMatch(/^rs2 10\.0\.0\.7:\d+$/);
      const f = `/tmp/${prefix}.up`;
      const up = lab.client(
        "sh",
        [
          "-c",
          `head -c ${BIG} /dev/urandom > ${f} && sha256sum < ${f} && curl -s -m 60 --data-binary @${f} http://${VIP}:${port + 10}/sha256; rm -f ${f}`,
        ],
        undefined,
        90_000,
      );
      const [local, remote] = up.stdout.trim().split("\n");
      expect(remote).toBe(local?.split(" ")[0]);
    },
  );

  it("allocates a distinct local port for each of 5,000 concurrent connections", async () => {
    // 5,000 connections held open at once, opened 250 at a time so that the real servers'
    // listen backlogs (511) do not overflow into SYN cookies.
    const script = `
      const net = require("net"); const socks = []; let open = 0;
      function batch(n) {
        let done = 0;
        for (let i = 0; i < 250; i++) {
          const s = net.connect(80, "${VIP}", () => {
            open++;
            if (++done === 250) { if (open === 5000) console.log("open"); else batch(n + 1); }
          });
          s.on("error", () => {}); socks.push(s);
        }
      }
      batch(0);
      setTimeout(() => process.exit(0), 60000);
    `;
    const p = lab.topo.spawn("c", process.execPath, ["-e", script]);
    let out = "";
    p.stdout?.on("data", (b: Buffer) => {
      out += b.toString();
    });
    // The real servers see 5,000 distinct (local address, port) pairs.
    const peersSeen = (): Set<string> => {
      const peers = new Set<string>();
      for (const r of ["r1", "r2"]) {
        const ss = lab.topo.exec(r, "ss", ["-Htn", "state", "established"]).stdout;
        for (const line of ss.split("\n")) {
          // the peer listens dual-stack: addresses show as [::ffff:a.b.c.d]:port
          const m = /:80\s+\[?(?:::ffff:)?(\d+\.\d+\.\d+\.\d+)\]?:(\d+)/.exec(line);
          if (m) peers.add(`${m[1]}:${m[2]}`);
        }
      }
      return peers;
    };
    let peers = new Set<string>();
    for (let t = 0; t < 60 && (peers.size < 5000 || !out.includes("open")); t++) {
      await new Promise((r) => setTimeout(r, 500));
      peers = peersSeen();
    }
    try {
      expect(out).toContain("open");
      expect(peers.size).toBe(5000);
      for (const peer of peers) expect(peer.startsWith(`${LADDR}:`)).toBe(true);
      const g = must("--get-laddr", "-t", `${VIP}:80`);
      expect(Number(/10\.0\.0\.100:80\s+(\d+)/.exec(g)?.[1])).toBeGreaterThanOrEqual(5000);
    } finally {
      p.kill("SIGKILL");
    }
  }, 90_000);

  it("counts local-address exhaustion and answers the client at once", () => {
    must("-A", "-t", `${VIP}:90`, "-s", "rr");
    must("-a", "-t", `${VIP}:90`, "-r", `${rsIp(1)}:80`, "--fullnat");
    const t0 = Date.now();
    const r = lab.client("curl", ["-s", "-m", "5", `http://${VIP}:90/`]);
    expect(r.code).not.toBe(0);
    expect(Date.now() - t0).toBeLessThan(3000); // port unreachable, not a timeout
    expect(must("--drops")).toMatch(/^laddr_exhausted +1$/m);
  });

  it.skipIf(!withNginx)("round-trips the FULLNAT table through -S, -C and -R", () => {
    const saved = must("-Sn");
    expect(saved).toContain(`--add-laddr -t ${VIP}:81 -z ${LADDR}`);
    expect(saved).toContain(`-A -t ${VIP}:82 -s rr --proxy-protocol v2`);
    must("-C");
    expect(lab.lvsadmIn(saved, "-R").code).toBe(0);
    expect(must("-Sn")).toBe(saved);
    expect(lab.get(`http://${VIP}:81/`).trim()).toMatch(/^ngx1 10\.0\.0\.7:\d+$/);
  });
});
