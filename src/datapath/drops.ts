/**
 * Drop reasons: parse statuses first (src/datapath/packet/view.ts ParseStatus, same numbers), then the
 * engine's own. Counters are a Float64Array indexed by these values.
 */
import { PARSE_STATUS_COUNT } from "./packet/view.js";

const P = PARSE_STATUS_COUNT;

export const Drop = {
  /** IPv4 fragment with no L4 header (reassembly is not supported; see docs/architecture.md). */
  FRAGMENT: P,
  /** TCP/UDP packet to an address/port with no service and no connection. */
  NO_SERVICE: P + 1,
  /** Non-SYN TCP packet with no connection (and sloppy_tcp off). */
  NO_CONN: P + 2,
  /** Service has no usable dest: ICMP port unreachable was sent. */
  NO_DEST: P + 3,
  /** Connection table full and nothing could be evicted. */
  TABLE_FULL: P + 4,
  /** TTL would reach 0: ICMP time exceeded was sent. */
  TTL_EXCEEDED: P + 5,
  NO_ROUTE: P + 6,
  /** Next hop's MAC unknown: an ARP request was sent. */
  NEIGH_MISS: P + 7,
  /** ICMP error that matches no connection, or an ICMP type IPVS does not relay. */
  ICMP_UNRELATED: P + 8,
  /** Packet of a connection whose dest was removed (expire_nodest_conn): connection expired. */
  NODEST_CONN: P + 9,
  /** No room in the transmit batch for a frame the director generates. */
  TX_FULL: P + 10,
  /** IP protocol other than TCP, UDP, ICMP. */
  PROTO: P + 11,
  /** The dest's forwarding method has no mode in this build. */
  MODE_UNSUPPORTED: P + 12,
  /** The mode refused the packet. */
  MODE_FAILED: P + 13,
  /** ARP not for us (not our address or VIP on that link). */
  ARP_NOT_OURS: P + 14,
  /** Traffic to the director's own address that it does not serve (only ARP and echo are). */
  LOCAL: P + 15,
  /** Too big for the tunnel's path MTU (fragmentation-needed sent when DF is set). */
  TOO_BIG: P + 16,
  /** FULLNAT service without a free local address/port: ICMP port unreachable was sent. */
  LADDR_EXHAUSTED: P + 17,
  /**
   * To an address VRRP says the director does not own now (its instance is not MASTER;
   * net/owner.ts): a new connection, an echo request, or an ARP request for it.
   */
  NOT_OWNER: P + 18,
  /** A frame to a unicast MAC that is not the link's, or to a group MAC but neither ARP nor IPv4 multicast. */
  NOT_OUR_MAC: P + 19,
  /** IPv4 from 0.0.0.0/8, 127.0.0.0/8, 224.0.0.0/4 or 240.0.0.0/4 (Linux's martian sources). */
  MARTIAN_SRC: P + 20,
  /** IPv4 to 0.0.0.0/8, 127.0.0.0/8 or 240.0.0.0/4 but the limited broadcast. */
  MARTIAN_DST: P + 21,
  /** A new connection or an echo request whose source is routed out of another link (rp_filter). */
  RP_FILTER: P + 22,
  /**
   * A new connection's first packet dropped by the defence's drop_packet strategy (one in
   * drop_rate while memory is short; src/control/defense.ts).
   */
  DEFENSE: P + 23,
  /**
   * SYN proxy (synproxy.ts): an ACK with no connection to a SYN-proxy service whose ack - 1 is
   * not a cookie of ours from the current or previous time slot (forged, or too old).
   */
  SYN_COOKIE_BAD: P + 24,
  /**
   * SYN proxy: a valid cookie ACK, but every stash buffer holds a handshake under way (the
   * client's next segment proves the cookie again); or a client packet that does not fit the
   * stash while the real server's SYN-ACK is awaited.
   */
  SYNPROXY_STASH_FULL: P + 25,
  /**
   * SYN proxy: the real server's answer to the director's SYN has no ACK and no RST, or acknowledges
   * the SYN without SYN (one with an ACK of something else gets a reset: staleServerConns).
   */
  SYNPROXY_BAD_SYNACK: P + 26,
  /**
   * A new TCP connection refused because embryonic entries are at their bound
   * (`embryonic_share`) and none could be evicted.
   */
  EMBRYONIC_LIMIT: P + 27,
} as const;

export const DROP_COUNT = P + 28;

export const DROP_NAMES: readonly string[] = [
  "ok",
  "eth_short",
  "vlan_short",
  "arp_short",
  "arp_unsupported",
  "ip_short",
  "ip_bad_version",
  "ip_bad_ihl",
  "ip_bad_totlen",
  "ip_bad_csum",
  "ip_bad_options",
  "tcp_short",
  "tcp_bad_doff",
  "udp_short",
  "udp_bad_len",
  "icmp_short",
  "icmp_inner_short",
  "l2_other",
  "fragment",
  "no_service",
  "no_conn",
  "no_dest",
  "table_full",
  "ttl_exceeded",
  "no_route",
  "neigh_miss",
  "icmp_unrelated",
  "nodest_conn",
  "tx_full",
  "proto",
  "mode_unsupported",
  "mode_failed",
  "arp_not_ours",
  "local",
  "too_big",
  "laddr_exhausted",
  "not_owner",
  "not_our_mac",
  "martian_src",
  "martian_dst",
  "rp_filter",
  "drop_packet",
  "syn_cookie_bad",
  "synproxy_stash_full",
  "synproxy_bad_synack",
  "embryonic_limit",
];
