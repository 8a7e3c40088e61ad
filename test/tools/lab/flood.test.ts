/**
 * The flood defence against a real SYN flood (issue "Hardening"; docs/security.md "Flood
 * defence"): the NAT lab (lvsd on TAP devices between a client namespace and two real servers),
 * lvsd with a small connection table (8,192 entries) and the kernel's automatic defence modes
 * (`drop_entry=1`, `drop_packet=1`, amemthresh at half the table), and hping3 in the client's
 * namespace sending 10,000 SYNs a second from random sources to the VIP for 5 s (bounded by
 * `timeout`).
 * While the flood fills the table, both strategies switch themselves on (they read 2), new
 * connections are dropped one in drop_rate (counted as `drop_packet`; at a nearly full table that
 * is every one, as in the kernel when memory runs out), and once the flood stops drop_entry removes
 * the flood's embryonic entries long before their 60 s timeout. With drop_entry alone, legitimate
 * HTTP requests get through during a second flood. Needs root, the native addon, hping3 and curl; skipped with a
 * message otherwise. Run `npx tsc -p tsconfig.json` first: the lab runs dist/.
 */
import type { ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nativeAvailable } from "../../../src/datapath/io/native.js";
import { NatLab, rsIp, VIP } from "../../../src/tools/lab/natlab.js";
import { canUseNetns } from "../../../src/tools/lab/netns.js";
import { dropCount, synFlood } from "../../support/lab.js";
import { haveTools } from "../../support/tools.js";

const privileged = canUseNetns() && nativeAvailable();
if (!privileged)
  console.warn("skipping the SYN flood lab test: needs root, the ip tool and the native addon");
const ok = privileged && haveTools("the SYN flood lab test", "hping3", "curl", "timeout");

const MAX_CONNS = 8192;
/** Half the table, in 4 KiB pages (about 116 bytes an entry): memory is "short" above half full. */
const AMEMTHRESH = Math.floor((MAX_CONNS * 116) / 4096 / 2);
const FLOOD_SECONDS = 5;

describe.skipIf(!ok)("SYN flood against lvsd with drop_entry and drop_packet", () => {
  const lab = new NatLab({
    prefix: `fl${process.pid % 100000}`,
    servers: 2,
    lvsdArgs: [
      "--max-conns",
      String(MAX_CONNS),
      // replies to the spoofed sources go to a gateway that does not answer, as on the Internet
      "--route",
      "default,via=10.0.0.254",
      "--sysctl",
      `amemthresh=${AMEMTHRESH}`,
      "--sysctl",
      "drop_entry=1",
      "--sysctl",
      "drop_packet=1",
    ],
  });
  let flood: ChildProcess | undefined;

  beforeAll(async () => {
    await lab.up();
    for (const c of [
      ["-A", "-t", `${VIP}:80`, "-s", "rr"],
      ["-a", "-t", `${VIP}:80`, "-r", `${rsIp(1)}:80`, "-m"],
      ["-a", "-t", `${VIP}:80`, "-r", `${rsIp(2)}:80`, "-m"],
    ])
      expect(lab.lvsadm(...c).code).toBe(0);
  }, 60_000);
  afterAll(() => {
    flood?.kill("SIGKILL");
    lab.down();
  });

  const knob = (name: string): number => {
    const m = / = (\d+)/.exec(lab.lvsadm("--sysctl", name).stdout);
    return m ? Number(m[1]) : -1;
  };
  const entries = (): number => Math.max(0, lab.lvsadm("-Lnc").stdout.trim().split("\n").length - 2);
  const dropped = (reason: string): number => dropCount(lab, reason);
  const httpOk = (): boolean =>
    /^rs[12]/.test(lab.client("curl", ["-s", "-m", "3", `http://${VIP}/`]).stdout);

  /** hping3 from random sources to the VIP for `seconds` (SIGINT from timeout ends it). */
  const startFlood = (seconds: number): Promise<void> => {
    // 10,000 SYNs a second (more than the table holds in a second): the table fills at once,
    // and lvsd keeps CPU to spare on a busy test machine, so what is measured is the defence
    const f = synFlood(lab.topo, "c", VIP, seconds);
    flood = f.p;
    return f.done;
  };

  it("drop_entry and drop_packet switch themselves on, drop and count, and clear the flood's entries", async () => {
    expect(httpOk()).toBe(true);
    expect([knob("drop_entry"), knob("drop_packet")]).toEqual([1, 1]);
    const done = startFlood(FLOOD_SECONDS);
    const started = Date.now();
    const modes = new Set<string>();
    while (Date.now() - started < (FLOOD_SECONDS - 1) * 1000) {
      modes.add(`${knob("drop_entry")}/${knob("drop_packet")}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await done;
    const atEnd = entries();
    // the flood filled the table past amemthresh: both strategies switched themselves on
    expect(modes.has("2/2")).toBe(true);
    expect(atEnd).toBeLessThanOrEqual(MAX_CONNS);
    expect(atEnd).toBeGreaterThan(MAX_CONNS / 2);
    // drop_rate = amemthresh / (amemthresh - available): new connections dropped and counted
    expect(dropped("drop_packet")).toBeGreaterThan(0);
    // drop_entry keeps removing the flood's SYN_RECV entries (whose timeout is 60 s)
    await new Promise((r) => setTimeout(r, 4000));
    expect(entries()).toBeLessThan(atEnd);
  }, 60_000);

  it("with drop_entry alone, legitimate clients are served during the flood", async () => {
    expect(lab.lvsadm("--sysctl", "drop_packet=0").code).toBe(0);
    const done = startFlood(FLOOD_SECONDS);
    const started = Date.now();
    let asked = 0;
    let served = 0;
    while (Date.now() - started < (FLOOD_SECONDS - 1) * 1000) {
      asked++;
      if (httpOk()) served++;
    }
    await done;
    expect(knob("drop_packet")).toBe(0);
    expect(asked).toBeGreaterThan(1);
    // the full table evicts embryonic entries for a new connection; the clients get answers
    expect(served).toBeGreaterThan(0);
    expect(httpOk()).toBe(true);
  }, 60_000);
});
