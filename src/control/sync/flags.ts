/**
 * lvs-ts connection flags and forwarding methods ↔ the kernel's IP_VS_CONN_F_* on the sync wire.
 *
 * The numbers differ: lvs-ts's FwdMethod is MASQ 0, ROUTE 1, TUNNEL 2, FULLNAT 3, LOCAL 4
 * (src/tables/model.ts); the kernel's fwd bits are MASQ 0, LOCALNODE 1, TUNNEL 2, DROUTE 3,
 * BYPASS 4 (no FULLNAT in mainline; 5 as in the Alibaba FULLNAT kernel and DPVS). The table's
 * flag byte (src/datapath/conntrack/table.ts) uses its own bits too. TCP states need no mapping:
 * IP_VS_TCP_S_* and TcpState have the same numbers.
 */
import {
  CONN_F_INACTIVE,
  CONN_F_NOOUTPUT,
  CONN_F_ONE_PACKET,
  CONN_F_TEMPLATE,
} from "../../datapath/conntrack/table.js";
import { FWD_TO_KERNEL } from "../../datapath/packet/ipvs-sync.js";
import { FwdMethod } from "../../tables/model.js";
import {
  IP_VS_CONN_F_BYPASS,
  IP_VS_CONN_F_DROUTE,
  IP_VS_CONN_F_FULLNAT,
  IP_VS_CONN_F_FWD_MASK,
  IP_VS_CONN_F_INACTIVE,
  IP_VS_CONN_F_LOCALNODE,
  IP_VS_CONN_F_MASQ,
  IP_VS_CONN_F_NOOUTPUT,
  IP_VS_CONN_F_ONE_PACKET,
  IP_VS_CONN_F_TEMPLATE,
  IP_VS_CONN_F_TUNNEL,
} from "./wire.js";

/** Kernel fwd bits of an lvs-ts forwarding method (the data path's table, packet/ipvs-sync.ts). */
export function fwdToKernel(fwd: FwdMethod): number {
  return FWD_TO_KERNEL[fwd]!;
}

/** lvs-ts forwarding method of kernel flags, or -1 (BYPASS, 6, 7: nothing lvs-ts does). */
export function fwdFromKernel(kflags: number): FwdMethod | -1 {
  switch (kflags & IP_VS_CONN_F_FWD_MASK) {
    case IP_VS_CONN_F_MASQ:
      return FwdMethod.MASQ;
    case IP_VS_CONN_F_LOCALNODE:
      return FwdMethod.LOCAL;
    case IP_VS_CONN_F_TUNNEL:
      return FwdMethod.TUNNEL;
    case IP_VS_CONN_F_DROUTE:
      return FwdMethod.ROUTE;
    case IP_VS_CONN_F_FULLNAT:
      return FwdMethod.FULLNAT;
    case IP_VS_CONN_F_BYPASS:
      return -1;
    default:
      return -1;
  }
}

const PAIRS: readonly (readonly [number, number])[] = [
  [CONN_F_TEMPLATE, IP_VS_CONN_F_TEMPLATE],
  [CONN_F_INACTIVE, IP_VS_CONN_F_INACTIVE],
  [CONN_F_NOOUTPUT, IP_VS_CONN_F_NOOUTPUT],
  [CONN_F_ONE_PACKET, IP_VS_CONN_F_ONE_PACKET],
];

/**
 * Kernel flags for a connection of the table: its TEMPLATE, INACTIVE, NOOUTPUT and ONE_PACKET
 * bits and its forwarding method. The table's internal bits (USED, HASHED_*, INVALID) are not
 * sent; SEQ bits are the caller's (they go with the seq option).
 */
export function connFlagsToKernel(tableFlags: number, fwd: FwdMethod): number {
  let k = fwdToKernel(fwd);
  for (const [t, kf] of PAIRS) if (tableFlags & t) k |= kf;
  return k;
}

/** The table's flag bits for kernel flags (the inverse of `connFlagsToKernel`, fwd aside). */
export function connFlagsFromKernel(kflags: number): number {
  let t = 0;
  for (const [tf, kf] of PAIRS) if (kflags & kf) t |= tf;
  return t;
}
