/**
 * Katran-style fixture tables for the forwarding modes: the shared shape, the topology, frame
 * builders, and a readable diff. See README.md beside this file.
 *
 * A table is a topology (links, routes, neighbours), a setup (services, dests, local addresses,
 * sysctls) and rows run in order against one engine. Each row injects frames on a link and
 * states the verdict for each frame and every frame the director must emit, byte for byte.
 *
 * Expected frames are built with the fluent builder (src/datapath/packet/build.ts), which
 * computes lengths and checksums from scratch, from the fields the mode must produce ("the same
 * segment with daddr = RIP, dport = 8080, TTL - 1"): never captured from the engine.
 */

import type { Engine, EngineOptions } from "../../../src/datapath/engine.js";
import { eth, ipv4 } from "../../../src/datapath/packet/build.js";

// ------------------------------------------------------------------ topology

/**
 * The standard topology:
 *
 *   client 10.0.0.7 ─┐                                        ┌─ rs1 192.168.10.1
 *   router 10.0.0.254 ┼─ link 0 "out0" 10.0.0.1/24 [director] link 1 "in0" 192.168.10.254/24 ─┼─ rs2 192.168.10.2
 *   (default route;   │  VIP 10.0.0.100                                                         └─ gw 192.168.10.253
 *    remote clients)  │                                                                            (to 172.16.0.0/16)
 */
export const MAC = {
  dirOut: "02:00:00:00:00:01",
  dirIn: "02:00:00:00:01:01",
  client: "02:00:00:00:00:07",
  router: "02:00:00:00:00:fe",
  rs1: "02:00:00:00:01:11",
  rs2: "02:00:00:00:01:12",
  gw: "02:00:00:00:01:fd",
  rs9: "02:00:00:00:01:19",
  bcast: "ff:ff:ff:ff:ff:ff",
} as const;

export const IP = {
  dirOut: "10.0.0.1",
  dirIn: "192.168.10.254",
  vip: "10.0.0.100",
  client: "10.0.0.7",
  router: "10.0.0.254",
  /** A client beyond the router (reached by the default route). */
  remote: "198.51.100.9",
  rs1: "192.168.10.1",
  rs2: "192.168.10.2",
  /** Inside router towards the tunnel real servers' network. */
  gw: "192.168.10.253",
  /** TUN real server on a remote network, via gw. */
  rsT: "172.16.5.10",
  /** A real server whose MAC nobody knows yet. */
  rs9: "192.168.10.9",
  /** FULLNAT local addresses. */
  laddr: "192.168.10.200",
  laddr2: "192.168.10.201",
  laddr3: "192.168.10.202",
  laddr4: "192.168.10.203",
} as const;

/** Link ids (index in Net.links and in the Director's links). */
export const OUT = 0;
export const IN = 1;

export interface LinkSpec {
  name: string;
  mac: string;
  addrs: { addr: string; prefix: number }[];
  mtu?: number;
}

export interface Topology {
  links: LinkSpec[];
  /** Static routes via a gateway on a connected subnet (prefix 0: default route). */
  routes: { net: string; prefix: number; via: string }[];
  /** Static neighbour entries. */
  neighbours: { ip: string; mac: string; link: number }[];
}

export function standardTopology(opts: { defaultRoute?: boolean } = {}): Topology {
  const routes: Topology["routes"] = [{ net: "172.16.0.0", prefix: 16, via: IP.gw }];
  if (opts.defaultRoute ?? true) routes.push({ net: "0.0.0.0", prefix: 0, via: IP.router });
  return {
    links: [
      { name: "out0", mac: MAC.dirOut, addrs: [{ addr: IP.dirOut, prefix: 24 }] },
      { name: "in0", mac: MAC.dirIn, addrs: [{ addr: IP.dirIn, prefix: 24 }] },
    ],
    routes,
    neighbours: [
      { ip: IP.client, mac: MAC.client, link: OUT },
      { ip: IP.router, mac: MAC.router, link: OUT },
      { ip: IP.rs1, mac: MAC.rs1, link: IN },
      { ip: IP.rs2, mac: MAC.rs2, link: IN },
      { ip: IP.gw, mac: MAC.gw, link: IN },
    ],
  };
}

// ------------------------------------------------------------------ the table format

/** One frame injected on a link. */
export interface Input {
  link: number;
  frame: Uint8Array;
}

/** One frame the director must send on a link. */
export interface Output {
  link: number;
  frame: Uint8Array;
}

/**
 * What happens to one input frame:
 * - `{ forward: L }`: forwarded (rewritten) out of link L; its bytes are one of the outputs.
 * - `{ drop: "reason" }`: dropped and counted under that name of src/datapath/drops.ts
 *   (DROP_NAMES); any frame the director sends about it (ICMP error) is listed in the outputs.
 * - `{ consumed: true }`: taken by the director itself — answered (ARP, echo, ICMP errors it
 *   turns into its own messages) or absorbed; nothing counted as a drop.
 * - `{ queued: true }`: parked until ARP resolves its next hop.
 */
export type Verdict = { forward: number } | { drop: string } | { consumed: true } | { queued: true };

export interface Row {
  description: string;
  /** Control-plane change applied between batches, before this row's frames (e.g. delete a dest). */
  before?: (e: Engine) => void;
  /** Frames injected for this row; all go through the director in one batch. */
  input: Input | Input[];
  /** One verdict per input frame (a single verdict for a single frame). */
  expected: Verdict | Verdict[];
  /** Every frame the director sends during this row (per link in order), byte for byte. */
  output: Output[];
  /** Extra state assertions after the row (e.g. the path MTU learned). Throw to fail. */
  check?: (e: Engine) => void;
  /**
   * A known data-path bug: the row states the correct behaviour and is run with `it.fails`, so it
   * passes while the bug is there and fails (asking for this flag to go) once it is fixed.
   */
  known?: string;
  /** Fake-clock step before this row, ms (default 10). */
  advanceMs?: number;
}

export interface FixtureTable {
  /** File-name-safe; the pcap is `<name>.pcap`. */
  name: string;
  description: string;
  topology: Topology;
  engine?: EngineOptions;
  /** Services, dests, local addresses, sysctls: before the first row. */
  setup(e: Engine): void;
  rows: Row[];
}

export const fwd = (link: number): Verdict => ({ forward: link });
export const drop = (reason: string): Verdict => ({ drop: reason });
export const CONSUMED: Verdict = { consumed: true };
export const QUEUED: Verdict = { queued: true };
export const on = (link: number, frame: Uint8Array): Input => ({ link, frame });
export const out = (link: number, frame: Uint8Array): Output => ({ link, frame });

/**
 * The IP identification the runner gives the director's own packets: it resets the emitter's
 * counter to this before every row, so the first packet the director originates in a row (an
 * ICMP error, an echo reply, a tunnel header) carries GEN_ID, the next GEN_ID + 1.
 */
export const GEN_ID = 0x4c56;
/** Fake clock at the first row (ms). */
export const T0 = 1_000_000;

// ------------------------------------------------------------------ frame builders

/** A TCP or UDP frame described by its fields (defaults: TTL 64, id 0, TCP). */
export interface Seg {
  smac: string;
  dmac: string;
  /** 802.1Q TCI. */
  vlan?: number;
  src: string;
  dst: string;
  ttl?: number;
  id?: number;
  df?: boolean;
  tos?: number;
  udp?: boolean;
  sport: number;
  dport: number;
  seq?: number;
  ack?: number;
  flags?: number;
  win?: number;
  mss?: number;
  /** Raw TCP option bytes (after the MSS option when both are given). */
  opts?: number[];
  data?: string | Uint8Array;
  /** UDP without a checksum. */
  noCsum?: boolean;
  /** Ethernet padding up to this frame length. */
  padTo?: number;
}

function l4(s: Seg, b: ReturnType<typeof ipv4>): ReturnType<typeof ipv4> {
  if (s.udp) b.udp({ sport: s.sport, dport: s.dport, ...(s.noCsum ? { noCsum: true } : {}) });
  else
    b.tcp({
      sport: s.sport,
      dport: s.dport,
      seq: s.seq ?? 0,
      ack: s.ack ?? 0,
      flags: s.flags ?? 0,
      window: s.win ?? 64240,
      ...(s.mss !== undefined ? { mss: s.mss } : {}),
      ...(s.opts !== undefined ? { options: s.opts } : {}),
    });
  if (s.data !== undefined) b.payload(s.data);
  return b;
}

function ipOpts(s: Seg) {
  return { src: s.src, dst: s.dst, ttl: s.ttl ?? 64, id: s.id ?? 0, df: s.df ?? false, tos: s.tos ?? 0 };
}

/** The Ethernet frame for `s`. */
export function seg(s: Seg): Uint8Array {
  const b = eth({ src: s.smac, dst: s.dmac });
  if (s.vlan !== undefined) b.vlan(s.vlan);
  b.ipv4(ipOpts(s));
  l4(s, b);
  return b.build(s.padTo !== undefined ? { padTo: s.padTo } : {});
}

/** The bare IP packet of `s` (what an ICMP error quotes, what a tunnel carries). */
export function ipOf(s: Seg): Uint8Array {
  return l4(s, ipv4(ipOpts(s))).build();
}

/** `s` after one IP hop through the director: TTL - 1, new MACs, no VLAN tag, no padding. */
export function hop(s: Seg, smac: string, dmac: string, changes: Partial<Seg> = {}): Seg {
  const { vlan: _v, padTo: _p, ...rest } = s;
  return { ...rest, smac, dmac, ttl: (s.ttl ?? 64) - 1, ...changes };
}

/** The ICMP error the director originates (TOS 0xc0, TTL 64, id GEN_ID + k) about `quoted`. */
export function icmpFromDirector(
  smac: string,
  dmac: string,
  src: string,
  dst: string,
  type: number,
  code: number,
  quoted: Uint8Array,
  mtu?: number,
  k = 0,
): Uint8Array {
  return eth({ src: smac, dst: dmac })
    .ipv4({ src, dst, tos: 0xc0, ttl: 64, id: GEN_ID + k })
    .icmpError(
      type,
      code,
      quoted.subarray(0, Math.min(quoted.length, 576 - 28)),
      mtu !== undefined ? { mtu } : {},
    )
    .build();
}

/** An ICMP error sent by some host (ttl and id as given). */
export function icmpError(
  smac: string,
  dmac: string,
  src: string,
  dst: string,
  type: number,
  code: number,
  quoted: Uint8Array,
  o: { mtu?: number; ttl?: number; id?: number } = {},
): Uint8Array {
  return eth({ src: smac, dst: dmac })
    .ipv4({ src, dst, ttl: o.ttl ?? 64, id: o.id ?? 0 })
    .icmpError(type, code, quoted, o.mtu !== undefined ? { mtu: o.mtu } : {})
    .build();
}

/** A copy of `frame` with new Ethernet addresses. */
export function withMacs(frame: Uint8Array, smac: string, dmac: string): Uint8Array {
  const f = frame.slice();
  f.set(macBytes(dmac), 0);
  f.set(macBytes(smac), 6);
  return f;
}

function macBytes(m: string): Uint8Array {
  return Uint8Array.from(m.split(":").map((x) => Number.parseInt(x, 16)));
}

/** Big-endian bytes of a uint32 (TCP option payloads). */
export function u32(n: number): number[] {
  return [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}

// ------------------------------------------------------------------ readable diffs

/**
 * One line describing a frame, decoded here without the code under test: Ethernet, VLAN, IPv4
 * (addresses, TTL, id, checksum, length), then TCP/UDP/ICMP fields, or ARP.
 */
export function describeFrame(f: Uint8Array): string {
  if (f.length < 14) return `${f.length} bytes (short)`;
  const dv = new DataView(f.buffer, f.byteOffset, f.byteLength);
  const mac = (o: number) => [...f.subarray(o, o + 6)].map((b) => b.toString(16).padStart(2, "0")).join(":");
  const ip = (o: number) => `${f[o]}.${f[o + 1]}.${f[o + 2]}.${f[o + 3]}`;
  const h16 = (o: number) => `0x${dv.getUint16(o).toString(16).padStart(4, "0")}`;
  let s = `${f.length}B ${mac(6)} > ${mac(0)}`;
  let type = dv.getUint16(12);
  let o = 14;
  if (type === 0x8100 && f.length >= 18) {
    s += ` vlan ${dv.getUint16(14) & 0xfff}`;
    type = dv.getUint16(16);
    o = 18;
  }
  if (type === 0x0806 && f.length >= o + 28) {
    return `${s} arp op ${dv.getUint16(o + 6)} ${ip(o + 14)} (${mac(o + 8)}) -> ${ip(o + 24)} (${mac(o + 18)})`;
  }
  if (type !== 0x0800 || f.length < o + 20) return `${s} type 0x${type.toString(16)}`;
  const ihl = (f[o]! & 15) * 4;
  const frag = dv.getUint16(o + 6);
  s +=
    ` ip ${ip(o + 12)} > ${ip(o + 16)} tos 0x${f[o + 1]!.toString(16)} ttl ${f[o + 8]} id ${h16(o + 4)}` +
    `${frag & 0x4000 ? " DF" : ""}${frag & 0x2000 ? " MF" : ""}${frag & 0x1fff ? ` off ${frag & 0x1fff}` : ""}` +
    ` len ${dv.getUint16(o + 2)} proto ${f[o + 9]} csum ${h16(o + 10)}`;
  const p = f[o + 9];
  const l = o + ihl;
  if ((frag & 0x1fff) !== 0) return s;
  if (p === 6 && f.length >= l + 20) {
    const fl = f[l + 13]!;
    const names = ["F", "S", "R", "P", ".", "U"].filter((_, k) => (fl & (1 << k)) !== 0).join("");
    return `${s} tcp ${dv.getUint16(l)} > ${dv.getUint16(l + 2)} [${names}] seq ${dv.getUint32(l + 4)} ack ${dv.getUint32(l + 8)} win ${dv.getUint16(l + 14)} csum ${h16(l + 16)} hdr ${(f[l + 12]! >> 4) * 4}`;
  }
  if (p === 17 && f.length >= l + 8) {
    return `${s} udp ${dv.getUint16(l)} > ${dv.getUint16(l + 2)} len ${dv.getUint16(l + 4)} csum ${h16(l + 6)}`;
  }
  if (p === 1 && f.length >= l + 8) {
    let t = `${s} icmp type ${f[l]} code ${f[l + 1]} csum ${h16(l + 2)} rest ${h16(l + 4)}${h16(l + 6).slice(2)}`;
    if ((f[l] === 3 || f[l] === 11) && f.length >= l + 28) {
      const q = l + 8;
      t += ` [quoting ${ip(q + 12)} > ${ip(q + 16)} proto ${f[q + 9]} ttl ${f[q + 8]} csum ${h16(q + 10)}`;
      const qi = q + (f[q]! & 15) * 4;
      if (f.length >= qi + 4) t += ` ports ${dv.getUint16(qi)} > ${dv.getUint16(qi + 2)}`;
      t += "]";
    }
    return t;
  }
  return s;
}

/** Name of the header field at byte `off` of an (untagged) Ethernet/IPv4 frame, for diffs. */
export function fieldAt(f: Uint8Array, off: number): string {
  if (off < 6) return "eth dst";
  if (off < 12) return "eth src";
  if (off < 14) return "ethertype";
  if (f.length < 34 || f[12] !== 0x08 || f[13] !== 0x00) return "payload";
  const r = off - 14;
  const ihl = (f[14]! & 15) * 4;
  const ipNames: [number, string][] = [
    [1, "ip version/ihl"],
    [2, "ip tos"],
    [4, "ip total length"],
    [6, "ip id"],
    [8, "ip flags/fragment"],
    [9, "ip ttl"],
    [10, "ip proto"],
    [12, "ip checksum"],
    [16, "ip saddr"],
    [20, "ip daddr"],
  ];
  if (r < ihl) return ipNames.find(([end]) => r < end)?.[1] ?? "ip options";
  const q = r - ihl;
  const proto = f[23];
  const names: [number, string][] =
    proto === 6
      ? [
          [2, "tcp sport"],
          [4, "tcp dport"],
          [8, "tcp seq"],
          [12, "tcp ack"],
          [13, "tcp data offset"],
          [14, "tcp flags"],
          [16, "tcp window"],
          [18, "tcp checksum"],
          [20, "tcp urgent"],
        ]
      : proto === 17
        ? [
            [2, "udp sport"],
            [4, "udp dport"],
            [6, "udp length"],
            [8, "udp checksum"],
          ]
        : proto === 1
          ? [
              [1, "icmp type"],
              [2, "icmp code"],
              [4, "icmp checksum"],
              [8, "icmp rest of header"],
              [28, "icmp quoted ip header"],
            ]
          : proto === 4
            ? [[20, "inner ip header"]]
            : [];
  return (
    names.find(([end]) => q < end)?.[1] ??
    (proto === 6 && q < (f[14 + ihl + 12]! >> 4) * 4 ? "tcp options" : "payload")
  );
}

/** Hex dump lines "0010  0800 4500 ..." of 16 bytes each. */
function hexLines(f: Uint8Array): string[] {
  const lines: string[] = [];
  for (let o = 0; o < f.length; o += 16) {
    const words: string[] = [];
    for (let k = o; k < Math.min(o + 16, f.length); k += 2) {
      words.push(
        [...f.subarray(k, Math.min(k + 2, f.length))].map((b) => b.toString(16).padStart(2, "0")).join(""),
      );
    }
    lines.push(`${o.toString(16).padStart(4, "0")}  ${words.join(" ")}`);
  }
  return lines;
}

/**
 * "" when the frames are equal, else a readable report: decoded summaries, the first differing
 * offset and the field it falls in, every differing byte, and both hex dumps side by side with
 * the differing lines marked.
 */
export function frameDiff(expected: Uint8Array, actual: Uint8Array): string {
  const n = Math.max(expected.length, actual.length);
  const diffs: number[] = [];
  for (let i = 0; i < n; i++) if (expected[i] !== actual[i]) diffs.push(i);
  if (diffs.length === 0) return "";
  const first = diffs[0]!;
  const out = [
    `frames differ: expected ${expected.length} bytes, actual ${actual.length} bytes; ${diffs.length} byte(s) differ, first at 0x${first.toString(16)} (${fieldAt(expected, first)})`,
    `  expected: ${describeFrame(expected)}`,
    `  actual:   ${describeFrame(actual)}`,
    `  differing bytes (offset: expected/actual, field):`,
  ];
  for (const i of diffs.slice(0, 24)) {
    const e = expected[i]?.toString(16).padStart(2, "0") ?? "--";
    const a = actual[i]?.toString(16).padStart(2, "0") ?? "--";
    out.push(`    0x${i.toString(16).padStart(4, "0")}: ${e}/${a}  ${fieldAt(expected, i)}`);
  }
  if (diffs.length > 24) out.push(`    ... ${diffs.length - 24} more`);
  const el = hexLines(expected);
  const al = hexLines(actual);
  out.push(`  ${"expected".padEnd(48)}   actual`);
  for (let k = 0; k < Math.max(el.length, al.length); k++) {
    const e = el[k] ?? "";
    const a = al[k] ?? "";
    out.push(`${e.slice(6) === a.slice(6) ? " " : "!"} ${e.padEnd(48)} | ${a}`);
  }
  return out.join("\n");
}
