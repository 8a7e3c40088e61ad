/**
 * A fluent frame builder for tests and for frames the director makes outside the packet path
 * (the smoltcp "Repr" idea, Katran's test packet builder):
 *
 *   eth({ src, dst }).vlan(tci).ipv4({ src, dst, ttl }).tcp({ sport, dport, flags, mss }).payload(b).build()
 *
 * Lengths and checksums are computed at build() unless overridden, so negative tests can force a
 * bad checksum or a wrong length. It allocates freely: never call it per packet (emit.ts has the
 * zero-allocation emitters).
 *
 * Wire formats: Ethernet II + IEEE 802.1Q; ARP (RFC 826); IPv4 (RFC 791); TCP (RFC 9293, MSS
 * option kind 2); UDP (RFC 768, checksum 0 = none, computed 0 sent as 0xffff); ICMP (RFC 792,
 * frag-needed next-hop MTU per RFC 1191). Checksums per RFC 1071.
 */

import { toMac, toU32 } from "../../lib/addr.js";
import { IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP } from "../../lib/proto.js";
import { icmpChecksum, ipv4HeaderChecksum, tcpUdpChecksum } from "./checksum.js";
import { ETH_P_8021Q, ETH_P_ARP, ETH_P_IP } from "./view.js";

/** IPv4 address as dotted string or uint32. */
export type IpAddr = string | number;
/** MAC address as "aa:bb:cc:dd:ee:ff" or 6 bytes. */
export type MacAddr = string | Uint8Array;

export interface EthOpts {
  src?: MacAddr;
  dst?: MacAddr;
  /** Ethertype; default from the next layer (IPv4 0x0800, ARP 0x0806). */
  type?: number;
}

export interface Ipv4Opts {
  src: IpAddr;
  dst: IpAddr;
  tos?: number;
  ttl?: number;
  id?: number;
  df?: boolean;
  mf?: boolean;
  /** Fragment offset in 8-byte units (as in the header and FrameView.fragOff). */
  fragOff?: number;
  /** Raw option bytes; padded with EOL (0) to a multiple of 4. */
  options?: Uint8Array | readonly number[];
  /** Protocol number; default from the next layer, 0 when none (raw payload: 253, experimental). */
  proto?: number;
  // Overrides for negative tests.
  /** Total length field (default: header + everything after it). */
  totalLen?: number;
  /** IHL field in 32-bit words (default: from the options). */
  ihl?: number;
  version?: number;
  /** Header checksum field (default: computed). */
  csum?: number;
}

export interface TcpOpts {
  sport: number;
  dport: number;
  seq?: number;
  ack?: number;
  /** Flags byte (TCP_SYN | TCP_ACK ...). */
  flags?: number;
  window?: number;
  urgent?: number;
  /** Adds an MSS option (kind 2, length 4) in front of `options`. */
  mss?: number;
  /** Raw option bytes; padded with EOL (0) to a multiple of 4. */
  options?: Uint8Array | readonly number[];
  /** Data offset field in 32-bit words (default: from the options). */
  doff?: number;
  /** Checksum field (default: computed over this segment). */
  csum?: number;
}

export interface UdpOpts {
  sport: number;
  dport: number;
  /** Length field (default: 8 + payload). */
  len?: number;
  /** Checksum field (default: computed; 0 when `noCsum`). */
  csum?: number;
  /** Send without a checksum (field 0). */
  noCsum?: boolean;
}

export interface IcmpOpts {
  type: number;
  code?: number;
  /** Echo identifier / sequence (bytes 4-5 / 6-7). */
  id?: number;
  seq?: number;
  /** Bytes 4-7 as one uint32, for types other than echo (overrides id/seq). */
  rest?: number;
  csum?: number;
}

export interface IcmpErrorOpts {
  /** Next-hop MTU for type 3 code 4 (RFC 1191), bytes 6-7. */
  mtu?: number;
  /** Bytes 4-7 as one uint32 (e.g. parameter problem pointer << 24). */
  rest?: number;
  csum?: number;
}

export interface ArpOpts {
  /** 1 request, 2 reply. */
  op: number;
  sha: MacAddr;
  spa: IpAddr;
  tha?: MacAddr;
  tpa: IpAddr;
  // Overrides for unsupported-ARP tests.
  htype?: number;
  ptype?: number;
  hlen?: number;
  plen?: number;
}

export interface BuildOpts {
  /** Flip the IPv4 header checksum (after computing it). */
  badIpCsum?: boolean;
  /** Flip the L4 checksum (after computing it). */
  badL4Csum?: boolean;
  /** Pad the frame with zeros to at least this many bytes (Ethernet minimum: 60). */
  padTo?: number;
}

type L4 =
  | { kind: "tcp"; o: TcpOpts }
  | { kind: "udp"; o: UdpOpts }
  | { kind: "icmp"; o: IcmpOpts }
  | { kind: "none" };

function bytesOf(b: Uint8Array | readonly number[] | string | undefined): Uint8Array {
  if (b === undefined) return new Uint8Array(0);
  if (typeof b === "string") return new TextEncoder().encode(b);
  return Uint8Array.from(b);
}

function pad4(b: Uint8Array): Uint8Array {
  if (b.length % 4 === 0) return b;
  const out = new Uint8Array(b.length + (4 - (b.length % 4)));
  out.set(b);
  return out;
}

export class FrameBuilder {
  private ethOpts: EthOpts | undefined;
  private tci = -1;
  private ip: Ipv4Opts | undefined;
  private arpOpts: ArpOpts | undefined;
  private l4: L4 = { kind: "none" };
  private data: Uint8Array = new Uint8Array(0);

  eth(o: EthOpts = {}): this {
    this.ethOpts = o;
    return this;
  }

  /** One 802.1Q tag with this TCI (PCP << 13 | DEI << 12 | VID). */
  vlan(tci: number): this {
    this.tci = tci;
    return this;
  }

  ipv4(o: Ipv4Opts): this {
    this.ip = o;
    return this;
  }

  arp(o: ArpOpts): this {
    this.arpOpts = o;
    return this;
  }

  tcp(o: TcpOpts): this {
    this.l4 = { kind: "tcp", o };
    return this;
  }

  udp(o: UdpOpts): this {
    this.l4 = { kind: "udp", o };
    return this;
  }

  icmp(o: IcmpOpts): this {
    this.l4 = { kind: "icmp", o };
    return this;
  }

  /** An ICMP error of `type`/`code` quoting `embedded` (an IP packet, possibly cut short). */
  icmpError(type: number, code: number, embedded: Uint8Array, o: IcmpErrorOpts = {}): this {
    const rest = o.rest ?? (o.mtu !== undefined ? o.mtu & 0xffff : 0);
    const io: IcmpOpts = { type, code, rest };
    if (o.csum !== undefined) io.csum = o.csum;
    this.l4 = { kind: "icmp", o: io };
    this.data = Uint8Array.from(embedded);
    return this;
  }

  /** Bytes after the last header (a string is UTF-8 encoded). */
  payload(b: Uint8Array | readonly number[] | string): this {
    this.data = bytesOf(b);
    return this;
  }

  /** Build the frame (or the bare IP packet when no eth() was given). */
  build(opts: BuildOpts = {}): Uint8Array {
    const l3 = this.arpOpts !== undefined ? this.buildArp() : this.buildIp(opts);
    let frame = l3;
    if (this.ethOpts !== undefined) {
      const e = this.ethOpts;
      const hl = this.tci >= 0 ? 18 : 14;
      frame = new Uint8Array(hl + l3.length);
      const dv = new DataView(frame.buffer);
      frame.set(toMac(e.dst ?? "ff:ff:ff:ff:ff:ff"), 0);
      frame.set(toMac(e.src ?? "02:00:00:00:00:01"), 6);
      const type = e.type ?? (this.arpOpts !== undefined ? ETH_P_ARP : ETH_P_IP);
      if (this.tci >= 0) {
        dv.setUint16(12, ETH_P_8021Q);
        dv.setUint16(14, this.tci);
        dv.setUint16(16, type);
      } else {
        dv.setUint16(12, type);
      }
      frame.set(l3, hl);
    }
    if (opts.padTo !== undefined && frame.length < opts.padTo) {
      const p = new Uint8Array(opts.padTo);
      p.set(frame);
      frame = p;
    }
    return frame;
  }

  /** Build into `buf` at `off` (e.g. a buffer pre-filled with 0xa5); returns the length. */
  buildInto(buf: Uint8Array, off: number, opts: BuildOpts = {}): number {
    const f = this.build(opts);
    buf.set(f, off);
    return f.length;
  }

  private buildArp(): Uint8Array {
    const a = this.arpOpts!;
    const out = new Uint8Array(28);
    const dv = new DataView(out.buffer);
    dv.setUint16(0, a.htype ?? 1);
    dv.setUint16(2, a.ptype ?? ETH_P_IP);
    out[4] = a.hlen ?? 6;
    out[5] = a.plen ?? 4;
    dv.setUint16(6, a.op);
    out.set(toMac(a.sha), 8);
    dv.setUint32(14, toU32(a.spa));
    out.set(toMac(a.tha ?? "00:00:00:00:00:00"), 18);
    dv.setUint32(24, toU32(a.tpa));
    return out;
  }

  private buildL4(): { bytes: Uint8Array; proto: number } {
    const l4 = this.l4;
    const data = this.data;
    switch (l4.kind) {
      case "tcp": {
        const o = l4.o;
        let opt = bytesOf(o.options);
        if (o.mss !== undefined) {
          const m = new Uint8Array(4 + opt.length);
          m[0] = 2;
          m[1] = 4;
          m[2] = (o.mss >>> 8) & 0xff;
          m[3] = o.mss & 0xff;
          m.set(opt, 4);
          opt = m;
        }
        opt = pad4(opt);
        const hl = 20 + opt.length;
        const out = new Uint8Array(hl + data.length);
        const dv = new DataView(out.buffer);
        dv.setUint16(0, o.sport);
        dv.setUint16(2, o.dport);
        dv.setUint32(4, (o.seq ?? 0) >>> 0);
        dv.setUint32(8, (o.ack ?? 0) >>> 0);
        out[12] = ((o.doff ?? hl / 4) & 0x0f) << 4;
        out[13] = o.flags ?? 0;
        dv.setUint16(14, o.window ?? 65535);
        dv.setUint16(18, o.urgent ?? 0);
        out.set(opt, 20);
        out.set(data, hl);
        return { bytes: out, proto: IPPROTO_TCP };
      }
      case "udp": {
        const o = l4.o;
        const out = new Uint8Array(8 + data.length);
        const dv = new DataView(out.buffer);
        dv.setUint16(0, o.sport);
        dv.setUint16(2, o.dport);
        dv.setUint16(4, o.len ?? out.length);
        out.set(data, 8);
        return { bytes: out, proto: IPPROTO_UDP };
      }
      case "icmp": {
        const o = l4.o;
        const out = new Uint8Array(8 + data.length);
        const dv = new DataView(out.buffer);
        out[0] = o.type;
        out[1] = o.code ?? 0;
        if (o.rest !== undefined) {
          dv.setUint32(4, o.rest >>> 0);
        } else {
          dv.setUint16(4, o.id ?? 0);
          dv.setUint16(6, o.seq ?? 0);
        }
        out.set(data, 8);
        return { bytes: out, proto: IPPROTO_ICMP };
      }
      case "none":
        return { bytes: data, proto: 0 };
      default: {
        const never: never = l4;
        return never;
      }
    }
  }

  private buildIp(opts: BuildOpts): Uint8Array {
    const { bytes: l4, proto: l4proto } = this.buildL4();
    const ip = this.ip;
    if (ip === undefined) return l4;
    const opt = pad4(bytesOf(ip.options));
    const hl = 20 + opt.length;
    const out = new Uint8Array(hl + l4.length);
    const dv = new DataView(out.buffer);
    const saddr = toU32(ip.src);
    const daddr = toU32(ip.dst);
    const proto = ip.proto ?? l4proto;
    out[0] = ((ip.version ?? 4) << 4) | ((ip.ihl ?? hl / 4) & 0x0f);
    out[1] = ip.tos ?? 0;
    dv.setUint16(2, ip.totalLen ?? out.length);
    dv.setUint16(4, ip.id ?? 0);
    dv.setUint16(6, (ip.df ? 0x4000 : 0) | (ip.mf ? 0x2000 : 0) | ((ip.fragOff ?? 0) & 0x1fff));
    out[8] = ip.ttl ?? 64;
    out[9] = proto;
    dv.setUint32(12, saddr);
    dv.setUint32(16, daddr);
    out.set(opt, 20);
    out.set(l4, hl);

    // L4 checksum over the segment as built (for a first fragment: over this fragment only).
    const kind = this.l4.kind;
    if (kind !== "none" && (ip.fragOff ?? 0) === 0) {
      let coff = -1;
      let c = 0;
      if (this.l4.kind === "tcp") {
        coff = hl + 16;
        c = this.l4.o.csum ?? tcpUdpChecksum(out, saddr, daddr, IPPROTO_TCP, hl, l4.length, coff);
      } else if (this.l4.kind === "udp") {
        coff = hl + 6;
        const o = this.l4.o;
        c = o.csum ?? (o.noCsum ? 0 : tcpUdpChecksum(out, saddr, daddr, IPPROTO_UDP, hl, l4.length, coff));
      } else if (this.l4.kind === "icmp") {
        coff = hl + 2;
        c = this.l4.o.csum ?? icmpChecksum(out, hl, l4.length);
      }
      if (opts.badL4Csum) c ^= 0x5a5a;
      dv.setUint16(coff, c);
    }
    let ic = ip.csum ?? ipv4HeaderChecksum(out, 0, Math.min(hl, out.length));
    if (opts.badIpCsum) ic ^= 0x5a5a;
    dv.setUint16(10, ic);
    return out;
  }
}

/** Start a frame with an Ethernet header. */
export function eth(o: EthOpts = {}): FrameBuilder {
  return new FrameBuilder().eth(o);
}

/** Start a bare IPv4 packet (no Ethernet header), e.g. the packet quoted by an ICMP error. */
export function ipv4(o: Ipv4Opts): FrameBuilder {
  return new FrameBuilder().ipv4(o);
}
