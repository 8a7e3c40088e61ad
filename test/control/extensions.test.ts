/** lvsadm's extensions: FULLNAT local addresses and the PROXY protocol option. */
import { describe, expect, it } from "vitest";
import { run } from "../../src/control/commands.js";
import { splitExtensions } from "../../src/control/extensions.js";
import { fakeTarget, ip, TEST_SERVICES } from "./fake.js";

const OPTS = { services: TEST_SERVICES };
const sh = (t: ReturnType<typeof fakeTarget>, line: string, stdin = "") =>
  run(line.split(" ").filter(Boolean), t, stdin, OPTS);

describe("lvsadm extensions", () => {
  it("adds, lists and deletes FULLNAT local addresses", () => {
    const t = fakeTarget();
    expect(sh(t, "-A -t 10.0.0.100:80 -s rr").code).toBe(0);
    expect(sh(t, "--add-laddr -t 10.0.0.100:80 -z 192.168.10.200")).toEqual({
      stdout: "",
      stderr: "",
      code: 0,
    });
    expect(sh(t, "--add-laddr -t 10.0.0.100:80 -z 192.168.10.201").code).toBe(0);
    expect(t.table.isLaddr(ip("192.168.10.201"))).toBe(true);
    const g = sh(t, "--get-laddr -t 10.0.0.100:80");
    expect(g.stdout).toBe(
      "VIP:VPORT               TOTAL CONNS     LIP                 CONNS\n" +
        "10.0.0.100:80           0               192.168.10.200      0\n" +
        "                                        192.168.10.201      0\n",
    );
    expect(sh(t, "--add-laddr -t 10.0.0.100:80 -z 192.168.10.200")).toMatchObject({
      stderr: "Local address already exists\n",
      code: 255,
    });
    expect(sh(t, "--del-laddr -t 10.0.0.100:80 -z 192.168.10.9")).toMatchObject({
      stderr: "No such local address\n",
      code: 255,
    });
    expect(sh(t, "--add-laddr -t 10.0.0.9:80 -z 192.168.10.9")).toMatchObject({
      stderr: "No such service\n",
      code: 255,
    });
    expect(sh(t, "--del-laddr -t 10.0.0.100:80 -z 192.168.10.201").code).toBe(0);
    expect(t.table.isLaddr(ip("192.168.10.201"))).toBe(false);
    expect(t.table.getLaddrs({ proto: 6, addr: ip("10.0.0.100"), port: 80 })).toEqual([ip("192.168.10.200")]);
  });

  it("refuses malformed extension options clearly", () => {
    expect(splitExtensions(["--add-laddr", "-t", "1.2.3.4:80"]).error).toBe("--add-laddr needs -z ADDR");
    expect(splitExtensions(["-A", "-t", "1.2.3.4:80", "-z", "1.1.1.1"]).error).toMatch(
      /goes with --add-laddr/,
    );
    expect(splitExtensions(["--add-laddr", "-t", "1.2.3.4:80", "-z", "1.1.1.300"]).error).toMatch(
      /illegal local address/,
    );
    expect(splitExtensions(["-A", "--proxy-protocol", "v3"]).error).toMatch(/v1, v2 or off/);
    const t = fakeTarget();
    expect(sh(t, "-a -t 10.0.0.1:80 -r 1.1.1.1 -m --proxy-protocol v1")).toMatchObject({ code: 2 });
    expect(sh(t, "-A -u 10.0.0.1:53 --proxy-protocol v2")).toMatchObject({ code: 255 });
    expect(t.table.list()).toHaveLength(0);
  });

  it("sets the PROXY protocol version with -A/-E and saves and restores it with the local addresses", () => {
    const t = fakeTarget();
    expect(sh(t, "-A -t 10.0.0.100:80 -s rr --proxy-protocol v2").code).toBe(0);
    expect(t.table.list()[0]!.proxyProtocol).toBe(2);
    expect(sh(t, "-E -t 10.0.0.100:80 -s rr --proxy-protocol=v1").code).toBe(0);
    expect(t.table.list()[0]!.proxyProtocol).toBe(1);
    sh(t, "--add-laddr -t 10.0.0.100:80 -z 192.168.10.200");
    sh(t, "-a -t 10.0.0.100:80 -r 192.168.10.1:8080 --fullnat -w 2");
    const saved = sh(t, "-Sn").stdout;
    expect(saved).toBe(
      "-A -t 10.0.0.100:80 -s rr --proxy-protocol v1\n" +
        "--add-laddr -t 10.0.0.100:80 -z 192.168.10.200\n" +
        "-a -t 10.0.0.100:80 -r 192.168.10.1:8080 --fullnat -w 2\n",
    );
    const t2 = fakeTarget();
    expect(sh(t2, "-R", saved)).toEqual({ stdout: "", stderr: "", code: 0 });
    expect(sh(t2, "-Sn").stdout).toBe(saved);
  });
});

describe("lvsadm --synproxy", () => {
  it("turns the SYN proxy on and off with -A/-E, lists, saves and restores it", () => {
    const t = fakeTarget();
    expect(sh(t, "-A -t 10.0.0.100:80 -s rr --synproxy")).toEqual({ stdout: "", stderr: "", code: 0 });
    sh(t, "-a -t 10.0.0.100:80 -r 192.168.10.1:8080 -m -w 1");
    expect(sh(t, "-Ln").stdout).toContain("TCP  10.0.0.100:80 rr synproxy\n");
    const saved = sh(t, "-Sn").stdout;
    expect(saved).toBe(
      "-A -t 10.0.0.100:80 -s rr --synproxy\n-a -t 10.0.0.100:80 -r 192.168.10.1:8080 -m -w 1\n",
    );
    const t2 = fakeTarget();
    expect(sh(t2, "-R", saved)).toEqual({ stdout: "", stderr: "", code: 0 });
    expect(sh(t2, "-Sn").stdout).toBe(saved);
    // -E without the option keeps it; --no-synproxy turns it off
    expect(sh(t, "-E -t 10.0.0.100:80 -s wlc").code).toBe(0);
    expect(sh(t, "-Ln").stdout).toContain("TCP  10.0.0.100:80 wlc synproxy\n");
    expect(sh(t, "-E -t 10.0.0.100:80 -s wlc --no-synproxy").code).toBe(0);
    expect(sh(t, "-Ln").stdout).not.toContain("synproxy");
  });

  it("refuses it on DR/TUN real servers, UDP, and outside -A/-E, with lvs-ts's messages", () => {
    const t = fakeTarget();
    expect(sh(t, "-A -t 10.0.0.100:80 -s rr --synproxy").code).toBe(0);
    expect(sh(t, "-a -t 10.0.0.100:80 -r 192.168.10.1 -g")).toEqual({
      stdout: "",
      stderr:
        "SYN proxy (--synproxy) service: real servers must be NAT (-m) or FULLNAT (--fullnat); the director does not see DR or TUN replies\n",
      code: 255,
    });
    expect(sh(t, "-a -t 10.0.0.100:80 -r 192.168.10.1 -i").code).toBe(255);
    expect(sh(t, "-A -u 10.0.0.100:53 --synproxy")).toMatchObject({
      stderr: "SYN proxy (--synproxy) applies to TCP services only\n",
      code: 255,
    });
    expect(sh(t, "-A -t 10.0.0.100:443 -s rr").code).toBe(0);
    expect(sh(t, "-a -t 10.0.0.100:443 -r 192.168.10.1 -g").code).toBe(0);
    expect(sh(t, "-E -t 10.0.0.100:443 -s rr --synproxy")).toMatchObject({
      stderr: expect.stringMatching(/does not see the replies of 192.168.10.1:443 \(DR\)/),
      code: 255,
    });
    expect(sh(t, "-a -t 10.0.0.100:80 -r 192.168.10.2 -m --synproxy")).toMatchObject({ code: 2 });
    expect(splitExtensions(["-A", "--synproxy=yes"]).error).toMatch(/takes no value/);
  });
});

describe("lvsadm --drops", () => {
  it("lists the target's non-zero drop counters by reason", () => {
    const t = { ...fakeTarget(), dropCounts: () => ({ no_service: 3, ip_bad_csum: 1 }) };
    expect(sh(t, "--drops")).toEqual({
      stdout: "ip_bad_csum          1\nno_service           3\n",
      stderr: "",
      code: 0,
    });
    expect(sh(t, "--drops -n").code).toBe(2);
  });
});

describe("lvsadm --links", () => {
  it("prints one row of counters per link", () => {
    const row = {
      name: "lvs0",
      mac: "02:00:00:00:00:01",
      rxPackets: 12,
      rxBytes: 1500,
      txPackets: 10,
      txBytes: 1200,
      rxDropped: 0,
      txDropped: 1,
    };
    const t = { ...fakeTarget(), linkStats: () => [row] };
    expect(sh(t, "--links").stdout).toBe(
      "Link            MAC                      RxPkts       RxBytes   RxDrop      TxPkts       TxBytes   TxDrop\n" +
        "lvs0            02:00:00:00:00:01            12          1500        0          10          1200        1\n",
    );
    expect(sh(t, "--links --drops").code).toBe(2);
  });
});
