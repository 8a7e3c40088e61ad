/**
 * Executing lvsadm commands on a director: ipvsadm's messages per command (libipvs's
 * ipvs_strerror table), exit statuses, refusals that change nothing, -R's line-by-line
 * behaviour, and the -S / -C / -R round trip.
 */

import fc from "fast-check";
import { beforeEach, describe, expect, it } from "vitest";
import {
  type ExecResult,
  execute,
  ipvsStrerror,
  run,
  usageText,
  versionText,
} from "../../src/control/commands.js";
import { RateEstimator } from "../../src/control/estimator.js";
import { parseArgs } from "../../src/control/ipvsadm.js";
import { IPPROTO_TCP } from "../../src/lib/proto.js";
import { FwdMethod } from "../../src/tables/model.js";
import { type FakeTarget, fakeTarget, ip, TEST_SERVICES } from "./fake.js";

const OPTS = { services: TEST_SERVICES };

function sh(t: FakeTarget, line: string, stdin = ""): ExecResult {
  return run(line.split(" ").filter(Boolean), t, stdin, OPTS);
}

/** Everything observable of the table: the rules and the counters. */
function snapshot(t: FakeTarget): string {
  return sh(t, "-Sn").stdout + sh(t, "-Ln --stats --exact").stdout + sh(t, "-Ln --thresholds").stdout;
}

describe("executing commands", () => {
  let t: FakeTarget;
  beforeEach(() => {
    t = fakeTarget();
    expect(sh(t, "-A -t 10.0.0.1:80 -s rr")).toEqual({ stdout: "", stderr: "", code: 0 });
    expect(sh(t, "-a -t 10.0.0.1:80 -r 192.168.1.1 -m")).toEqual({ stdout: "", stderr: "", code: 0 });
  });

  it("adds, edits and deletes services and dests as ipvsadm does", () => {
    expect(sh(t, "-a -t 10.0.0.1:80 -r 192.168.1.2:8080 -m -w 3").code).toBe(0);
    expect(sh(t, "-E -t 10.0.0.1:80 -s wlc -p 600").code).toBe(0);
    expect(sh(t, "-e -t 10.0.0.1:80 -r 192.168.1.1 -m -w 7 -x 10 -y 5").code).toBe(0);
    expect(sh(t, "-Sn").stdout).toBe(
      "-A -t 10.0.0.1:80 -s wlc -p 600\n" +
        "-a -t 10.0.0.1:80 -r 192.168.1.1:80 -m -w 7 -x 10 -y 5\n" +
        "-a -t 10.0.0.1:80 -r 192.168.1.2:8080 -m -w 3\n",
    );
    expect(sh(t, "-d -t 10.0.0.1:80 -r 192.168.1.2:8080").code).toBe(0);
    expect(sh(t, "-D -t 10.0.0.1:80").code).toBe(0);
    expect(sh(t, "-Sn").stdout).toBe("");
  });

  it("-E without -p drops persistence and -e without -w resets the weight (ipvsadm sends whole structs)", () => {
    sh(t, "-E -t 10.0.0.1:80 -s rr -p");
    sh(t, "-e -t 10.0.0.1:80 -r 192.168.1.1 -m -w 5");
    sh(t, "-E -t 10.0.0.1:80 -s rr");
    sh(t, "-e -t 10.0.0.1:80 -r 192.168.1.1 -m");
    expect(sh(t, "-Sn").stdout).toBe(
      "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 192.168.1.1:80 -m -w 1\n",
    );
  });

  it("-C clears everything", () => {
    sh(t, "-A -u 10.0.0.1:53 -s rr");
    expect(sh(t, "-C")).toEqual({ stdout: "", stderr: "", code: 0 });
    expect(t.table.list()).toHaveLength(0);
  });

  it("--set changes the non-zero timeouts and --timeout lists them", () => {
    expect(sh(t, "--set 600 0 60").code).toBe(0);
    expect(sh(t, "-L --timeout")).toEqual({
      stdout: "Timeout (tcp tcpfin udp): 600 120 60\n",
      stderr: "",
      code: 0,
    });
  });

  it("-L -t lists one service; a missing one is 'No such service' with exit 1", () => {
    expect(sh(t, "-Ln -t 10.0.0.1:80").stdout).toBe(
      "Prot LocalAddress:Port Scheduler Flags\n" +
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n" +
        "TCP  10.0.0.1:80 rr\n" +
        "  -> 192.168.1.1:80               Masq    1      0          0         \n",
    );
    expect(sh(t, "-Ln -t 10.0.0.2:80")).toEqual({ stdout: "", stderr: "No such service\n", code: 1 });
  });

  it("-Lnc lists the target's connections; --daemon lists no daemon", () => {
    t.connList.push({
      proto: IPPROTO_TCP,
      caddr: ip("203.0.113.7"),
      cport: 40000,
      vaddr: ip("10.0.0.1"),
      vport: 80,
      daddr: ip("192.168.1.1"),
      dport: 80,
      state: "SYN_RECV",
      expiresInMs: 59_000,
      template: false,
      fwd: 0,
    });
    expect(sh(t, "-Lnc").stdout).toBe(
      "IPVS connection entries\n" +
        "pro expire state       source             virtual            destination\n" +
        "TCP 00:59  SYN_RECV    203.0.113.7:40000  10.0.0.1:80        192.168.1.1:80\n",
    );
    expect(sh(t, "-L --daemon")).toEqual({ stdout: "", stderr: "", code: 0 });
  });

  it("-Z zeroes counters (all, or one service) and the rate estimates with them", () => {
    const rates = new RateEstimator(t.table);
    t.rates = rates;
    sh(t, "-A -u 10.0.0.1:53 -s rr");
    const [tcp, udp] = [
      t.table.find({ proto: IPPROTO_TCP, addr: ip("10.0.0.1"), port: 80 }),
      t.table.list()[1],
    ];
    if (!tcp || !udp) throw new Error("setup");
    const d = tcp.dests[0];
    if (!d) throw new Error("setup");
    rates.tick(0);
    tcp.conns = udp.conns = d.conns = 100;
    rates.tick(2000);
    expect(rates.rates(tcp).cps).toBe(12);
    expect(sh(t, "-Z -t 10.0.0.1:80").code).toBe(0);
    expect([tcp.conns, d.conns, udp.conns]).toEqual([0, 0, 100]);
    expect(rates.rates(tcp).cps).toBe(0);
    expect(rates.rates(d).cps).toBe(0);
    expect(rates.rates(udp).cps).toBe(12);
    expect(sh(t, "-Z").code).toBe(0);
    expect(udp.conns).toBe(0);
  });

  it("-h prints the adapted usage and -v the version, exit 0", () => {
    const h = sh(t, "-h");
    expect(h.code).toBe(0);
    expect(h.stdout).toBe(usageText("lvsadm"));
    expect(h.stdout).toMatch(
      /^lvsadm v\d+\.\d+\.\d+ \(lvs-ts; ipvsadm v1\.31 compatible, IPVS v1\.2\.1\)\nUsage:\n/,
    );
    expect(h.stdout).toContain("  --control PATH");
    expect(h.stdout).toContain("LVSD_CONTROL");
    expect(h.stdout).toContain("Forwarding methods available now: -m, -g, -i, --fullnat (without");
    expect(h.stdout).toContain("--proxy-protocol v1|v2|off");
    expect(h.stdout).toContain("the default scheduler is wlc.");
    expect(sh(t, "--version")).toEqual({ stdout: versionText("lvsadm"), stderr: "", code: 0 });
  });

  it("refuses the sync daemon clearly on a target without one", () => {
    expect(sh(t, "--start-daemon master")).toEqual({
      stdout: "",
      stderr: "lvsadm: --start-daemon: this director runs no connection sync\n",
      code: 255,
    });
    expect(sh(t, "--stop-daemon backup").stderr).toContain(
      "--stop-daemon: this director runs no connection sync",
    );
  });
});

describe("refusals print ipvsadm's error and change nothing", () => {
  let t: FakeTarget;
  let before: string;
  beforeEach(() => {
    t = fakeTarget();
    sh(t, "-A -t 10.0.0.1:80 -s rr -p 600");
    sh(t, "-a -t 10.0.0.1:80 -r 192.168.1.1 -m -w 2 -x 100 -y 10");
    sh(t, "-A -f 5 -s sh -b sh-port");
    t.table.list()[0]!.conns = 42;
    before = snapshot(t);
  });

  const cases: [string, string, string, number][] = [
    ["an existing service", "-A -t 10.0.0.1:80 -s wlc", "Service already exists\n", 255],
    [
      "an unknown scheduler",
      "-A -t 10.0.0.2:80 -s nosuch",
      "Scheduler or persistence engine not found\n",
      255,
    ],
    [
      "an unknown scheduler on edit",
      "-E -t 10.0.0.1:80 -s nosuch",
      "Scheduler or persistence engine not found\n",
      255,
    ],
    ["editing a missing service", "-E -t 10.0.0.2:80 -s rr", "No such service\n", 255],
    // the kernel's address rules (inet_addr_type: neither broadcast, 0/8, nor multicast)
    ...(
      [
        ["-A -t 0.0.0.0:80", "a 0.0.0.0 service"],
        ["-A -t 0.1.2.3:80", "a 0/8 service"],
        ["-A -t 255.255.255.255:80", "a broadcast service"],
        ["-A -u 224.0.0.9:520", "a multicast service"],
        ["-a -t 10.0.0.1:80 -r 224.0.0.1 -m", "a multicast real server"],
        ["-a -t 10.0.0.1:80 -r 255.255.255.255 -m", "a broadcast real server"],
        ["-a -t 10.0.0.1:80 -r 0.0.0.0 -m", "a 0.0.0.0 real server"],
        ["-e -t 10.0.0.1:80 -r 239.1.1.1 -m", "editing to a multicast real server"],
      ] as const
    ).map(([cmd, what]): [string, string, string, number] => [
      what,
      cmd,
      "Invalid operation.  Possibly wrong module version, address not unicast, ...\n",
      255,
    ]),
    ["deleting a missing service", "-D -t 10.0.0.2:80", "No such service\n", 255],
    ["zeroing a missing service", "-Z -u 10.0.0.1:80", "No such service\n", 255],
    ["a dest for a missing service", "-a -t 10.0.0.2:80 -r 192.168.1.9 -m", "Service not defined\n", 255],
    [
      "editing a dest of a missing service",
      "-e -t 10.0.0.2:80 -r 192.168.1.1 -m",
      "Service not defined\n",
      255,
    ],
    [
      "deleting a dest of a missing service",
      "-d -t 10.0.0.2:80 -r 192.168.1.1",
      "Service not defined\n",
      255,
    ],
    ["an existing dest", "-a -t 10.0.0.1:80 -r 192.168.1.1:80 -m", "Destination already exists\n", 255],
    ["editing a missing dest", "-e -t 10.0.0.1:80 -r 192.168.1.9 -m", "No such destination\n", 255],
    ["deleting a missing dest", "-d -t 10.0.0.1:80 -r 192.168.1.9", "No such destination\n", 255],
    [
      "a lower threshold above the upper (kernel ERANGE)",
      "-a -t 10.0.0.1:80 -r 192.168.1.9 -m -y 5",
      "Numerical result out of range\n",
      255,
    ],
    [
      "ERANGE on edit too",
      "-e -t 10.0.0.1:80 -r 192.168.1.1 -m -x 5 -y 6",
      "Numerical result out of range\n",
      255,
    ],
    [
      "a weight out of range",
      "-a -t 10.0.0.1:80 -r 192.168.1.9 -m -w 70000",
      "illegal weight specified\n",
      2,
    ],
    [
      "a bad address",
      "-a -t 10.0.0.1:80 -r 192.168.1.300 -m",
      "illegal real server address[:port] specified\n",
      2,
    ],
    ["a host name", "-A -t www.example.com:80", "illegal virtual server address[:port] specified\n", 2],
    [
      "a missing -r",
      "-a -t 10.0.0.1:80 -m",
      "You need to supply the 'real-server' option for the 'add-server' command\n",
      2,
    ],
    ["-b for the wrong scheduler", "-E -f 5 -s rr -b sh-port", "incompatible scheduler flag `sh-port'\n", 2],
    [
      "a port-0 service without persistence",
      "-A -t 10.0.0.3",
      "Zero port specified for non-persistent service\n",
      2,
    ],
  ];

  it.each(cases)("%s", (_name, line, stderr, code) => {
    expect(sh(t, line)).toEqual({ stdout: "", stderr, code });
    expect(snapshot(t)).toBe(before);
  });
});

describe("ipvs_strerror", () => {
  it("maps per operation first, then any operation, then strerror", () => {
    expect(ipvsStrerror("add-dest", "ESRCH")).toBe("Service not defined");
    expect(ipvsStrerror("delete-service", "ESRCH")).toBe("No such service");
    expect(ipvsStrerror("add-service", "EINVAL")).toBe(
      "Invalid operation.  Possibly wrong module version, address not unicast, ...",
    );
    expect(ipvsStrerror("clear", "EBUSY")).toBe("Device or resource busy");
  });
});

describe("restore (-R)", () => {
  let t: FakeTarget;
  beforeEach(() => {
    t = fakeTarget();
  });

  it("runs each line, with or without a leading ipvsadm/lvsadm word, skipping blank lines and comments", () => {
    const stdin = [
      "-A -t 10.0.0.1:80 -s rr",
      "ipvsadm -a -t 10.0.0.1:80 -r 192.168.1.1 -m",
      "",
      "   # a comment line",
      "lvsadm -a -t 10.0.0.1:80 -r 192.168.1.2 -m -w 2   # trailing comment",
      "\t-A\t-u 10.0.0.1:53 -s rr\r",
    ].join("\n");
    expect(sh(t, "-R", stdin)).toEqual({ stdout: "", stderr: "", code: 0 });
    expect(sh(t, "-Sn").stdout).toBe(
      "-A -t 10.0.0.1:80 -s rr\n" +
        "-a -t 10.0.0.1:80 -r 192.168.1.1:80 -m -w 1\n" +
        "-a -t 10.0.0.1:80 -r 192.168.1.2:80 -m -w 2\n" +
        "-A -u 10.0.0.1:53 -s rr\n",
    );
  });

  it("goes on after a table error; the exit status is the last line's", () => {
    const stdin = "-A -t 10.0.0.1:80 -s rr\n-A -t 10.0.0.1:80 -s rr\n-A -t 10.0.0.2:80 -s rr\n";
    expect(sh(t, "-R", stdin)).toEqual({ stdout: "", stderr: "Service already exists\n", code: 0 });
    expect(t.table.list()).toHaveLength(2);
    const failingLast = "-A -t 10.0.0.3:80\n-a -t 10.0.0.9:80 -r 1.2.3.4 -m\n";
    expect(sh(t, "-R", failingLast)).toEqual({ stdout: "", stderr: "Service not defined\n", code: 255 });
  });

  it("goes on after popt's errors (they return), with status 255 if last", () => {
    expect(sh(t, "-R", "-L --bogus\n-A -t 10.0.0.1:80\n")).toEqual({
      stdout: "",
      stderr: "--bogus: unknown option\n",
      code: 0,
    });
    expect(t.table.list()).toHaveLength(1);
  });

  it("stops at a line ipvsadm rejects with exit(): the rest is not applied", () => {
    const stdin = "-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 192.168.1.1 -m -w 99999\n-A -t 10.0.0.2:80\n";
    expect(sh(t, "-R", stdin)).toEqual({ stdout: "", stderr: "illegal weight specified\n", code: 2 });
    expect(sh(t, "-Sn").stdout).toBe("-A -t 10.0.0.1:80 -s wlc\n");
  });

  it("refuses -R inside -R with the help hint (exit 255), as ipvsadm avoids the loop", () => {
    expect(sh(t, "-R", "-R\n-A -t 10.0.0.1:80\n")).toEqual({
      stdout: "",
      stderr: "Try `lvsadm -h' or 'lvsadm --help' for more information.\n",
      code: 255,
    });
    expect(t.table.list()).toHaveLength(0);
  });

  it("prints listings from restored lines and stops at a missing -L service (exit 1)", () => {
    const r = sh(t, "-R", "-A -t 10.0.0.1:80\n-L -n --timeout\n-L -n -t 10.0.0.9:80\n-A -t 10.0.0.2:80\n");
    expect(r).toEqual({
      stdout: "Timeout (tcp tcpfin udp): 900 120 300\n",
      stderr: "No such service\n",
      code: 1,
    });
    expect(t.table.list()).toHaveLength(1);
  });

  it("restores every forwarding method, a dest without one being DR as in ipvsadm", () => {
    const r = sh(
      t,
      "-R",
      "-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 192.168.1.1\n-a -t 10.0.0.1:80 -r 192.168.1.2 -m\n-a -t 10.0.0.1:80 -r 192.168.1.3 -i\n-a -t 10.0.0.1:80 -r 192.168.1.4 --fullnat\n",
    );
    expect(r).toEqual({ stdout: "", stderr: "", code: 0 });
    const fwd = Object.fromEntries(t.table.list()[0]!.dests.map((d) => [d.addr & 0xff, d.fwd]));
    expect(fwd).toEqual({ 1: FwdMethod.ROUTE, 2: FwdMethod.MASQ, 3: FwdMethod.TUNNEL, 4: FwdMethod.FULLNAT });
  });

  it("execute() takes stdin for a parsed -R", () => {
    const parsed = parseArgs(["-R"]);
    if (!parsed.ok) throw new Error("parse");
    expect(execute(parsed.cmd, t, "-A -t 10.0.0.1:80\n", OPTS).code).toBe(0);
    expect(t.table.list()).toHaveLength(1);
  });
});

describe("fwmark services", () => {
  it("are added without a warning (lvs-iptables marks their traffic), saved and listed", () => {
    const t = fakeTarget();
    expect(sh(t, "-A -f 7 -s rr")).toEqual({ stdout: "", stderr: "", code: 0 });
    expect(sh(t, "-Sn").stdout).toBe("-A -f 7 -s rr\n");
    expect(sh(t, "-Ln").stdout).toMatch(/^FWM {2}7 rr$/m);
  });
});

describe("-S, -C, -R round trip", () => {
  const SETUP = [
    "-A -t 10.0.0.100:80 -s wlc -p 360 -M 255.255.255.0",
    "-a -t 10.0.0.100:80 -r 192.168.10.1:80 -m -w 1",
    "-a -t 10.0.0.100:80 -r 192.168.10.2:8080 -m -w 0 -x 100 -y 50",
    "-A -t 10.0.0.100:443 -s rr",
    "-a -t 10.0.0.100:443 -r 192.168.10.1:443 -m -w 65535",
    "-A -u 10.0.0.100:53 -s rr -o",
    "-a -u 10.0.0.100:53 -r 192.168.10.3:53 -m -w 2",
    "-A -t 10.0.0.101 -s lc -p 60",
    "-a -t 10.0.0.101 -r 192.168.10.9 -m",
    "-A -f 1 -s sh -b sh-fallback,sh-port",
    "-a -f 1 -r 192.168.10.4:0 -m -w 3",
    "-A -f 2 -s mh -b mh-port -p 120 -M 255.255.0.0",
  ];

  for (const numeric of [true, false]) {
    it(`gives the same table (${numeric ? "-Sn" : "-S, with port names"})`, () => {
      const t = fakeTarget();
      for (const line of SETUP) expect(sh(t, line), line).toMatchObject({ code: 0 });
      const saved = sh(t, numeric ? "-Sn" : "-S").stdout;
      const listed = sh(t, "-Ln --thresholds").stdout + sh(t, "-Ln").stdout;
      expect(sh(t, "-C").code).toBe(0);
      expect(t.table.list()).toHaveLength(0);
      expect(sh(t, "-R", saved)).toEqual({ stdout: "", stderr: "", code: 0 });
      expect(sh(t, numeric ? "-Sn" : "-S").stdout).toBe(saved);
      expect(sh(t, "-Ln --thresholds").stdout + sh(t, "-Ln").stdout).toBe(listed);
    });
  }

  it("holds for random tables (property)", () => {
    const svcArb = fc.record({
      udp: fc.boolean(),
      vip: fc.integer({ min: 1, max: 250 }),
      port: fc.integer({ min: 1, max: 65535 }),
      sched: fc.constantFrom("rr", "wrr", "wlc", "lc", "sh", "mh"),
      persist: fc.option(fc.integer({ min: 1, max: 2678400 }), { nil: undefined }),
      mask: fc.constantFrom("255.255.255.255", "255.255.255.0", "255.255.0.0"),
      dests: fc.array(
        fc.record({
          host: fc.integer({ min: 1, max: 250 }),
          port: fc.integer({ min: 1, max: 65535 }),
          w: fc.integer({ min: 0, max: 65535 }),
          x: fc.integer({ min: 0, max: 1000 }),
        }),
        { maxLength: 4 },
      ),
    });
    fc.assert(
      fc.property(fc.array(svcArb, { maxLength: 6 }), (svcs) => {
        const t = fakeTarget();
        for (const s of svcs) {
          const sel = `${s.udp ? "-u" : "-t"} 10.1.0.${s.vip}:${s.port}`;
          const p = s.persist === undefined ? "" : ` -p ${s.persist} -M ${s.mask}`;
          sh(t, `-A ${sel} -s ${s.sched}${p}`);
          for (const d of s.dests)
            sh(t, `-a ${sel} -r 172.16.0.${d.host}:${d.port} -m -w ${d.w} -x ${d.x} -y ${d.x >> 1}`);
        }
        const saved = sh(t, "-Sn").stdout;
        sh(t, "-C");
        const r = sh(t, "-R", saved);
        return r.code === 0 && r.stderr === "" && sh(t, "-Sn").stdout === saved;
      }),
      { numRuns: 60 },
    );
  });
});
