/**
 * What Linux drops before IPVS sees it, and so does the engine (issue "Hardening", item 4):
 * frames for another host's MAC, group-addressed frames that are neither ARP nor IPv4 multicast,
 * martian sources and destinations, and — rp_filter, strict by default — new connections and
 * echo requests whose source is routed out of another link. Each is counted by its reason and
 * creates nothing; the legitimate frame next to it still goes through.
 */
import { describe, expect, it } from "vitest";
import { DROP_NAMES } from "../../../src/datapath/drops.js";
import { Engine } from "../../../src/datapath/engine.js";
import { eth } from "../../../src/datapath/packet/build.js";
import { TCP_SYN } from "../../../src/datapath/packet/view.js";
import { ipToU32, macToBytes } from "../../../src/lib/addr.js";
import { addNatDest, addService, IN, IP, MAC, natEngine, OUT, run, tcpKey } from "./helpers.js";

function director(): Engine {
  const e = natEngine();
  addService(e, tcpKey(), "rr");
  addNatDest(e, tcpKey(), IP.rs1, 80);
  return e;
}

function syn(o: { src?: string; dst?: string; dmac?: string; sport?: number } = {}): Uint8Array {
  return eth({ src: MAC.client, dst: o.dmac ?? MAC.dirOut })
    .ipv4({ src: o.src ?? IP.client, dst: o.dst ?? IP.vip })
    .tcp({ sport: o.sport ?? 40000, dport: 80, flags: TCP_SYN })
    .build();
}

function echo(src: string, dst: string): Uint8Array {
  return eth({ src: MAC.client, dst: MAC.dirOut })
    .ipv4({ src, dst })
    .icmp({ type: 8, code: 0, id: 7, seq: 1 })
    .payload("ping")
    .build();
}

/** The non-zero drop counters by name. */
function drops(e: Engine): Record<string, number> {
  const out: Record<string, number> = {};
  e.drops.forEach((n, r) => {
    if (n > 0) out[DROP_NAMES[r]!] = n;
  });
  return out;
}

describe("frames not for this director", () => {
  it("another host's MAC, or a broadcast/multicast MAC on unicast IPv4: not_our_mac, no connection", () => {
    const e = director();
    expect(run(e, syn({ dmac: "02:00:00:00:00:99" }), OUT).egress).toBe(-1);
    expect(run(e, syn({ dmac: "ff:ff:ff:ff:ff:ff", sport: 40001 }), OUT).egress).toBe(-1);
    expect(run(e, syn({ dmac: "01:00:5e:00:00:64", sport: 40002 }), OUT).egress).toBe(-1);
    // the inside link's MAC on the outside link is not ours there either
    expect(run(e, syn({ dmac: MAC.dirIn, sport: 40003 }), OUT).egress).toBe(-1);
    expect(drops(e)).toEqual({ not_our_mac: 4 });
    expect(e.ct.count).toBe(0);
    expect(run(e, syn({ sport: 40004 }), OUT).egress).toBe(IN);
    expect(e.ct.count).toBe(1);
  });

  it("group-addressed ARP and IPv4 multicast still reach the resolver and the sinks", () => {
    const e = director();
    const arp = eth({ src: MAC.client, dst: "ff:ff:ff:ff:ff:ff" })
      .arp({ op: 1, sha: MAC.client, spa: IP.client, tha: "00:00:00:00:00:00", tpa: IP.vip })
      .build();
    const r = run(e, arp, OUT);
    expect(r.generated).toHaveLength(1); // the ARP reply for the VIP
    const vrrp = eth({ src: MAC.client, dst: "01:00:5e:00:00:12" })
      .ipv4({ src: IP.client, dst: "224.0.0.18", ttl: 255, proto: 112 })
      .payload(new Uint8Array(20))
      .build();
    run(e, vrrp, OUT);
    expect(drops(e)).toEqual({ proto: 1 }); // no VRRP configured: dropped as before, not as a foreign MAC
  });
});

describe("martian addresses", () => {
  it.each(["0.0.0.0", "0.1.2.3", "127.0.0.1", "224.0.0.5", "239.1.1.1", "240.0.0.1", "255.255.255.255"])(
    "source %s: martian_src, no connection, no ICMP",
    (src) => {
      const e = director();
      const r = run(e, syn({ src }), OUT);
      expect(r.egress).toBe(-1);
      expect(r.generated).toEqual([]);
      expect(drops(e)).toEqual({ martian_src: 1 });
      expect(e.ct.count).toBe(0);
    },
  );

  it.each(["127.0.0.1", "0.0.0.0", "10.0.0.0", "240.1.2.3"])("destination %s", (dst) => {
    const e = director();
    const r = run(e, syn({ dst }), OUT);
    expect(r.egress).toBe(-1);
    // 10.0.0.0 is an ordinary (network) address: not a martian, just no service
    expect(drops(e)).toEqual(dst === "10.0.0.0" ? { no_service: 1 } : { martian_dst: 1 });
  });

  it("the limited broadcast destination is not a martian (no service there)", () => {
    const e = director();
    run(e, syn({ dst: "255.255.255.255", dmac: "ff:ff:ff:ff:ff:ff" }), OUT);
    expect(drops(e)).toEqual({ not_our_mac: 1 });
  });
});

describe("rp_filter (strict by default)", () => {
  it("a SYN from an inside address arriving on the outside link makes no connection", () => {
    const e = director();
    expect(run(e, syn({ src: "192.168.10.77" }), OUT).egress).toBe(-1);
    expect(drops(e)).toEqual({ rp_filter: 1 });
    expect(e.ct.count).toBe(0);
    // loose: the source is routed somewhere, so it passes; off: passes
    e.sysctl.rpFilter = 2;
    expect(run(e, syn({ src: "192.168.10.77", sport: 40010 }), OUT).egress).toBe(IN);
    e.sysctl.rpFilter = 0;
    expect(run(e, syn({ src: "192.168.10.77", sport: 40011 }), OUT).egress).toBe(IN);
    expect(e.ct.count).toBe(2);
  });

  it("loose mode refuses a source with no route at all", () => {
    // no default route: only the connected subnets
    const e = new Engine({ sweepPerBatch: 0 });
    e.net.addLink("out0", macToBytes(MAC.dirOut), [{ addr: ipToU32(IP.dirOut), prefix: 24 }]);
    e.net.addLink("in0", macToBytes(MAC.dirIn), [{ addr: ipToU32(IP.dirIn), prefix: 24 }]);
    addService(e, tcpKey(), "rr");
    addNatDest(e, tcpKey(), IP.rs1, 80);
    e.sysctl.rpFilter = 2;
    expect(run(e, syn({ src: "198.51.100.9" }), OUT).egress).toBe(-1);
    expect(drops(e)).toEqual({ rp_filter: 1 });
  });

  it("an echo request with a spoofed inside source on the outside link is not answered into the inside", () => {
    const e = director();
    const spoofed = run(e, echo("192.168.10.77", IP.dirOut), OUT);
    expect(spoofed.generated).toEqual([]);
    expect(drops(e)).toEqual({ rp_filter: 1 });
    const honest = run(e, echo(IP.client, IP.dirOut), OUT);
    expect(honest.generated).toHaveLength(1);
    expect(honest.generated[0]![0]).toBe(OUT);
  });
});
