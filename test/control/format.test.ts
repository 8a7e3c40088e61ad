/**
 * Golden listings. Every expected line is written from ipvsadm 1.31's printf formats (quoted in
 * the comments): "%-Ns" pads on the right and "%Nd" on the left, so widths are exact and a line
 * keeps ipvsadm's trailing blanks (a dest line ends with "%-10u\n").
 */

import { beforeEach, describe, expect, it } from "vitest";
import type { RateSource, Rates } from "../../src/control/estimator.js";
import {
  type FormatContext,
  formatConns,
  formatLargeNum,
  formatList,
  formatListService,
  formatSave,
  formatTimeout,
} from "../../src/control/format.js";
import { parseServices } from "../../src/control/netdb.js";
import type { ConnEntry } from "../../src/control/target.js";
import { DEFAULT_LIST_FORMAT, type ListFormat } from "../../src/control/types.js";
import { IPPROTO_TCP, IPPROTO_UDP } from "../../src/lib/proto.js";
import {
  type Dest,
  FwdMethod,
  type Service,
  SVC_F_ONEPACKET,
  SVC_F_PERSISTENT,
  SVC_F_SCHED1,
  SVC_F_SCHED2,
} from "../../src/tables/model.js";
import type { ServiceTable } from "../../src/tables/services.js";
import { fakeTarget, ip, TEST_SERVICES } from "./fake.js";

const fmt = (f: Partial<ListFormat> = {}): ListFormat => ({ ...DEFAULT_LIST_FORMAT, ...f });
const text = (...lines: string[]) => `${lines.join("\n")}\n`;

const TCP80 = { proto: IPPROTO_TCP, addr: ip("10.0.0.100"), port: 80 };
const UDP53 = { proto: IPPROTO_UDP, addr: ip("10.0.0.100"), port: 53 };
const FWM1 = { proto: IPPROTO_TCP, addr: 0, port: 0, fwmark: 1 };

function nat(addr: string, port: number, weight = 1) {
  return { addr: ip(addr), port, weight, fwd: FwdMethod.MASQ, uThreshold: 0, lThreshold: 0 };
}

/**
 * The table of lvs-semantics.md's examples: a persistent TCP service with a DR and a NAT dest,
 * a one-packet UDP service, and an sh fwmark service with flags. Added in an order that is not
 * the sorted one, so the listing shows the sorting.
 */
function exampleTable(table: ServiceTable): { tcp: Service; d1: Dest; d2: Dest } {
  table.addService(FWM1, {
    sched: "sh",
    flags: SVC_F_SCHED1 | SVC_F_SCHED2,
    timeout: 0,
    netmask: 0xffffffff,
  });
  table.addService(UDP53, { sched: "rr", flags: SVC_F_ONEPACKET, timeout: 0, netmask: 0xffffffff });
  const tcp = table.addService(TCP80, {
    sched: "wlc",
    flags: SVC_F_PERSISTENT,
    timeout: 360,
    netmask: 0xffffff00,
  });
  const d2 = table.addDest(TCP80, { ...nat("192.168.10.2", 80, 0), uThreshold: 100, lThreshold: 50 });
  const d1 = table.addDest(TCP80, { ...nat("192.168.10.1", 80), fwd: FwdMethod.ROUTE });
  d1.activeConns = 12;
  d1.inactConns = 40;
  d1.persistConns = 2;
  d2.activeConns = 3;
  d2.inactConns = 7;
  return { tcp, d1, d2 };
}

describe("list formats", () => {
  let table: ServiceTable;
  let ctx: FormatContext;
  let ex: ReturnType<typeof exampleTable>;

  beforeEach(() => {
    const t = fakeTarget();
    table = t.table;
    ctx = { connTabSize: 4096, services: TEST_SERVICES };
    ex = exampleTable(table);
  });

  it("-Ln: header, title, services sorted TCP < UDP < FWM, dests by address", () => {
    expect(formatList(table.list(), fmt({ numeric: true }), ctx)).toBe(
      text(
        "IP Virtual Server version 1.2.1 (size=4096)",
        "Prot LocalAddress:Port Scheduler Flags",
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
        // "%s %s" + " persistent %u" + " mask %s"
        "TCP  10.0.0.100:80 wlc persistent 360 mask 255.255.255.0",
        // "  -> %-28s %-7s %-6d %-10u %-10u\n"
        "  -> 192.168.10.1:80              Route   1      12         40        ",
        "  -> 192.168.10.2:80              Masq    0      3          7         ",
        "UDP  10.0.0.100:53 rr ops",
        "FWM  1 sh (sh-fallback,sh-port)",
      ),
    );
  });

  it("-L without -n names ports from services(5), never hosts", () => {
    expect(formatList(table.list(), fmt(), ctx)).toBe(
      text(
        "IP Virtual Server version 1.2.1 (size=4096)",
        "Prot LocalAddress:Port Scheduler Flags",
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
        "TCP  10.0.0.100:http wlc persistent 360 mask 255.255.255.0",
        "  -> 192.168.10.1:http            Route   1      12         40        ",
        "  -> 192.168.10.2:http            Masq    0      3          7         ",
        "UDP  10.0.0.100:domain rr ops",
        "FWM  1 sh (sh-fallback,sh-port)",
      ),
    );
  });

  it("--nosort keeps table order: services by slot, dests newest first (kernel list order)", () => {
    expect(formatList(table.list(), fmt({ numeric: true, nosort: true }), ctx)).toBe(
      text(
        "IP Virtual Server version 1.2.1 (size=4096)",
        "Prot LocalAddress:Port Scheduler Flags",
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
        "FWM  1 sh (sh-fallback,sh-port)",
        "UDP  10.0.0.100:53 rr ops",
        "TCP  10.0.0.100:80 wlc persistent 360 mask 255.255.255.0",
        "  -> 192.168.10.1:80              Route   1      12         40        ",
        "  -> 192.168.10.2:80              Masq    0      3          7         ",
      ),
    );
  });

  it("sorts addresses numerically, including across 2^31 (where libipvs's int subtraction misorders)", () => {
    const t = fakeTarget().table;
    for (const a of ["192.168.0.1", "10.0.0.1", "10.0.0.2"]) {
      t.addService(
        { proto: IPPROTO_TCP, addr: ip(a), port: 80 },
        { sched: "rr", flags: 0, timeout: 0, netmask: 0xffffffff },
      );
    }
    t.addService(
      { proto: IPPROTO_TCP, addr: ip("10.0.0.1"), port: 22 },
      { sched: "rr", flags: 0, timeout: 0, netmask: 0xffffffff },
    );
    const lines = formatList(t.list(), fmt({ numeric: true }), ctx)
      .split("\n")
      .slice(3, -1);
    expect(lines).toEqual([
      "TCP  10.0.0.1:22 rr",
      "TCP  10.0.0.1:80 rr",
      "TCP  10.0.0.2:80 rr",
      "TCP  192.168.0.1:80 rr",
    ]);
  });

  it("--stats: %-33s then %9llu columns", () => {
    ex.tcp.conns = 14209;
    ex.tcp.inPkts = 111769;
    ex.tcp.outPkts = 74613;
    ex.tcp.inBytes = 7207174;
    ex.tcp.outBytes = 8334358;
    Object.assign(ex.d1, { conns: 7100, inPkts: 55900, outPkts: 37300, inBytes: 3603587, outBytes: 4167179 });
    Object.assign(ex.d2, {
      conns: 7109,
      inPkts: 55869,
      outPkts: 37313,
      inBytes: 123456789,
      outBytes: 4167179000,
    });
    expect(formatList(table.list(), fmt({ numeric: true, stats: true }), ctx)).toBe(
      text(
        "IP Virtual Server version 1.2.1 (size=4096)",
        // "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n"
        "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes",
        "  -> RemoteAddress:Port",
        "TCP  10.0.0.100:80                   14209   111769    74613  7207174  8334358",
        "  -> 192.168.10.1:80                  7100    55900    37300  3603587  4167179",
        // 123456789 >= 10^8: "%8lluK" of /1000; 4167179000 >= 10^9: "%8lluM" of /10^6
        "  -> 192.168.10.2:80                  7109    55869    37313  123456K    4167M",
        "UDP  10.0.0.100:53                       0        0        0        0        0",
        "FWM  1                                   0        0        0        0        0",
      ),
    );
  });

  it("--stats --exact prints whole numbers, widening past 8 digits", () => {
    Object.assign(ex.d2, { conns: 1, inPkts: 0, outPkts: 0, inBytes: 123456789, outBytes: 4167179000 });
    const out = formatListService(ex.tcp, fmt({ numeric: true, stats: true, exact: true }), ctx);
    expect(out.split("\n")[4]).toBe(
      "  -> 192.168.10.2:80                     1        0        0 123456789 4167179000",
    );
  });

  it("--rate: services with print_largenum, dests with %8u for cps/pps", () => {
    const rates = new Map<object, Rates>([
      [ex.tcp, { cps: 50, inpps: 500, outpps: 400, inbps: 500000, outbps: 250000000 }],
      [ex.d1, { cps: 25, inpps: 250, outpps: 200, inbps: 250000, outbps: 125000000 }],
    ]);
    const source: RateSource = {
      rates: (o) => rates.get(o) ?? { cps: 0, inpps: 0, outpps: 0, inbps: 0, outbps: 0 },
    };
    expect(formatList(table.list(), fmt({ numeric: true, rate: true }), { ...ctx, rates: source })).toBe(
      text(
        "IP Virtual Server version 1.2.1 (size=4096)",
        "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS",
        "  -> RemoteAddress:Port",
        "TCP  10.0.0.100:80                      50      500      400   500000  250000K",
        // "  -> %-28s %8u %8u %8u" + print_largenum x2
        "  -> 192.168.10.1:80                    25      250      200   250000  125000K",
        "  -> 192.168.10.2:80                     0        0        0        0        0",
        "UDP  10.0.0.100:53                       0        0        0        0        0",
        "FWM  1                                   0        0        0        0        0",
      ),
    );
  });

  it("--thresholds: %-10u columns after the plain service line", () => {
    expect(formatList(table.list(), fmt({ numeric: true, thresholds: true }), ctx)).toBe(
      text(
        "IP Virtual Server version 1.2.1 (size=4096)",
        // "%-33s %-10s %-10s %-10s %-10s\n"
        "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn ",
        "  -> RemoteAddress:Port",
        "TCP  10.0.0.100:80 wlc persistent 360 mask 255.255.255.0",
        "  -> 192.168.10.1:80              0          0          12         40        ",
        "  -> 192.168.10.2:80              100        50         3          7         ",
        "UDP  10.0.0.100:53 rr ops",
        "FWM  1 sh (sh-fallback,sh-port)",
      ),
    );
  });

  it("--persistent-conn: Weight %-9u, PersistConn %-11u", () => {
    expect(formatListService(ex.tcp, fmt({ numeric: true, persistentConn: true }), ctx)).toBe(
      text(
        // "%-33s %-9s %-11s %-10s %-10s\n"
        "Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn ",
        "  -> RemoteAddress:Port",
        "TCP  10.0.0.100:80 wlc persistent 360 mask 255.255.255.0",
        "  -> 192.168.10.1:80              1         2           12         40        ",
        "  -> 192.168.10.2:80              0         0           3          7         ",
      ),
    );
  });

  it("--tun-info: a TunnelInfo column (%-13s), n/a for non-tunnel dests", () => {
    const d = table.addDest(TCP80, { ...nat("192.168.10.3", 80), fwd: FwdMethod.TUNNEL, tunType: 0 });
    d.activeConns = 1;
    expect(formatListService(ex.tcp, fmt({ numeric: true, tunInfo: true }), ctx)).toBe(
      text(
        "Prot LocalAddress:Port Scheduler Flags",
        "  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn",
        "TCP  10.0.0.100:80 wlc persistent 360 mask 255.255.255.0",
        "  -> 192.168.10.1:80              Route   n/a           1      12         40        ",
        "  -> 192.168.10.2:80              Masq    n/a           0      3          7         ",
        "  -> 192.168.10.3:80              Tunnel  ipip          1      1          0         ",
      ),
    );
  });

  it("-L -t VIP:PORT: the title and one service, without the version header", () => {
    expect(formatListService(ex.tcp, fmt({ numeric: true }), ctx)).toBe(
      text(
        "Prot LocalAddress:Port Scheduler Flags",
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
        "TCP  10.0.0.100:80 wlc persistent 360 mask 255.255.255.0",
        "  -> 192.168.10.1:80              Route   1      12         40        ",
        "  -> 192.168.10.2:80              Masq    0      3          7         ",
      ),
    );
  });

  it("Forward names every method, FullNat included (7 wide)", () => {
    table.addDest(TCP80, { ...nat("192.168.10.4", 8080), fwd: FwdMethod.FULLNAT });
    table.addDest(TCP80, { ...nat("192.168.10.5", 80), fwd: FwdMethod.LOCAL });
    const lines = formatListService(ex.tcp, fmt({ numeric: true }), ctx).split("\n");
    expect(lines[5]).toBe("  -> 192.168.10.4:8080            FullNat 1      0          0         ");
    expect(lines[6]).toBe("  -> 192.168.10.5:80              Local   1      0          0         ");
  });

  it("cuts the service column at 33 and a dest at 28 characters, as ipvsadm's buffers do", () => {
    const longNames = parseServices("a-very-very-long-service-name 8080/tcp\n");
    const t = fakeTarget().table;
    const key = { proto: IPPROTO_TCP, addr: ip("192.168.100.200"), port: 8080 };
    t.addService(key, { sched: "wlc", flags: 0, timeout: 0, netmask: 0xffffffff });
    t.addDest(key, nat("192.168.100.201", 8080));
    const lines = formatList(t.list(), fmt(), { connTabSize: 4096, services: longNames }).split("\n");
    expect(lines[3]).toBe("TCP  192.168.100.200:a-very-very- wlc");
    expect(lines[4]).toBe("  -> 192.168.100.201:a-very-very- Masq    1      0          0         ");
  });

  it("size= is the connection table's bucket count", () => {
    expect(formatList([], fmt(), { ...ctx, connTabSize: 65536 })).toBe(
      text(
        "IP Virtual Server version 1.2.1 (size=65536)",
        "Prot LocalAddress:Port Scheduler Flags",
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
      ),
    );
  });
});

describe("save format (-S / -Sn)", () => {
  it("is ipvsadm's rules, sorted, plus -x/-y (which ipvsadm drops)", () => {
    const t = fakeTarget();
    exampleTable(t.table);
    const ctx = { connTabSize: 4096, services: TEST_SERVICES };
    expect(formatSave(t.table.list(), true, ctx)).toBe(
      text(
        "-A -t 10.0.0.100:80 -s wlc -p 360 -M 255.255.255.0",
        "-a -t 10.0.0.100:80 -r 192.168.10.1:80 -g -w 1",
        "-a -t 10.0.0.100:80 -r 192.168.10.2:80 -m -w 0 -x 100 -y 50",
        "-A -u 10.0.0.100:53 -s rr -o",
        "-A -f 1 -s sh -b sh-fallback,sh-port",
      ),
    );
    expect(formatSave(t.table.list(), false, ctx)).toBe(
      text(
        "-A -t 10.0.0.100:http -s wlc -p 360 -M 255.255.255.0",
        "-a -t 10.0.0.100:http -r 192.168.10.1:http -g -w 1",
        "-a -t 10.0.0.100:http -r 192.168.10.2:http -m -w 0 -x 100 -y 50",
        "-A -u 10.0.0.100:domain -s rr -o",
        "-A -f 1 -s sh -b sh-fallback,sh-port",
      ),
    );
  });

  it("saves tunnels with --tun-type (as ipvsadm 1.31), FULLNAT with --fullnat, flags as flag-N", () => {
    const t = fakeTarget().table;
    t.addService(FWM1, { sched: "wlc", flags: SVC_F_SCHED1, timeout: 0, netmask: 0xffffffff });
    t.addDest(FWM1, { ...nat("192.168.10.1", 0), fwd: FwdMethod.TUNNEL, tunType: 0 });
    t.addDest(FWM1, { ...nat("192.168.10.2", 0), fwd: FwdMethod.FULLNAT });
    expect(formatSave(t.list(), true, { connTabSize: 1, services: TEST_SERVICES })).toBe(
      text(
        "-A -f 1 -s wlc -b flag-1",
        "-a -f 1 -r 192.168.10.1:0 -i -w 1 --tun-type ipip",
        "-a -f 1 -r 192.168.10.2:0 --fullnat -w 1",
      ),
    );
  });

  it("an empty table saves nothing", () => {
    expect(formatSave([], true, { connTabSize: 1, services: TEST_SERVICES })).toBe("");
  });
});

describe("print_largenum: K/M/G/T are powers of 1000", () => {
  const cases: [number, string][] = [
    [0, "        0"],
    [99_999_999, " 99999999"], // %9llu below 10^8
    [100_000_000, "  100000K"], // %8lluK from 10^8
    [999_999_999, "  999999K"],
    [1_000_000_000, "    1000M"], // %8lluM from 10^9
    [99_999_999_999, "   99999M"],
    [100_000_000_000, "     100G"], // %8lluG from 10^11
    [99_999_999_999_999, "   99999G"],
    [100_000_000_000_000, "     100T"], // %8lluT from 10^14
    [9_007_199_254_740_991, "    9007T"],
  ];
  it.each(cases)("%d -> %j", (n, s) => {
    expect(formatLargeNum(n, false)).toBe(s);
  });

  it("--exact: %9llu up to 8 digits, then one blank before the number", () => {
    expect(formatLargeNum(5, true)).toBe("        5");
    expect(formatLargeNum(12_345_678, true)).toBe(" 12345678");
    expect(formatLargeNum(123_456_789, true)).toBe(" 123456789");
    expect(formatLargeNum(123_456_789_012, true)).toBe(" 123456789012");
  });
});

describe("connections (-c)", () => {
  const conn = (p: Partial<ConnEntry>): ConnEntry => ({
    proto: IPPROTO_TCP,
    caddr: ip("203.0.113.7"),
    cport: 51234,
    vaddr: ip("10.0.0.100"),
    vport: 80,
    daddr: ip("192.168.10.1"),
    dport: 80,
    state: "ESTABLISHED",
    expiresInMs: 898_500,
    template: false,
    fwd: FwdMethod.MASQ,
    ...p,
  });
  const conns = [
    conn({}),
    conn({ cport: 0, state: "ASSURED", expiresInMs: 359_999, template: true }),
    conn({
      proto: IPPROTO_UDP,
      caddr: ip("203.0.113.9"),
      cport: 40000,
      vport: 53,
      daddr: ip("192.168.10.2"),
      dport: 53,
      state: "UDP",
      expiresInMs: 299_000,
    }),
    conn({ proto: 0, cport: 0, vport: 0, dport: 0, state: "NONE", expiresInMs: 3_600_000, template: true }),
  ];

  it("-Lnc: %-3s %-6s %-11s %-18s %-18s %s, expire as mm:ss", () => {
    expect(formatConns(conns, fmt({ numeric: true }), TEST_SERVICES)).toBe(
      text(
        "IPVS connection entries",
        "pro expire state       source             virtual            destination",
        "TCP 14:58  ESTABLISHED 203.0.113.7:51234  10.0.0.100:80      192.168.10.1:80",
        "TCP 05:59  ASSURED     203.0.113.7:0      10.0.0.100:80      192.168.10.1:80",
        "UDP 04:59  UDP         203.0.113.9:40000  10.0.0.100:53      192.168.10.2:53",
        // fwmark templates: protocol IP (0); 60 minutes print as 60:00
        "IP  60:00  NONE        203.0.113.7:0      10.0.0.100:0       192.168.10.1:0",
      ),
    );
  });

  it("-Lc names ports by the connection's protocol", () => {
    const lines = formatConns(conns, fmt(), TEST_SERVICES).split("\n");
    expect(lines[2]).toBe("TCP 14:58  ESTABLISHED 203.0.113.7:51234  10.0.0.100:http    192.168.10.1:http");
    expect(lines[4]).toBe("UDP 04:59  UDP         203.0.113.9:40000  10.0.0.100:domain  192.168.10.2:domain");
  });

  it("--persistent-conn adds ipvsadm's pe columns to the header", () => {
    expect(formatConns([], fmt({ numeric: true, persistentConn: true }), TEST_SERVICES)).toBe(
      text(
        "IPVS connection entries",
        "pro expire state       source             virtual            destination        pe name          pe_data",
      ),
    );
  });
});

describe("--timeout", () => {
  it("prints the three timeouts", () => {
    expect(formatTimeout({ tcp: 900, tcpfin: 120, udp: 300 })).toBe(
      "Timeout (tcp tcpfin udp): 900 120 300\n",
    );
  });
});
