/**
 * The LVS tutorials' firewall-mark set-up, end to end: lvsd on TAP devices between a client
 * namespace and two real-server namespaces (src/tools/lab/natlab.ts), the tutorial's mangle line
 * typed as `lvs-iptables` (bin/lvs-iptables, through the native lvsadm client when built) and
 * `lvsadm -A -f 666 -s rr -p` with two real servers; requests from one client to two TCP ports of
 * the VIP (80 and 8080 stand for HTTP and HTTPS: the lab's servers answer their name on both) all
 * reach one real server, and without persistence they spread. Needs root; skipped with a message
 * otherwise. Every namespace and device carries this test's prefix and is removed in afterAll,
 * also when a test fails.
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nativeAvailable } from "../../../src/datapath/io/native.js";
import { NatLab, ROOT, rsIp, VIP } from "../../../src/tools/lab/natlab.js";
import { canUseNetns, type ExecResult, sh } from "../../../src/tools/lab/netns.js";
import { haveTools } from "../../support/tools.js";

const privileged = canUseNetns() && nativeAvailable();
if (!privileged)
  console.warn("skipping fwmark namespace tests: needs root, the ip tool and the built native addon");
const ok = privileged && haveTools("fwmark namespace tests", "curl");

const LVS_IPTABLES = join(ROOT, "bin", "lvs-iptables");
const MARK_LINE = `-t mangle -A PREROUTING -d ${VIP} -p tcp -m multiport --dports 80,8080 -j MARK --set-mark 666`;

describe.skipIf(!ok)("fwmark services through lvsd (the DR tutorial's HTTP+HTTPS grouping)", () => {
  const lab = new NatLab({ prefix: `fw${process.pid % 100000}`, servers: 2 });

  beforeAll(async () => {
    await lab.up();
  }, 60_000);
  afterAll(() => lab.down());

  /** bin/lvs-iptables against this lab's lvsd. */
  const iptables = (line: string): ExecResult =>
    sh("env", [`LVSD_CONTROL=${lab.control}`, LVS_IPTABLES, ...line.split(" ")], undefined, 10_000);
  const must = (...args: string[]) => {
    const r = lab.lvsadm(...args);
    expect(r.stderr, `lvsadm ${args.join(" ")}`).toBe("");
    expect(r.code).toBe(0);
    return r.stdout;
  };
  const get = (port: number) => lab.get(`http://${VIP}:${port}/`).trim();

  it("the tutorial's mark line and -A -f 666 -s rr -p: HTTP and HTTPS from one client reach one real server", () => {
    expect(iptables(MARK_LINE)).toMatchObject({ code: 0, stderr: "" });
    must("-A", "-f", "666", "-s", "rr", "-p");
    must("-a", "-f", "666", "-r", rsIp(1), "-m");
    must("-a", "-f", "666", "-r", rsIp(2), "-m");
    const answers: string[] = [];
    for (let k = 0; k < 6; k++) answers.push(get(k % 2 === 0 ? 80 : 8080));
    expect(answers[0]).toMatch(/^rs[12]$/);
    expect(new Set(answers)).toEqual(new Set([answers[0]]));
    // the service counted them; one template (protocol IP, the mark as address) holds the client
    expect(must("-Ln", "--stats", "--exact")).toMatch(/^FWM {2}666 +6 /m);
    expect(must("-Lnc")).toMatch(
      /^IP {2}\d\d:\d\d {2}(NONE|ASSURED) +10\.0\.0\.7:0 +0\.0\.2\.154:0 +192\.168\.10\.[12]:0$/m,
    );
    // the rule counted the connections' first packets (listed as iptables -L -v -n)
    const listed = iptables("-t mangle -L PREROUTING -v -n -x");
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(
      new RegExp(
        `^ +([6-9]|\\d\\d+) +\\d+ MARK +6 +-- +\\* +\\* +0\\.0\\.0\\.0/0 +${VIP.replace(/\./g, "\\.")} +multiport dports 80,8080 MARK set 0x29a$`,
        "m",
      ),
    );
    // saved with the services, as lines lvsadm -R replays
    expect(must("-Sn")).toContain(
      `--iptables -t mangle -A PREROUTING -d ${VIP}/32 -p tcp -m multiport --dports 80,8080 -j MARK --set-xmark 0x29a/0xffffffff\n`,
    );
  });

  it("without persistence the marked requests spread over both real servers (rr), each on its own port", () => {
    must("-E", "-f", "666", "-s", "rr");
    const answers = new Set<string>();
    for (let k = 0; k < 4; k++) answers.add(get(k % 2 === 0 ? 80 : 8080));
    expect(answers).toEqual(new Set(["rs1", "rs2"]));
  });

  it("with the rule flushed the VIP has no service: the client's request fails", () => {
    expect(iptables("-t mangle -F")).toMatchObject({ code: 0 });
    expect(lab.client("curl", ["-s", "-m", "2", `http://${VIP}:80/`], undefined, 10_000).code).not.toBe(0);
  });
});
