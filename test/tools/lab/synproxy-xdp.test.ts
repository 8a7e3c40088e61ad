/**
 * The SYN proxy's XDP responder end to end (`--link raw=...,synproxy-xdp=auto`, docs/security.md):
 * lvsd on AF_PACKET links in the NAT lab, the XDP program on its interfaces (generic mode on
 * veth); then the same on AF_XDP links (`xdp=...,synproxy-xdp=auto`), where the program also
 * hands every frame it does not answer to lvsd's AF_XDP socket. The client's SYN is answered in the kernel's receive path (xdp_cookies_sent, not
 * cookies_sent), its ACK proves the cookie to lvsd, and curl's 300 KB download arrives byte for
 * byte. A client port reused at once (the old connection still in lvsd's table, closing) gets
 * a new connection: its SYN never reaches lvsd, the ACK with the cookie replaces the entry. An
 * hping3 flood from random sources (an attacker namespace that also answers for the default
 * gateway, where the SYN-ACKs to the random sources go) is answered in XDP, leaves nothing in
 * the table, its martian sources are dropped there and counted, and curl is served throughout.
 * A client that lost an established connection without a word and connects again from the same
 * port: its SYN goes to lvsd (the tuple is held), which passes it to the real server as the
 * kernel would; the server's challenge ACK makes the client reset the old connection, and its
 * next SYN is served.
 * When lvsd stops, the program is gone from the interfaces. Needs root, the native addon, nginx,
 * hping3 and curl; skipped with a message otherwise. Run `npx tsc -p tsconfig.json` first: the
 * lab runs dist/.
 */
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
  console.warn("skipping the SYN proxy XDP lab test: needs root, the ip tool and the native addon");
const ok =
  privileged && haveTools("the SYN proxy XDP lab test", "hping3", "curl", "nginx", "timeout", "nft", "ss");

const BIG = 300 * 1024;
const GATEWAY = "10.0.0.254";

describe.skipIf(!ok).each([
  ["raw", "AF_PACKET"],
  ["xdp", "AF_XDP: the same program hands the rest to lvsd's socket"],
] as const)("SYN proxy answered in XDP (%s links, synproxy-xdp=auto; %s)", (backend, _what) => {
  const prefix = `sx${backend[0]}${process.pid % 100000}`;
  const lab = new NatLab({
    prefix,
    servers: 2,
    backend,
    linkOpts: "synproxy-xdp=auto",
    lvsdArgs: ["--max-conns", "8192", "--route", `default,via=${GATEWAY}`],
  });
  const dirs = [1, 2].map((k) => `/tmp/${prefix}-ngx${k}`);
  const bigFile = `/tmp/${prefix}-big.bin`;
  const want = createHash("sha256").update(pattern(BIG)).digest("hex");

  const must = (...args: string[]) => mustLvsadm(lab, ...args);
  const stat = (name: string): number =>
    Number(new RegExp(`^${name}\\s+(\\d+)$`, "m").exec(must("--synproxy-stats"))?.[1] ?? Number.NaN);
  const dropped = (reason: string): number => dropCount(lab, reason);
  const clients = (): string[] => tableClients(lab);
  /** The maps follow the engine every 250 ms. */
  const settle = () => new Promise((r) => setTimeout(r, 700));
  const xdpOn = (dev: string): string =>
    lab.topo.exec("d", "ip", ["-d", "link", "show", lab.topo.dev(dev)]).stdout;

  beforeAll(async () => {
    writeFileSync(bigFile, pattern(BIG));
    await lab.up();
    for (const k of [1, 2]) {
      const conf = nginxConf({ dir: dirs[k - 1]!, name: `ngx${k}`, port: 8090, bigFile });
      lab.topo.spawn(`r${k}`, "nginx", ["-c", conf, "-g", "daemon off;"]);
    }
    // the attacker: on the client's segment, answering ARP for the gateway too (its ingress
    // drops the rest), so the SYN-ACKs to the flood's sources leave and land there
    lab.addOutsideHost("a", "10.0.0.66", true);
    lab.topo.exec("a", "ip", ["addr", "add", `${GATEWAY}/24`, "dev", lab.topo.dev("aa")]);
    // the client keeps no TIME_WAIT sockets: it may reuse a port at once
    lab.topo.exec("c", "sysctl", ["-qw", "net.ipv4.tcp_max_tw_buckets=0"]);
    await new Promise((r) => setTimeout(r, 500));
    must("-A", "-t", `${VIP}:80`, "-s", "rr", "--synproxy");
    for (const k of [1, 2]) must("-a", "-t", `${VIP}:80`, "-r", `${rsIp(k)}:8090`, "-m");
    await settle();
  }, 60_000);
  afterAll(() => {
    lab.down();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    rmSync(bigFile, { force: true });
  });

  it("attaches the program and answers the client's SYN in XDP; curl's download arrives intact", async () => {
    expect(xdpOn("x0")).toMatch(/prog\/xdp id \d+ name lvs_synack/);
    expect(lab.log()).toMatch(/SYN-proxy SYNs answered in XDP \(generic mode\)/);
    const sha = lab.client("sh", ["-c", `curl -s -m 20 http://${VIP}/big | sha256sum`], undefined, 30_000);
    expect(sha.stdout.split(" ")[0]).toBe(want);
    await settle();
    expect(stat("xdp_cookies_sent")).toBeGreaterThanOrEqual(1);
    expect(stat("cookies_sent")).toBe(0); // lvsd saw no SYN
    expect(stat("cookies_valid")).toBeGreaterThanOrEqual(1);
    expect(dropped("syn_cookie_bad")).toBe(0);
  }, 60_000);

  it("a client port reused at once gets a new connection (the ACK with the cookie replaces the closing entry)", () => {
    const served: string[] = [];
    for (let k = 0; k < 3; k++) {
      const r = lab.client("curl", ["-s", "-m", "5", "--local-port", "45000", `http://${VIP}/`]);
      served.push(r.stdout.trim());
    }
    expect(
      served.every((s) => /^ngx[12]$/.test(s)),
      served.join(","),
    ).toBe(true);
    // each went to the next server (rr): three connections, not one
    expect(new Set(served).size).toBe(2);
    expect(dropped("syn_cookie_bad")).toBe(0);
  }, 60_000);

  it("answers a SYN flood from random sources in XDP: no entry of it, martians dropped there, curl served", async () => {
    // one SYN from outside first: lvsd resolves the gateway, the maps get its MAC
    lab.topo.exec("a", "hping3", ["-q", "-S", "-p", "80", "-c", "1", "-a", "198.18.0.1", VIP]);
    await settle();
    const xdp0 = stat("xdp_cookies_sent");
    const lvsd0 = stat("cookies_sent");
    const martian0 = dropped("martian_src");
    const { done } = synFlood(lab.topo, "a", VIP, 4);
    const started = Date.now();
    let asked = 0;
    let served = 0;
    let foreign = 0;
    while (Date.now() - started < 3000) {
      asked++;
      if (/^ngx[12]$/.test(lab.client("curl", ["-s", "-m", "3", `http://${VIP}/`]).stdout.trim())) served++;
      foreign = Math.max(foreign, clients().filter((c) => c !== CLIENT).length);
    }
    await done;
    await settle();
    const xdp = stat("xdp_cookies_sent") - xdp0;
    const byLvsd = stat("cookies_sent") - lvsd0;
    expect(xdp).toBeGreaterThan(5000);
    expect(byLvsd).toBeLessThan(xdp / 100);
    expect(dropped("martian_src") - martian0).toBeGreaterThan(100);
    expect(foreign).toBe(0);
    expect(asked).toBeGreaterThan(1);
    expect(served).toBe(asked);
  }, 60_000);

  it("leaves a SYN on an established connection's tuple to lvsd: a client that lost it silently is served again from the same port", async () => {
    const PORT = 45200;
    must("-A", "-t", `${VIP}:83`, "-s", "rr", "--synproxy");
    must("-a", "-t", `${VIP}:83`, "-r", `${rsIp(1)}:8090`, "-m");
    await settle();
    const { held } = await silentlyLostConnection(lab.topo, {
      port: 83,
      localPort: PORT,
      table: `${prefix}cl`,
    });
    expect(must("-Lnc")).toMatch(new RegExp(`ESTABLISHED +${CLIENT.replaceAll(".", "\\.")}:${PORT} `));
    expect(held()).toBe(true);
    const r = lab.client(
      "curl",
      ["-s", "-m", "8", "--local-port", String(PORT), `http://${VIP}:83/`],
      undefined,
      15_000,
    );
    expect(r.stdout.trim()).toBe("ngx1");
    // the old connection was reset: its tuple's SYN reached nginx through lvsd (answered in XDP,
    // it never would have), nginx's challenge ACK reached the client, whose stack reset it; its
    // next SYN (the entry closed) made the new connection
    expect(held()).toBe(false);
  }, 60_000);

  it("takes the program off the interfaces when lvsd stops", async () => {
    await lab.stopLvsd();
    for (const x of ["x0", "x1"]) expect(xdpOn(x)).not.toMatch(/prog\/xdp/);
  }, 30_000);
});
