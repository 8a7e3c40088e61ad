/**
 * The SYN proxy end to end (docs/security.md "SYN proxy"): the NAT lab (lvsd on TAP devices
 * between a client namespace and two real servers running nginx), services with `--synproxy`,
 * NAT and FULLNAT. curl fetches a 300 KB file through the VIP and it arrives byte for byte (the
 * server's sequence numbers shifted by the director all the way), and uploads one (the
 * acknowledgements shifted). Then hping3 floods the VIP with SYNs from random sources (10,000 a
 * second for 5 s, as test/tools/lab/flood.test.ts): the connection table holds no entry of
 * the flood, and curl's requests are served throughout. Last, a real server that still holds an
 * older connection on the client's tuple (the client lost it silently, lvsd's entry expired):
 * the new connection from the same port is served (the server's challenge ACK gets an RST).
 * Needs root, the native addon, nginx, hping3, curl, nft and ss; skipped with a message otherwise. Run `npx tsc -p tsconfig.json` first: the
 * lab runs dist/.
 */
import type { ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { rmSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nativeAvailable } from "../../../src/datapath/io/native.js";
import { CLIENT_IP as CLIENT, NatLab, rsIp, VIP } from "../../../src/tools/lab/natlab.js";
import { canUseNetns } from "../../../src/tools/lab/netns.js";
import { nginxConf } from "../../../src/tools/lab/nginx.js";
import { pattern } from "../../../src/tools/lab/peer.js";
import { dropCount, mustLvsadm, silentlyLostConnection, synFlood, tableClients } from "../../support/lab.js";
import { haveTools } from "../../support/tools.js";

const privileged = canUseNetns() && nativeAvailable();
if (!privileged)
  console.warn("skipping the SYN proxy lab test: needs root, the ip tool and the native addon");
const ok =
  privileged && haveTools("the SYN proxy lab test", "hping3", "curl", "nginx", "timeout", "nft", "ss");

const BIG = 300 * 1024;
const LADDR = "192.168.10.200";
const FLOOD_SECONDS = 5;

describe.skipIf(!ok)("SYN proxy through lvsd", () => {
  const prefix = `sp${process.pid % 100000}`;
  const lab = new NatLab({
    prefix,
    servers: 2,
    // the SYN-ACKs to the spoofed sources go to a gateway that does not answer
    lvsdArgs: ["--max-conns", "8192", "--route", "default,via=10.0.0.254"],
  });
  const dirs = [1, 2].map((k) => `/tmp/${prefix}-ngx${k}`);
  const bigFile = `/tmp/${prefix}-big.bin`;
  const want = createHash("sha256").update(pattern(BIG)).digest("hex");
  let flood: ChildProcess | undefined;

  const must = (...args: string[]) => mustLvsadm(lab, ...args);
  const dropped = (reason: string): number => dropCount(lab, reason);
  /** Client addresses of the connection table's entries. */
  const clients = (): string[] => tableClients(lab);
  const sha = (port: number): string =>
    lab
      .client("sh", ["-c", `curl -s -m 20 http://${VIP}:${port}/big | sha256sum`], undefined, 30_000)
      .stdout.split(" ")[0] ?? "";

  beforeAll(async () => {
    writeFileSync(bigFile, pattern(BIG));
    await lab.up();
    for (const k of [1, 2]) {
      const conf = nginxConf({ dir: dirs[k - 1]!, name: `ngx${k}`, port: 8090, bigFile });
      lab.topo.spawn(`r${k}`, "nginx", ["-c", conf, "-g", "daemon off;"]);
    }
    await new Promise((r) => setTimeout(r, 500));
    // NAT to nginx, FULLNAT to nginx, NAT to the lab's peer (uploads: /sha256)
    must("-A", "-t", `${VIP}:80`, "-s", "rr", "--synproxy");
    for (const k of [1, 2]) must("-a", "-t", `${VIP}:80`, "-r", `${rsIp(k)}:8090`, "-m");
    must("-A", "-t", `${VIP}:81`, "-s", "rr", "--synproxy");
    must("--add-laddr", "-t", `${VIP}:81`, "-z", LADDR);
    for (const k of [1, 2]) must("-a", "-t", `${VIP}:81`, "-r", `${rsIp(k)}:8090`, "--fullnat");
    must("-A", "-t", `${VIP}:82`, "-s", "rr", "--synproxy");
    must("-a", "-t", `${VIP}:82`, "-r", `${rsIp(1)}:80`, "-m");
  }, 60_000);
  afterAll(() => {
    flood?.kill("SIGKILL");
    lab.down();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    rmSync(bigFile, { force: true });
  });

  it("carries HTTP byte for byte both ways, NAT and FULLNAT", () => {
    expect(must("-Ln")).toMatch(new RegExp(`TCP  ${VIP.replaceAll(".", "\\.")}:80 rr synproxy\\n`));
    expect(sha(80)).toBe(want);
    expect(sha(80)).toBe(want); // rr: the other server
    expect(sha(81)).toBe(want);
    // an upload: the client's data reaches the server with its acknowledgements shifted
    const f = `/tmp/${prefix}.up`;
    const up = lab.client(
      "sh",
      [
        "-c",
        `head -c ${BIG} /dev/urandom > ${f} && sha256sum < ${f} && curl -s -m 20 --data-binary @${f} http://${VIP}:82/sha256; rm -f ${f}`,
      ],
      undefined,
      30_000,
    );
    const [local, remote] = up.stdout.trim().split("\n");
    expect(remote).toBe(local?.split(" ")[0]);
    expect(dropped("syn_cookie_bad")).toBe(0);
    expect(clients().every((c) => c === CLIENT)).toBe(true);
  }, 90_000);

  it("keeps no entry of a SYN flood from random sources, and serves curl throughout", async () => {
    const before = clients().length;
    const f = synFlood(lab.topo, "c", VIP, FLOOD_SECONDS);
    flood = f.p;
    const done = f.done;
    const started = Date.now();
    let asked = 0;
    let served = 0;
    let maxForeign = 0;
    while (Date.now() - started < (FLOOD_SECONDS - 1) * 1000) {
      asked++;
      if (/^ngx[12]$/.test(lab.client("curl", ["-s", "-m", "3", `http://${VIP}/`]).stdout.trim())) served++;
      maxForeign = Math.max(maxForeign, clients().filter((c) => c !== CLIENT).length);
    }
    await done;
    // the flood's SYNs were answered (SYN-ACKs towards the dead gateway) and left nothing
    const sent = /^cookies_sent\s+(\d+)$/m.exec(must("--synproxy-stats"));
    expect(Number(sent?.[1])).toBeGreaterThan(5000);
    expect(maxForeign).toBe(0);
    expect(clients().every((c) => c === CLIENT)).toBe(true);
    expect(clients().length).toBeLessThanOrEqual(before + asked);
    expect(asked).toBeGreaterThan(1);
    expect(served).toBe(asked);
  }, 60_000);

  it("serves a client port that a real server still holds an older connection on (the server's challenge ACK gets an RST)", async () => {
    const PORT = 45123;
    // one real server, so that the new connection meets the old one there
    must("-A", "-t", `${VIP}:83`, "-s", "rr", "--synproxy");
    must("-a", "-t", `${VIP}:83`, "-r", `${rsIp(1)}:8090`, "-m");
    // 1. a connection from port PORT that nginx holds open, with lvsd's TCP timeout at 2 s (the
    // timeout an entry gets when its state changes); 2. the client loses it without a word
    must("--set", "2", "0", "0");
    try {
      const { held } = await silentlyLostConnection(lab.topo, {
        port: 83,
        localPort: PORT,
        table: `${prefix}cl`,
      });
      // 3. lvsd's entry expires; nginx still holds the connection
      const entry = (): boolean => must("-Lnc").includes(`${CLIENT}:${PORT} `);
      const gone = Date.now() + 10_000;
      while (entry() && Date.now() < gone) await new Promise((r) => setTimeout(r, 250));
      expect(entry()).toBe(false);
      expect(held()).toBe(true);
      const staleBefore = Number(/^stale_server_conns\s+(\d+)$/m.exec(must("--synproxy-stats"))?.[1]);
      // 4. a new connection from the same port: served
      const r = lab.client("curl", ["-s", "-m", "5", "--local-port", String(PORT), `http://${VIP}:83/`]);
      expect(r.stdout.trim()).toBe("ngx1");
      const stale = Number(/^stale_server_conns\s+(\d+)$/m.exec(must("--synproxy-stats"))?.[1]);
      expect(stale).toBeGreaterThan(staleBefore);
    } finally {
      must("--set", "900", "0", "0");
    }
  }, 60_000);
});
