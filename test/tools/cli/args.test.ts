import { describe, expect, it } from "vitest";
import { ipToU32 } from "../../../src/lib/addr.js";
import {
  DEFAULT_CONTROL,
  isLoopback,
  LVSD_USAGE,
  LvsdArgError,
  parseHttpListen,
  parseLvsdArgs,
} from "../../../src/tools/cli/lvsd-args.js";

describe("lvsd arguments", () => {
  it("parses TAP and raw links, routes, neighbours and the control path", () => {
    const a = parseLvsdArgs([
      "--link",
      "tap=lvs0,bridge=br-out,addr=10.0.0.1/24,addr=10.0.1.1/24",
      "--link=raw=eth1,addr=192.168.10.254/24,mtu=1400,busy-poll=50,kernel=drop,synproxy-xdp=skb",
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
    expect(a.links[1]).toMatchObject({
      kind: "raw",
      name: "eth1",
      mtu: 1400,
      busyPoll: 50,
      kernel: "drop",
      synproxyXdp: "skb",
    });
    expect(a.links[0]!.synproxyXdp).toBeUndefined(); // off unless asked for
    expect(a.links[0]!.kernel).toBeUndefined(); // the host's stack keeps its frames unless asked
    expect(a.links[0]!.busyPoll).toBeUndefined(); // off unless asked for
    expect(a.routes).toEqual([
      { net: 0, prefix: 0, via: ipToU32("10.0.0.254") },
      { net: ipToU32("172.16.0.0"), prefix: 12, via: ipToU32("192.168.10.250") },
    ]);
    expect(a.neighs[0]!.addr).toBe(ipToU32("10.0.0.254"));
    expect(a.control).toBe("/tmp/x.sock");
  });

  it("parses xdp links with their queue and redirect mode", () => {
    const a = parseLvsdArgs([
      "--link",
      "xdp=eth2,queue=3,redirect=mac,addr=10.0.0.1/24",
      "--link",
      "xdp=eth3,addr=192.168.10.254/24,busy-poll=1000,synproxy-xdp=auto",
    ]);
    expect(a.links[0]).toMatchObject({ kind: "xdp", name: "eth2", queue: 3, redirect: "mac" });
    expect(a.links[0]!.busyPoll).toBeUndefined();
    expect(a.links[1]!.busyPoll).toBe(1000);
    expect(a.links[0]!.addrs).toEqual([{ addr: ipToU32("10.0.0.1"), prefix: 24 }]);
    expect(a.links[1]).toMatchObject({ kind: "xdp", name: "eth3" });
    expect(a.links[1]!.queue).toBeUndefined();
    expect(a.links[1]!.redirect).toBeUndefined();
    expect(a.links[1]!.synproxyXdp).toBe("auto");
    expect(LVSD_USAGE).toContain("--link xdp=IFNAME[,queue=N][,redirect=all|mac][,busy-poll=USECS]");
  });

  it("--sysctl NAME=VALUE is repeatable and needs the '='", () => {
    const a = parseLvsdArgs([
      "--link",
      "tap=t0,addr=10.0.0.1/24",
      "--sysctl",
      "sync_refresh_period=2",
      "--sysctl=sync_threshold=3,0",
    ]);
    expect(a.sysctls).toEqual(["sync_refresh_period=2", "sync_threshold=3,0"]);
    expect(() => parseLvsdArgs(["--link", "tap=t0,addr=10.0.0.1/24", "--sysctl", "sync_retries"])).toThrow(
      /expected NAME=VALUE/,
    );
    expect(parseLvsdArgs(["--link", "tap=t0,addr=10.0.0.1/24"]).sysctls).toEqual([]);
  });

  it("--workers N: worker threads on raw links; none by default", () => {
    expect(parseLvsdArgs(["--link", "raw=e0,addr=10.0.0.1/24"]).workers).toBe(0);
    expect(parseLvsdArgs(["--link", "raw=e0,addr=10.0.0.1/24", "--workers", "2"]).workers).toBe(2);
    expect(parseLvsdArgs(["--link", "xdp=x0,addr=10.0.0.1/24", "--workers", "2"]).workers).toBe(2);
    expect(
      parseLvsdArgs(["--link", "xdp=x0,busy-poll=1000,addr=10.0.0.1/24", "--workers", "2"]).links[0]
        ?.busyPoll,
    ).toBe(1000);
    expect(parseLvsdArgs(["--link", "raw=e0,addr=10.0.0.1/24", "--workers=4"]).workers).toBe(4);
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
    [["--link", "eth0,addr=10.0.0.1/24"], /must start with tap=NAME, raw=IFNAME or xdp=IFNAME/],
    [["--link", "raw=e0,queue=1,addr=10.0.0.1/24"], /queue= applies to xdp links only/],
    [["--link", "xdp=e0,queue=-1,addr=10.0.0.1/24"], /queue must be 0\.\.4095/],
    [["--link", "xdp=e0,queue=4096,addr=10.0.0.1/24"], /queue must be 0\.\.4095/],
    [["--link", "xdp=e0,redirect=some,addr=10.0.0.1/24"], /redirect must be all or mac/],
    [["--link", "tap=t0,redirect=all,addr=10.0.0.1/24"], /redirect= applies to xdp links only/],
    [["--link", "raw=e0,bridge=b,addr=10.0.0.1/24"], /tap links only/],
    [["--link", "tap=t0,busy-poll=50,addr=10.0.0.1/24"], /raw and xdp links only/],
    [["--link", "raw=e0,busy-poll=-1,addr=10.0.0.1/24"], /busy-poll must be 0..1000000/],
    [["--link", "raw=e0,busy-poll=,addr=10.0.0.1/24"], /busy-poll must be 0..1000000/],
    [["--link", "tap=t0,kernel=drop,addr=10.0.0.1/24"], /kernel= applies to raw links only/],
    [["--link", "raw=e0,kernel=yes,addr=10.0.0.1/24"], /kernel must be pass or drop/],
    [
      ["--link", "tap=t0,synproxy-xdp=auto,addr=10.0.0.1/24"],
      /synproxy-xdp= applies to raw and xdp links only/,
    ],
    [
      ["--link", "xdp=x0,redirect=mac,synproxy-xdp=auto,addr=10.0.0.1/24"],
      /synproxy-xdp= takes redirect=all/,
    ],
    [["--link", "raw=e0,synproxy-xdp=on,addr=10.0.0.1/24"], /synproxy-xdp must be auto, drv or skb/],
    [
      ["--link", "raw=e0,synproxy-xdp=auto,addr=10.0.0.1/24", "--workers", "2"],
      /link e0 has synproxy-xdp=; the XDP SYN responder needs the one secret/,
    ],
    [["--link", "tap=waytoolongname0123,addr=10.0.0.1/24"], /not a valid interface name/],
    [["--link", "tap=t0,color=red,addr=10.0.0.1/24"], /unknown key 'color'/],
    [["--link", "tap=t0,addr=10.0.0.1/24", "--link", "tap=t0,addr=10.0.1.1/24"], /given twice/],
    [["--link", "tap=t0,addr=10.0.0.1/24", "--route", "default"], /expected default,via=IP/],
    [["--link", "tap=t0,addr=10.0.0.1/24", "--bogus"], /unknown option '--bogus'/],
    [["--link", "tap=t0,addr=10.0.0.1/24", "--control"], /--control needs a value/],
    [["--link", "tap=t0,addr=10.0.0.1/24", "--neigh", "10.0.0.2,zz"], /not a MAC address/],
    [["--link", "raw=e0,addr=10.0.0.1/24", "--workers", "0"], /--workers 0: must be 1..64/],
    [["--link", "raw=e0,addr=10.0.0.1/24", "--workers", "65"], /must be 1..64/],
    [["--link", "raw=e0,addr=10.0.0.1/24", "--workers", "1.5"], /must be 1..64/],
    [["--link", "tap=t0,addr=10.0.0.1/24", "--workers", "2"], /link t0 is tap=; worker threads take raw=/],
    [
      ["--link", "xdp=x0,queue=1,addr=10.0.0.1/24", "--workers", "2"],
      /link x0 has queue=; with --workers worker i binds queue i/,
    ],
    [
      ["--link", "raw=e0,addr=10.0.0.1/24", "--workers", "8", "--max-conns", "100"],
      /too small for 8 workers/,
    ],
  ];
  it.each(bad)("refuses %j", (argv, msg) => {
    expect(() => parseLvsdArgs(argv)).toThrow(LvsdArgError);
    expect(() => parseLvsdArgs(argv)).toThrow(msg);
  });
});

describe("lvsd --http", () => {
  const LINK = ["--link", "tap=t0,addr=10.0.0.1/24"];

  it.each([
    ["127.0.0.1:9101", { host: "127.0.0.1", port: 9101 }],
    ["127.1.2.3:0", { host: "127.1.2.3", port: 0 }],
    ["localhost:65535", { host: "localhost", port: 65535 }],
    ["[::1]:9101", { host: "::1", port: 9101 }],
    ["[::ffff:127.0.0.1]:80", { host: "::ffff:127.0.0.1", port: 80 }],
    ["10.0.0.1:9100", { host: "10.0.0.1", port: 9100 }],
    ["0.0.0.0:9100", { host: "0.0.0.0", port: 9100 }],
    ["[2001:db8::1]:9100", { host: "2001:db8::1", port: 9100 }],
  ])("parseHttpListen(%s)", (spec, want) => {
    expect(parseHttpListen(spec)).toEqual(want);
  });

  it.each([
    ["9101", /expected ADDR:PORT/],
    ["127.0.0.1", /expected ADDR:PORT/],
    ["127.0.0.1:", /expected ADDR:PORT/],
    ["127.0.0.1:http", /expected ADDR:PORT/],
    ["127.0.0.1:123456", /expected ADDR:PORT/],
    ["127.0.0.1:65536", /port 65536 is out of range 0..65535/],
    ["::1:9101", /expected ADDR:PORT/],
    ["[127.0.0.1]:9101", /not an IPv6 address/],
    ["[::g]:9101", /expected ADDR:PORT/],
    ["example.com:9101", /not an IPv4 address or localhost/],
    ["10.0.0.300:9101", /not an IPv4 address or localhost/],
  ])("parseHttpListen refuses %s", (spec, msg) => {
    expect(() => parseHttpListen(spec)).toThrow(LvsdArgError);
    expect(() => parseHttpListen(spec)).toThrow(msg);
  });

  it.each([
    ["127.0.0.1", true],
    ["127.255.255.254", true],
    ["localhost", true],
    ["::1", true],
    ["::ffff:127.0.0.1", true],
    ["10.0.0.1", false],
    ["0.0.0.0", false],
    ["::", false],
    ["::ffff:10.0.0.1", false],
    ["128.0.0.1", false],
    ["2001:db8::1", false],
  ])("isLoopback(%s) is %s", (host, want) => {
    expect(isLoopback(host)).toBe(want);
  });

  it("is off by default and listens where asked on loopback", () => {
    expect(parseLvsdArgs(LINK).http).toBeUndefined();
    expect(parseLvsdArgs(LINK).httpAllowRemote).toBe(false);
    expect(parseLvsdArgs([...LINK, "--http", "127.0.0.1:9101"]).http).toEqual({
      host: "127.0.0.1",
      port: 9101,
    });
    expect(parseLvsdArgs([...LINK, "--http=[::1]:0"]).http).toEqual({ host: "::1", port: 0 });
  });

  it.each([["10.0.0.1:9100"], ["0.0.0.0:9100"], ["[::]:9100"], ["[2001:db8::1]:9100"]])(
    "refuses --http %s without --http-allow-remote, saying why",
    (spec) => {
      const host = parseHttpListen(spec).host;
      expect(() => parseLvsdArgs([...LINK, "--http", spec])).toThrow(LvsdArgError);
      expect(() => parseLvsdArgs([...LINK, "--http", spec])).toThrow(
        `--http ${host}: not a loopback address; the endpoint has no authentication, so listening on another address needs --http-allow-remote`,
      );
    },
  );

  it("listens on any address with --http-allow-remote, in either order", () => {
    const want = { host: "10.0.0.1", port: 9100 };
    expect(parseLvsdArgs([...LINK, "--http", "10.0.0.1:9100", "--http-allow-remote"]).http).toEqual(want);
    const a = parseLvsdArgs([...LINK, "--http-allow-remote", "--http", "10.0.0.1:9100"]);
    expect(a.http).toEqual(want);
    expect(a.httpAllowRemote).toBe(true);
  });

  it("needs a value", () => {
    expect(() => parseLvsdArgs([...LINK, "--http"])).toThrow("--http needs a value");
  });
});

describe("lvsd --log-level", () => {
  const LINK = ["--link", "tap=t0,addr=10.0.0.1/24"];

  it("defaults to info", () => {
    expect(parseLvsdArgs(LINK).logLevel).toBe("info");
  });

  it.each(["fatal", "error", "warn", "info", "debug", "trace", "silent"])("takes %s", (level) => {
    expect(parseLvsdArgs([...LINK, "--log-level", level]).logLevel).toBe(level);
    expect(parseLvsdArgs([...LINK, `--log-level=${level}`]).logLevel).toBe(level);
  });

  it.each(["verbose", "INFO", "", "30"])("refuses '%s', naming the levels", (level) => {
    expect(() => parseLvsdArgs([...LINK, "--log-level", level])).toThrow(LvsdArgError);
    expect(() => parseLvsdArgs([...LINK, "--log-level", level])).toThrow(
      `--log-level ${level}: must be one of fatal, error, warn, info, debug, trace, silent`,
    );
  });

  it("needs a value", () => {
    expect(() => parseLvsdArgs([...LINK, "--log-level"])).toThrow("--log-level needs a value");
  });

  it("is in --help with its levels, default and format", () => {
    expect(LVSD_USAGE).toMatch(
      /\n {2}--log-level LEVEL +fatal, error, warn, info \(default\), debug, trace or silent\. The log\n +goes to stderr: JSON lines, or readable lines when stderr is a\n +terminal \(docs\/observability\.md, "Logs"\)\.\n/,
    );
  });
});
