/**
 * A forwarding mode (ip_vs_xmit.c has one transmit function per mode). The mode is bound to a
 * connection once, when it is created: the connection stores its forwarding method and the
 * engine indexes `modes[fwd]` — no switch on the mode per packet.
 *
 * Each function rewrites the frame in place (addresses, ports, checksums; the engine handles
 * TTL and the Ethernet header) and returns the IPv4 address whose route and neighbour decide
 * where the frame goes next, or -1 to drop it (the mode bumps no counter; the engine counts
 * MODE_FAILED).
 */
import type { ConnTable } from "../conntrack/table.js";
import type { FwdMethod } from "../model.js";
import type { FrameView } from "../packet/view.js";

export interface ForwardMode {
  readonly kind: FwdMethod;
  /** Replies bypass the director, so TCP uses the input-only transitions (DR, TUN). */
  readonly inputOnly: boolean;
  /** Client -> real server. */
  inbound(v: FrameView, ct: ConnTable, c: number): number;
  /** Real server -> client (only modes that see replies: NAT, FULLNAT). */
  outbound(v: FrameView, ct: ConnTable, c: number): number;
  /** ICMP error from the client side about a reply of connection c, to be relayed to the real server. */
  icmpIn(v: FrameView, ct: ConnTable, c: number): number;
  /** ICMP error from the real-server side about a packet of connection c, to be relayed to the client. */
  icmpOut(v: FrameView, ct: ConnTable, c: number): number;
}
