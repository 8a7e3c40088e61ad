/**
 * FrameView: the parsed form of one Ethernet frame, filled in place by `parseFrame`
 * (src/datapath/packet/parse.ts) and reused for every frame. It holds only numbers: absolute offsets
 * into the frame's buffer and header fields. Nothing here allocates per packet.
 *
 * After `parseFrame` returns PARSE_OK, every offset below lies inside the frame and the header
 * lengths have been checked, so accessors and rewrites need no further bounds checks.
 */

/** Parse statuses. 0 is success; every other value is a drop reason (index into drop counters). */
export const ParseStatus = {
  OK: 0,
  ETH_SHORT: 1,
  VLAN_SHORT: 2,
  ARP_SHORT: 3,
  ARP_UNSUPPORTED: 4,
  IP_SHORT: 5,
  IP_BAD_VERSION: 6,
  IP_BAD_IHL: 7,
  IP_BAD_TOTLEN: 8,
  IP_BAD_CSUM: 9,
  IP_BAD_OPTIONS: 10,
  TCP_SHORT: 11,
  TCP_BAD_DOFF: 12,
  UDP_SHORT: 13,
  UDP_BAD_LEN: 14,
  ICMP_SHORT: 15,
  ICMP_INNER_SHORT: 16,
  /** Ethertype other than IPv4/ARP (IPv6 etc.): parsed up to L2 only. */
  L2_OTHER: 17,
} as const;
export type ParseStatus = (typeof ParseStatus)[keyof typeof ParseStatus];
export const PARSE_STATUS_COUNT = 18;

export const ETH_P_IP = 0x0800;
export const ETH_P_ARP = 0x0806;
export const ETH_P_8021Q = 0x8100;
export const ETH_P_IPV6 = 0x86dd;
export const ETH_HLEN = 14;
export const VLAN_HLEN = 4;

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;

export const ICMP_ECHOREPLY = 0;
export const ICMP_DEST_UNREACH = 3;
export const ICMP_SOURCE_QUENCH = 4;
export const ICMP_REDIRECT = 5;
export const ICMP_ECHO = 8;
export const ICMP_TIME_EXCEEDED = 11;
export const ICMP_PARAMETERPROB = 12;
/** Codes of ICMP_DEST_UNREACH used by the director. */
export const ICMP_PORT_UNREACH = 3;
export const ICMP_FRAG_NEEDED = 4;

export class FrameView {
  // --- buffer ---
  buf: Uint8Array = new Uint8Array(0);
  dv: DataView = new DataView(new ArrayBuffer(0));
  /** Absolute offset of the frame's first byte in `buf`. */
  base = 0;
  /** Frame length in bytes. */
  len = 0;

  // --- L2 ---
  /** 802.1Q TCI of a single VLAN tag, or -1 when untagged. */
  vlanTci = -1;
  /** Ethertype after any VLAN tag. */
  etherType = 0;
  /** Absolute offset of the L3 header (after Ethernet and VLAN). */
  l3Off = 0;

  // --- ARP (etherType 0x0806, Ethernet/IPv4 only) ---
  arpOp = 0;
  /** Sender / target protocol addresses, uint32. Hardware addresses at l3Off+8 / l3Off+18. */
  arpSpa = 0;
  arpTpa = 0;

  // --- IPv4 ---
  ipHdrLen = 0;
  /** Total length from the IP header (the frame may carry Ethernet padding beyond it). */
  ipTotalLen = 0;
  /** IP protocol number. */
  proto = 0;
  saddr = 0;
  daddr = 0;
  ttl = 0;
  ipId = 0;
  /** 1 when DF is set. */
  df = 0;
  /** 1 when MF is set. */
  mf = 0;
  /** Fragment offset in 8-byte units. */
  fragOff = 0;
  /** 1 for a later fragment (fragOff > 0): no L4 header in this frame. */
  laterFrag = 0;
  /** 1 for any fragment (mf or fragOff > 0). */
  isFrag = 0;

  // --- L4 (valid when laterFrag === 0 and proto is TCP/UDP/ICMP) ---
  /** Absolute offset of the L4 header, or -1 when there is none (later fragment, other proto). */
  l4Off = -1;
  /** Bytes from l4Off to the end of the IP packet (ipTotalLen - ipHdrLen). */
  l4Len = 0;
  /** TCP/UDP ports; for ICMP echo sport = dport = identifier. 0 otherwise. */
  sport = 0;
  dport = 0;
  /** TCP flags byte (FIN..URG, ECE, CWR), 0 for other protocols. */
  tcpFlags = 0;
  tcpHdrLen = 0;
  /** MSS from the TCP options, or -1 when absent. */
  mss = -1;
  /** Absolute offset of the L4 payload (after TCP/UDP/ICMP header). */
  payloadOff = 0;

  // --- ICMP ---
  icmpType = -1;
  icmpCode = -1;
  /** For ICMP errors (3, 4, 5, 11, 12): offset of the embedded IP header, else -1. */
  innerL3Off = -1;
  innerHdrLen = 0;
  innerProto = 0;
  innerSaddr = 0;
  innerDaddr = 0;
  /** Ports of the embedded TCP/UDP header (first 8 bytes), 0 when absent. */
  innerSport = 0;
  innerDport = 0;
  /** Offset of the embedded L4 header, or -1 when fewer than 8 bytes are present / later fragment. */
  innerL4Off = -1;
}
