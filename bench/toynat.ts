/**
 * A toy NAT loop: the least a zero-allocation userspace NAT must do per established TCP frame,
 * written as plainly as possible, as the reference that issue 13 measures the engine against
 * ("NAT established >= 0.9x the toy loop", in the same run: bench/datapath.bench.ts).
 *
 * Per frame it checks what a forwarder cannot skip (Ethernet type IPv4, IHL 5 without options,
 * not a fragment, TCP, total length within the frame, TTL > 1), looks the flow up by its full
 * 5-tuple in an open-addressing hash table of typed arrays, counts packets and bytes on the flow,
 * rewrites the destination address and port to the real server's, decrements the TTL, updates
 * the IP and TCP checksums incrementally (RFC 1624) and writes both MAC addresses. It does not do
 * what the engine does beyond that: TCP state transitions and timeouts, per-service and per-dest
 * counters, neighbour resolution, MTU checks, drops by reason, connection sync, trace taps.
 * Anything it cannot handle it leaves (egress -1).
 */
import type { FrameBatch } from "../src/datapath/io/batch.js";

/** Ones'-complement sum update for a 16-bit word changed from `old` to `now` (RFC 1624 eq. 3). */
function csum16(sum: number, old: number, now: number): number {
  let s = (~sum & 0xffff) + (~old & 0xffff) + now;
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/**
 * The TCP segment at ip (IPv4, 20-byte header) to destination d, ports word p, TTL ttl goes to
 * rip:rport: daddr and TTL with the IP checksum, daddr (pseudo-header) and dport with the TCP
 * checksum, all updated incrementally.
 */
function dnat(
  buf: Uint8Array,
  dv: DataView,
  ip: number,
  d: number,
  p: number,
  ttl: number,
  rip: number,
  rport: number,
): void {
  const tcp = ip + 20;
  let ipSum = dv.getUint16(ip + 10);
  let tcpSum = dv.getUint16(tcp + 16);
  const dHi = d >>> 16;
  const dLo = d & 0xffff;
  const rHi = rip >>> 16;
  const rLo = rip & 0xffff;
  ipSum = csum16(csum16(ipSum, dHi, rHi), dLo, rLo);
  ipSum = csum16(ipSum, (ttl << 8) | 6, ((ttl - 1) << 8) | 6);
  tcpSum = csum16(csum16(tcpSum, dHi, rHi), dLo, rLo);
  tcpSum = csum16(tcpSum, p & 0xffff, rport);
  buf[ip + 8] = ttl - 1;
  dv.setInt32(ip + 16, rip);
  dv.setUint16(tcp + 2, rport);
  dv.setUint16(ip + 10, ipSum);
  dv.setUint16(tcp + 16, tcpSum);
}

/** The toys' hash of a flow's addresses and ports (both classes). */
function flowHash(s: number, d: number, p: number): number {
  let h = Math.imul(s ^ 0x9e3779b9, 0x85ebca6b);
  h = Math.imul(h ^ d ^ (h >>> 13), 0xc2b2ae35);
  h = Math.imul(h ^ p ^ (h >>> 16), 0x27d4eb2f);
  return h ^ (h >>> 15);
}

export class ToyNat {
  private readonly mask: number;
  /** Keys: saddr, daddr, (sport << 16 | dport); a slot is free while used[i] is 0 (linear probing). */
  private readonly ks: Int32Array;
  private readonly kd: Int32Array;
  private readonly kp: Int32Array;
  private readonly used: Uint8Array;
  /** Values: the real server's address and port, and the output link. */
  private readonly rip: Int32Array;
  private readonly rport: Uint16Array;
  private readonly pkts: Float64Array;
  private readonly bytes: Float64Array;
  /** MAC addresses written into forwarded frames: [dst(6) src(6)]. */
  private readonly macs = new Uint8Array(12);
  private readonly outLink: number;
  forwarded = 0;

  constructor(capacityPow2: number, dstMac: Uint8Array, srcMac: Uint8Array, outLink: number) {
    const n = 1 << capacityPow2;
    this.mask = n - 1;
    this.ks = new Int32Array(n);
    this.kd = new Int32Array(n);
    this.kp = new Int32Array(n);
    this.used = new Uint8Array(n);
    this.rip = new Int32Array(n);
    this.rport = new Uint16Array(n);
    this.pkts = new Float64Array(n);
    this.bytes = new Float64Array(n);
    this.macs.set(dstMac, 0);
    this.macs.set(srcMac, 6);
    this.outLink = outLink;
  }

  /** Add a flow (control plane). */
  add(saddr: number, sport: number, daddr: number, dport: number, rip: number, rport: number): void {
    const p = (sport << 16) | dport;
    let i = flowHash(saddr | 0, daddr | 0, p) & this.mask;
    while (this.used[i] !== 0) i = (i + 1) & this.mask;
    this.used[i] = 1;
    this.ks[i] = saddr | 0;
    this.kd[i] = daddr | 0;
    this.kp[i] = p;
    this.rip[i] = rip | 0;
    this.rport[i] = rport;
  }

  /** Forward every frame of the batch it can: set egress to the output link. */
  process(b: FrameBatch): void {
    const buf = b.buf;
    const dv = b.dv;
    const macs = this.macs;
    for (let f = 0; f < b.count; f++) {
      const o = b.off[f]!;
      const len = b.len[f]!;
      if (len < 54 || dv.getUint16(o + 12) !== 0x0800) continue;
      const ip = o + 14;
      if (buf[ip] !== 0x45 || buf[ip + 9] !== 6 || (dv.getUint16(ip + 6) & 0x3fff) !== 0) continue;
      const tot = dv.getUint16(ip + 2);
      if (tot < 40 || tot > len - 14) continue;
      const ttl = buf[ip + 8]!;
      if (ttl <= 1) continue;
      const s = dv.getInt32(ip + 12);
      const d = dv.getInt32(ip + 16);
      const tcp = ip + 20;
      const p = dv.getInt32(tcp);
      let i = flowHash(s, d, p) & this.mask;
      let hit = -1;
      while (this.used[i] !== 0) {
        if (this.ks[i] === s && this.kd[i] === d && this.kp[i] === p) {
          hit = i;
          break;
        }
        i = (i + 1) & this.mask;
      }
      if (hit < 0) continue;
      this.pkts[hit]!++;
      this.bytes[hit]! += tot;
      const rip = this.rip[hit]!;
      const rport = this.rport[hit]!;
      dnat(buf, dv, ip, d, p, ttl, rip, rport);
      buf.set(macs, o);
      b.egress[f] = this.outLink;
      this.forwarded++;
    }
  }
}

/**
 * The toy loop plus the per-frame work the engine's fast path (src/datapath/fastpath.ts) must do
 * and ToyNat leaves out, each in its plainest form: the frame addressed to our MAC; the IPv4
 * header checksum verified (RFC 1812 5.2.2); no martian source or destination (issue 14); a TCP
 * ACK without SYN/FIN/RST on an ESTABLISHED flow whose dest is available; the frame within the
 * MTU; the flow's expiry moved on; per-flow, per-service and per-dest packet and byte counters;
 * the next hop's MAC taken from the dest's neighbour entry and the source MAC from the output
 * link. A second reference for "NAT established vs a minimal loop": the same work as the engine,
 * none of its generality (one service, one output link, no lookup of the reply direction, no
 * other modes, no UDP, no sync, no trace taps, no ARP queueing, no drop counters by reason).
 */
export class ToyNatChecked {
  private readonly mask: number;
  private readonly ks: Int32Array;
  private readonly kd: Int32Array;
  private readonly kp: Int32Array;
  private readonly used: Uint8Array;
  private readonly rip: Int32Array;
  private readonly rport: Uint16Array;
  private readonly pkts: Float64Array;
  private readonly bytes: Float64Array;
  private readonly expires: Float64Array;
  private readonly state: Uint8Array;
  private readonly dest: Uint16Array;
  /** Per dest: available, packets, bytes, next-hop MAC (6 bytes each). */
  private readonly destUp: Uint8Array;
  private readonly destPkts: Float64Array;
  private readonly destBytes: Float64Array;
  private readonly destMac: Uint8Array;
  svcPkts = 0;
  svcBytes = 0;
  private readonly ourMac: Uint8Array;
  private readonly outMac: Uint8Array;
  private readonly outLink: number;
  private readonly mtu = 1500;
  private readonly timeoutMs = 900_000;
  forwarded = 0;

  constructor(
    capacityPow2: number,
    ourMac: Uint8Array,
    outMac: Uint8Array,
    outLink: number,
    destMacs: Uint8Array[],
  ) {
    const n = 1 << capacityPow2;
    this.mask = n - 1;
    this.ks = new Int32Array(n);
    this.kd = new Int32Array(n);
    this.kp = new Int32Array(n);
    this.used = new Uint8Array(n);
    this.rip = new Int32Array(n);
    this.rport = new Uint16Array(n);
    this.pkts = new Float64Array(n);
    this.bytes = new Float64Array(n);
    this.expires = new Float64Array(n);
    this.state = new Uint8Array(n);
    this.dest = new Uint16Array(n);
    this.destUp = new Uint8Array(destMacs.length).fill(1);
    this.destPkts = new Float64Array(destMacs.length);
    this.destBytes = new Float64Array(destMacs.length);
    this.destMac = new Uint8Array(6 * destMacs.length);
    destMacs.forEach((m, k) => {
      this.destMac.set(m, 6 * k);
    });
    this.ourMac = ourMac;
    this.outMac = outMac;
    this.outLink = outLink;
  }

  /** Add an ESTABLISHED flow to dest `dest` (control plane). */
  add(
    saddr: number,
    sport: number,
    daddr: number,
    dport: number,
    rip: number,
    rport: number,
    dest: number,
  ): void {
    const p = (sport << 16) | dport;
    let i = flowHash(saddr | 0, daddr | 0, p) & this.mask;
    while (this.used[i] !== 0) i = (i + 1) & this.mask;
    this.used[i] = 1;
    this.ks[i] = saddr | 0;
    this.kd[i] = daddr | 0;
    this.kp[i] = p;
    this.rip[i] = rip | 0;
    this.rport[i] = rport;
    this.state[i] = 1; // ESTABLISHED
    this.dest[i] = dest;
  }

  process(b: FrameBatch, nowMs: number): void {
    const buf = b.buf;
    const dv = b.dv;
    const our = this.ourMac;
    const src = this.outMac;
    const macs = this.destMac;
    for (let f = 0; f < b.count; f++) {
      const o = b.off[f]!;
      const len = b.len[f]!;
      if (len < 54 || dv.getUint16(o + 12) !== 0x0800) continue;
      if (
        buf[o] !== our[0] ||
        buf[o + 1] !== our[1] ||
        buf[o + 2] !== our[2] ||
        buf[o + 3] !== our[3] ||
        buf[o + 4] !== our[4] ||
        buf[o + 5] !== our[5]
      )
        continue;
      const ip = o + 14;
      if (buf[ip] !== 0x45 || buf[ip + 9] !== 6 || (dv.getUint16(ip + 6) & 0x3fff) !== 0) continue;
      const tot = dv.getUint16(ip + 2);
      if (tot < 40 || tot > len - 14 || tot > this.mtu) continue;
      const ttl = buf[ip + 8]!;
      if (ttl <= 1) continue;
      let sum = 0;
      for (let w = 0; w < 20; w += 2) sum += dv.getUint16(ip + w);
      sum = (sum & 0xffff) + (sum >>> 16);
      sum = (sum & 0xffff) + (sum >>> 16);
      if (sum !== 0xffff) continue;
      const s = dv.getInt32(ip + 12);
      const d = dv.getInt32(ip + 16);
      const s8 = s >>> 24;
      const d8 = d >>> 24;
      if (s8 === 0 || s8 === 127 || s8 >= 224 || d8 === 0 || d8 === 127 || d8 >= 224) continue;
      const tcp = ip + 20;
      if ((buf[tcp + 13]! & 0x17) !== 0x10) continue; // ACK, no SYN/FIN/RST
      const p = dv.getInt32(tcp);
      let i = flowHash(s, d, p) & this.mask;
      let hit = -1;
      while (this.used[i] !== 0) {
        if (this.ks[i] === s && this.kd[i] === d && this.kp[i] === p) {
          hit = i;
          break;
        }
        i = (i + 1) & this.mask;
      }
      if (hit < 0 || this.state[hit] !== 1) continue;
      const dst = this.dest[hit]!;
      if (this.destUp[dst] !== 1) continue;
      this.expires[hit] = nowMs + this.timeoutMs;
      this.pkts[hit]!++;
      this.bytes[hit]! += tot;
      this.svcPkts++;
      this.svcBytes += tot;
      this.destPkts[dst]!++;
      this.destBytes[dst]! += tot;
      const rip = this.rip[hit]!;
      const rport = this.rport[hit]!;
      dnat(buf, dv, ip, d, p, ttl, rip, rport);
      const m = 6 * dst;
      for (let k = 0; k < 6; k++) {
        buf[o + k] = macs[m + k]!;
        buf[o + 6 + k] = src[k]!;
      }
      b.egress[f] = this.outLink;
      this.forwarded++;
    }
  }
}
