/**
 * The tuples the XDP SYN-cookie responder must leave to lvsd (src/datapath/synresponder.ts): a
 * byte per slot of a 2^HELD_BITS array that lvsd and the XDP program share (a BPF_F_MMAPABLE
 * array map). The connection table counts its SYN-proxy entries there by client tuple from
 * ConnTable.hold until they close (TIME_WAIT, CLOSE: then a new connection's cookie ACK replaces
 * them, conn_reuse_mode) or go; the program passes a SYN whose slot is not 0 on to lvsd, which
 * handles it as the kernel would (a SYN on an established entry goes to its real server, whose
 * challenge ACK makes the client reset it). A count that reached 255 stays there.
 *
 * The slot: a 32-bit multiply-xorshift mix of the client address, the VIP and the two ports,
 * the numbers as they read in network order, which synack.ts computes the same way.
 */
export const HELD_BITS = 22;
export const HELD_SLOTS = 1 << HELD_BITS;
export const HELD_M1 = 0x9e3779b1 | 0;
export const HELD_M2 = 0x85ebca6b | 0;
export const HELD_M3 = 0xc2b2ae35 | 0;
export const HELD_SEED = 0x2545f491;

/** The slot of client `saddr:sport` to `daddr:dport`. */
export function heldIndex(saddr: number, daddr: number, sport: number, dport: number): number {
  let h = Math.imul(saddr ^ HELD_SEED, HELD_M1);
  h = Math.imul(daddr ^ h ^ (h >>> 15), HELD_M2);
  h = Math.imul(((sport << 16) | dport) ^ h ^ (h >>> 13), HELD_M3);
  return (h ^ (h >>> 16)) >>> (32 - HELD_BITS);
}
