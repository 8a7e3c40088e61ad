import { describe, expect, it } from "vitest";
import { ipToU32 } from "../../../src/lib/addr.js";
import { DEFAULT_CONTROL, LvsdArgError, parseLvsdArgs } from "../../../src/tools/cli/lvsd-args.js";

describe("lvsd arguments", () => {
  it("parses TAP and raw links, routes, neighbours and the control path", () => {
    const a = parseLvsdArgs([
      "--link",
      "tap=lvs0,bridge=br-out,addr=10.0.0.1/24,addr=10.0.1.1/24",
      "--link=raw=eth1,addr=192.168.10.254/24,mtu=1400",
      "--route",
      "default,via=10.0.0.254",
      "--route",
      "172.16.0.0/12,via=192.168.10.250",
      "--neigh",
      "10.0.0.254,02:00:00:00:00:fe",
      "--control",
      "/tmp/x.sock",
    ]);
    expect(a.links).toHaveLength(2);
    expect(a.links[0]).toMatchObject({ kind: "tap", name: "lvs0", bridge: "br-out" });
    expect(a.links[0]!.addrs).toEqual([
      { addr: ipToU32("10.0.0.1"), prefix: 24 },
      { addr: ipToU32("10.0.1.1"), prefix: 24 },
    ]);
    expect(a.links[1]).toMatchObject({ kind: "raw", name: "eth1", mtu: 1400 });
    expect(a.routes).toEqual([
      { net: 0, prefix: 0, via: ipToU32("10.0.0.254") },
      { net: ipToU32("172.16.0.0"), prefix: 12, via: ipToU32("192.168.10.250") },
    ]);
    expect(a.neighs[0]!.addr).toBe(ipToU32("10.0.0.254"));
    expect(a.control).toBe("/tmp/x.sock");
  });

  it("defaults the control socket", () => {
    expect(parseLvsdArgs(["--link", "tap=t0,addr=10.0.0.1/24"]).control).toBe(DEFAULT_CONTROL);
  });

  const bad: [string[], RegExp][] = [
    [[], /no links/],
    [["--link", "tap=t0"], /at least one addr/],
    [["--link", "tap=t0,addr=10.0.0.300/24"], /not an IPv4 address/],
    [["--link", "tap=t0,addr=10.0.0.1"], /with a prefix/],
    [["--link", "tap=t0,addr=10.0.0.1/33"], /out of range/],
    [["--link", "eth0,addr=10.0.0.1/24"], /must start with tap=NAME or raw=IFNAME/],
    [["--link", "raw=e0,bridge=b,addr=10.0.0.1/24"], /tap links only/],
    [["--link", "tap=waytoolongname0123,addr=10.0.0.1/24"], /not a valid interface name/],
    [["--link", "tap=t0,color=red,addr=10.0.0.1/24"], /unknown key 'color'/],
    [["--link", "tap=t0,addr=10.0.0.1/24", "--link", "tap=t0,addr=10.0.1.1/24"], /given twice/],
    [["--link", "tap=t0,addr=10.0.0.1/24", "--route", "default"], /expected default,via=IP/],
    [["--link", "tap=t0,addr=10.0.0.1/24", "--bogus"], /unknown option '--bogus'/],
    [["--link", "tap=t0,addr=10.0.0.1/24", "--control"], /--control needs a value/],
    [["--link", "tap=t0,addr=10.0.0.1/24", "--neigh", "10.0.0.2,zz"], /not a MAC address/],
  ];
  it.each(bad)("refuses %j", (argv, msg) => {
    expect(() => parseLvsdArgs(argv)).toThrow(LvsdArgError);
    expect(() => parseLvsdArgs(argv)).toThrow(msg);
  });
});
