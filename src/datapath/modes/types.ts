/**
 * A forwarding mode (ip_vs_xmit.c has one transmit function per mode). The mode is bound to a
 * connection once, when it is created: the connection stores its forwarding method and the
 * engine indexes its mode table by it — no switch on the mode per packet.
 *
 * Each function rewrites the frame in place (addresses, ports, checksums, encapsulation; the
 * engine has already decremented the TTL when the mode routes the packet as an IP hop, and
 * sets the Ethernet addresses afterwards) and returns the IPv4 address whose route and
 * neighbour decide where the frame goes next, as an int32 (`addr | 0`, so that V8 never boxes
 * it), or -1 (255.255.255.255, never a next hop) to drop it, with the reason in `cx.drop`. A
 * mode that moves the frame's start or changes its length updates `v.base` / `v.len`; it may
 * use `cx.room` bytes after the frame's end.
 *
 * A mode sees the director only through ModeContext: the connection's service and dest, the
 * room in the frame's slot, routes and link properties, and an ICMP error sender.
 */
import type { Dest, FwdMethod, Service } from "../../tables/model.js";
import type { ConnTable } from "../conntrack/table.js";
import type { FrameView } from "../packet/view.js";

export interface ModeContext {
  /** Connection c's service and dest (undefined once removed). */
  service(c: number): Service | undefined;
  dest(c: number): Dest | undefined;
  /** Bytes free after the frame's end in its slot. */
  readonly room: number;
  /** Drop reason when the mode returns -1 (written by the mode). */
  drop: number;
  /** The link a packet to `addr` leaves by, or -1 when there is no route. */
  route(addr: number): number;
  /** MTU of link `l` (from `route`). */
  linkMtu(l: number): number;
  /** Primary address of link `l`, as uint32. */
  linkAddr(l: number): number;
  /** Send an ICMP error about `v` back to its source (src 0: the egress link's address). */
  sendIcmpError(v: FrameView, type: number, code: number, mtu: number, src: number): void;
}

export interface ForwardMode {
  readonly kind: FwdMethod;
  /** Replies bypass the director, so TCP uses the input-only transitions (DR, TUN). */
  readonly inputOnly: boolean;
  /**
   * The director is an IP hop for this mode's packets (NAT, FULLNAT): the engine decrements the
   * TTL (and answers TTL 1 with time exceeded). DR leaves the IP packet untouched and TUN
   * carries it unchanged inside the tunnel.
   */
  readonly decrementsTtl: boolean;
  /**
   * The mode compares the packet with its path MTU itself (TUN: the tunnel header and the
   * dest's learned path MTU). For the others the engine compares the IP packet with the egress
   * link's MTU before the mode runs, as ip_vs_xmit.c's ensure_mtu_is_adequate does.
   */
  readonly checksMtu: boolean;
  /** Client -> real server. */
  inbound(v: FrameView, ct: ConnTable, c: number, cx: ModeContext): number;
  /** Real server -> client (only modes that see replies: NAT, FULLNAT). */
  outbound(v: FrameView, ct: ConnTable, c: number, cx: ModeContext): number;
  /** ICMP error from the client side about a reply of connection c, to be relayed to the real server. */
  icmpIn(v: FrameView, ct: ConnTable, c: number, cx: ModeContext): number;
  /** ICMP error from the real-server side about a packet of connection c, to be relayed to the client. */
  icmpOut(v: FrameView, ct: ConnTable, c: number, cx: ModeContext): number;
}
