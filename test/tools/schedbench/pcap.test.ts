import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { formatIPv4, parseIPv4 } from "../../../src/tools/schedbench/addr.js";
import {
  buildPcap,
  LINKTYPE_ETHERNET,
  LINKTYPE_LINUX_SLL2,
  LINKTYPE_RAW,
  PcapError,
  parsePcap,
  readPcapFile,
} from "../../../src/tools/schedbench/pcap.js";

const ip = (s: string) => parseIPv4(s)!;
const SYN = 0x02;
const ACK = 0x10;

/** IPv4 header + L4 bytes (checksums are not checked by the reader, so left 0). */
function ipv4(src: string, dst: string, proto: number, l4: Uint8Array, fragOff = 0): Uint8Array {
  const b = new Uint8Array(20 + l4.length);
  const v = new DataView(b.buffer);
  b[0] = 0x45;
  v.setUint16(2, b.length);
  v.setUint16(6, fragOff);
  b[8] = 64;
  b[9] = proto;
  v.setUint32(12, ip(src));
  v.setUint32(16, ip(dst));
  b.set(l4, 20);
  return b;
}

function tcp(sport: number, dport: number, flags: number): Uint8Array {
  const b = new Uint8Array(20);
  const v = new DataView(b.buffer);
  v.setUint16(0, sport);
  v.setUint16(2, dport);
  b[12] = 5 << 4;
  b[13] = flags;
  return b;
}

function udp(sport: number, dport: number, payload = 4): Uint8Array {
  const b = new Uint8Array(8 + payload);
  const v = new DataView(b.buffer);
  v.setUint16(0, sport);
  v.setUint16(2, dport);
  v.setUint16(4, b.length);
  return b;
}

function eth(type: number, payload: Uint8Array, vlan = -1): Uint8Array {
  const tag = vlan >= 0 ? 4 : 0;
  const b = new Uint8Array(14 + tag + payload.length);
  const v = new DataView(b.buffer);
  b.set([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]);
  if (vlan >= 0) {
    v.setUint16(12, 0x8100);
    v.setUint16(14, vlan);
  }
  v.setUint16(12 + tag, type);
  b.set(payload, 14 + tag);
  return b;
}

const frames = [
  { tMs: 1000, data: eth(0x0800, ipv4("203.0.113.7", "10.0.0.100", 6, tcp(40000, 80, SYN))) },
  // The SYN-ACK and the ACK are not arrivals.
  { tMs: 1000.5, data: eth(0x0800, ipv4("10.0.0.100", "203.0.113.7", 6, tcp(80, 40000, SYN | ACK))) },
  { tMs: 1001, data: eth(0x0800, ipv4("203.0.113.7", "10.0.0.100", 6, tcp(40000, 80, ACK))) },
  // A retransmitted SYN of the same connection.
  { tMs: 2000, data: eth(0x0800, ipv4("203.0.113.7", "10.0.0.100", 6, tcp(40000, 80, SYN))) },
  // A VLAN-tagged SYN from another client.
  { tMs: 1250, data: eth(0x0800, ipv4("198.51.100.9", "10.0.0.100", 6, tcp(50000, 443, SYN)), 42) },
  // A UDP flow: query, answer, another query on the same ports = one flow.
  { tMs: 3000, data: eth(0x0800, ipv4("203.0.113.8", "10.0.0.53", 17, udp(5353, 53))) },
  { tMs: 3001, data: eth(0x0800, ipv4("10.0.0.53", "203.0.113.8", 17, udp(53, 5353))) },
  { tMs: 3500, data: eth(0x0800, ipv4("203.0.113.8", "10.0.0.53", 17, udp(5353, 53))) },
  // ARP, ICMP, a non-first fragment, a frame cut by the snap length.
  { tMs: 3600, data: eth(0x0806, new Uint8Array(28)) },
  { tMs: 3700, data: eth(0x0800, ipv4("203.0.113.9", "10.0.0.100", 1, new Uint8Array(8))) },
  { tMs: 3800, data: eth(0x0800, ipv4("203.0.113.9", "10.0.0.100", 6, tcp(1, 2, SYN), 100)) },
  { tMs: 3900, data: eth(0x0800, ipv4("203.0.113.9", "10.0.0.100", 6, tcp(1, 2, SYN))).subarray(0, 40) },
];

describe("pcap reader on hand-built captures", () => {
  it("finds SYNs and first UDP packets, skipping everything else", () => {
    const f = parsePcap(buildPcap(frames), "hand.pcap");
    const arrivals = f.arrivals.map((a) => [
      a.tMs,
      formatIPv4(a.saddr),
      a.sport,
      formatIPv4(a.daddr),
      a.dport,
      a.proto,
    ]);
    expect(arrivals).toEqual([
      [0, "203.0.113.7", 40000, "10.0.0.100", 80, 6],
      [250, "198.51.100.9", 50000, "10.0.0.100", 443, 6],
      [2000, "203.0.113.8", 5353, "10.0.0.53", 53, 17],
    ]);
    expect(f.stats).toMatchObject({
      linkType: LINKTYPE_ETHERNET,
      nanosecond: false,
      packets: 12,
      tcpSyn: 2,
      synRetransmits: 1,
      udpFlows: 1,
      notIPv4: 1,
      otherProto: 1,
      fragments: 1,
      short: 1,
    });
    expect(f.spanMs).toBe(2900);
  });

  it("reads big-endian files and nanosecond timestamps", () => {
    const le = buildPcap(frames.slice(0, 1).concat(frames.slice(4, 5)));
    // Byte-swap every 32/16-bit header field to make the big-endian equivalent.
    const be = new Uint8Array(le);
    const v = new DataView(be.buffer);
    const lv = new DataView(le.buffer);
    v.setUint32(0, 0xa1b23c4d, false); // nanosecond magic, big-endian
    v.setUint16(4, 2, false);
    v.setUint16(6, 4, false);
    v.setUint32(16, lv.getUint32(16, true), false);
    v.setUint32(20, lv.getUint32(20, true), false);
    let off = 24;
    while (off < be.length) {
      const incl = lv.getUint32(off + 8, true);
      v.setUint32(off, lv.getUint32(off, true), false);
      v.setUint32(off + 4, lv.getUint32(off + 4, true) * 1000, false); // µs → ns
      v.setUint32(off + 8, incl, false);
      v.setUint32(off + 12, lv.getUint32(off + 12, true), false);
      off += 16 + incl;
    }
    const f = parsePcap(be);
    expect(f.stats.nanosecond).toBe(true);
    expect(f.arrivals.map((a) => [a.tMs, a.dport])).toEqual([
      [0, 80],
      [250, 443],
    ]);
  });

  it("reads raw-IP and Linux cooked v2 link types", () => {
    const raw = parsePcap(
      buildPcap([{ tMs: 5, data: ipv4("1.2.3.4", "5.6.7.8", 6, tcp(1000, 80, SYN)) }], LINKTYPE_RAW),
    );
    expect(raw.arrivals).toHaveLength(1);
    const sll2 = new Uint8Array(20);
    new DataView(sll2.buffer).setUint16(0, 0x0800);
    const pkt = ipv4("1.2.3.4", "5.6.7.8", 17, udp(1000, 53));
    const both = new Uint8Array(20 + pkt.length);
    both.set(sll2);
    both.set(pkt, 20);
    const cooked = parsePcap(buildPcap([{ tMs: 5, data: both }], LINKTYPE_LINUX_SLL2));
    expect(cooked.arrivals.map((a) => a.proto)).toEqual([17]);
  });

  it("a truncated file is an error naming the offset and the record", () => {
    const bytes = buildPcap(frames.slice(0, 3));
    const cut = bytes.subarray(0, bytes.length - 10);
    expect(() => parsePcap(cut, "cut.pcap")).toThrow(PcapError);
    try {
      parsePcap(cut, "cut.pcap");
    } catch (e) {
      const err = e as PcapError;
      expect(err.code).toBe("PCAP_TRUNCATED");
      const thirdData = 24 + 2 * 16 + frames[0]!.data.length + frames[1]!.data.length + 16;
      expect(err.message).toBe(
        `cut.pcap: truncated packet data at offset ${thirdData} (record 3: header says ${frames[2]!.data.length} bytes, ${frames[2]!.data.length - 10} left)`,
      );
    }
    // Cut inside a record header, and inside the global header.
    const inHeader = bytes.subarray(0, 24 + 16 + frames[0]!.data.length + 5);
    expect(() => parsePcap(inHeader, "h.pcap")).toThrow(
      /h\.pcap: truncated record header at offset \d+ \(record 2: 5 of 16 bytes\)/,
    );
    expect(() => parsePcap(bytes.subarray(0, 10), "g.pcap")).toThrow(
      "g.pcap: truncated global header (10 of 24 bytes)",
    );
  });

  it("refuses files that are not classic pcap", () => {
    const ng = new Uint8Array(32);
    new DataView(ng.buffer).setUint32(0, 0x0a0d0d0a);
    expect(() => parsePcap(ng, "x.pcapng")).toThrow(/not a libpcap file: magic 0x0a0d0d0a \(this is pcapng/);
    const wrongLink = buildPcap([], 9999);
    expect(() => parsePcap(wrongLink, "l.pcap")).toThrow(/link type 9999 is not supported/);
    const huge = buildPcap(frames.slice(0, 1));
    new DataView(huge.buffer).setUint32(24 + 8, 1 << 30, true);
    expect(() => parsePcap(huge, "big.pcap")).toThrow(/record 1 at offset 24 claims 1073741824 bytes/);
    expect(() => readPcapFile("/nonexistent/x.pcap")).toThrow(/cannot read: ENOENT/);
  });

  it("random bytes after a valid header never throw anything but PcapError", () => {
    let seed = 12345;
    const rnd = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed >>> 24;
    };
    for (let k = 0; k < 300; k++) {
      const body = Uint8Array.from({ length: 1 + (rnd() % 200) }, rnd);
      const bytes = new Uint8Array(24 + body.length);
      bytes.set(buildPcap([]).subarray(0, 24));
      bytes.set(body, 24);
      try {
        parsePcap(bytes);
      } catch (e) {
        expect(e).toBeInstanceOf(PcapError);
      }
    }
  });
});

// A capture written by tcpdump inside network namespaces we create (root, ip and tcpdump needed).
const canNetns =
  process.getuid?.() === 0 &&
  existsSync("/usr/sbin/ip") &&
  ["/usr/bin/tcpdump", "/usr/sbin/tcpdump"].some(existsSync);

describe.skipIf(!canNetns)("pcap reader on a tcpdump capture from a network namespace", () => {
  it("sees the SYNs and UDP flows sent between two namespaces", async () => {
    const tag = `sb${process.pid % 100000}`;
    const a = `${tag}a`;
    const b = `${tag}b`;
    const sh = (cmd: string[]) => execFileSync(cmd[0]!, cmd.slice(1), { stdio: "pipe" });
    const dir = mkdtempSync(join(tmpdir(), "schedbench-pcap-"));
    const file = join(dir, "cap.pcap");
    let dump: ReturnType<typeof spawn> | null = null;
    try {
      sh(["ip", "netns", "add", a]);
      sh(["ip", "netns", "add", b]);
      sh(["ip", "link", "add", `${tag}0`, "netns", a, "type", "veth", "peer", "name", `${tag}1`, "netns", b]);
      sh(["ip", "-n", a, "addr", "add", "10.201.0.1/24", "dev", `${tag}0`]);
      sh(["ip", "-n", b, "addr", "add", "10.201.0.2/24", "dev", `${tag}1`]);
      sh(["ip", "-n", a, "link", "set", `${tag}0`, "up"]);
      sh(["ip", "-n", b, "link", "set", `${tag}1`, "up"]);
      dump = spawn(
        "ip",
        ["netns", "exec", b, "tcpdump", "-i", `${tag}1`, "--immediate-mode", "-U", "-n", "-w", file, "ip"],
        {
          stdio: ["ignore", "ignore", "pipe"],
        },
      );
      // Wait until tcpdump is listening.
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error("tcpdump did not start")), 10_000);
        dump!.stderr!.on("data", (d: Buffer) => {
          if (d.toString().includes("listening")) {
            clearTimeout(t);
            resolve();
          }
        });
      });
      // Three TCP connection attempts (to a closed port: SYN, RST) and two UDP flows.
      const script = [
        "for p in 8001 8002 8003; do (exec 3<>/dev/tcp/10.201.0.2/$p) 2>/dev/null; done",
        "echo q > /dev/udp/10.201.0.2/5301",
        "echo q > /dev/udp/10.201.0.2/5302",
        "echo q > /dev/udp/10.201.0.2/5302",
      ].join("; ");
      execFileSync("ip", ["netns", "exec", a, "bash", "-c", script], { stdio: "pipe" });
      await new Promise((r) => setTimeout(r, 500));
      const exited = new Promise((r) => dump!.on("exit", r));
      dump.kill("SIGINT");
      await exited;
      dump = null;
      const f = readPcapFile(file);
      const tcpArr = f.arrivals.filter((x) => x.proto === 6);
      const udpArr = f.arrivals.filter((x) => x.proto === 17);
      expect(tcpArr.map((x) => x.dport).sort()).toEqual([8001, 8002, 8003]);
      expect(
        tcpArr.every((x) => formatIPv4(x.saddr) === "10.201.0.1" && formatIPv4(x.daddr) === "10.201.0.2"),
      ).toBe(true);
      // bash opens a new socket (a new source port) per redirection: three UDP flows.
      expect(udpArr.map((x) => x.dport).sort()).toEqual([5301, 5302, 5302]);
      expect(f.stats.linkType).toBe(LINKTYPE_ETHERNET);
      // Timestamps are relative to the first packet and in order.
      expect(f.arrivals[0]!.tMs).toBeGreaterThanOrEqual(0);
      for (let i = 1; i < f.arrivals.length; i++)
        expect(f.arrivals[i]!.tMs).toBeGreaterThanOrEqual(f.arrivals[i - 1]!.tMs);
    } finally {
      if (dump !== null && dump.exitCode === null) dump.kill("SIGKILL");
      for (const ns of [a, b]) {
        try {
          sh(["ip", "netns", "del", ns]);
        } catch {
          // already gone
        }
      }
    }
  });
});
