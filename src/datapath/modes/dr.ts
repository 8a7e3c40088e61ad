/**
 * LVS-DR (direct routing, ipvsadm -g): the frame goes to the real server's MAC on the same L2
 * segment with the IP packet untouched (the real server has the VIP on a non-ARPing interface,
 * usually lo). Replies go from the real server to the client directly, so connections use the
 * input-only TCP transitions. ICMP errors from the client side about those replies are passed
 * to the real server the same way (ip_vs_icmp_xmit uses the connection's transmitter).
 */

import { FwdMethod } from "../../tables/model.js";
import type { ConnTable } from "../conntrack/table.js";
import { Drop } from "../drops.js";
import type { FrameView } from "../packet/view.js";
import type { ForwardMode, ModeContext } from "./types.js";

export const drMode: ForwardMode = {
  kind: FwdMethod.ROUTE,
  inputOnly: true,
  decrementsTtl: false,
  checksMtu: false,
  inbound(_v: FrameView, ct: ConnTable, c: number): number {
    return ct.daddr[c]! | 0;
  },
  outbound(_v: FrameView, _ct: ConnTable, _c: number, cx: ModeContext): number {
    cx.drop = Drop.ICMP_UNRELATED;
    return -1;
  },
  icmpIn(_v: FrameView, ct: ConnTable, c: number): number {
    return ct.daddr[c]! | 0;
  },
  icmpOut(_v: FrameView, _ct: ConnTable, _c: number, cx: ModeContext): number {
    cx.drop = Drop.ICMP_UNRELATED;
    return -1;
  },
};
