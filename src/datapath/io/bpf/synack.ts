/**
 * The XDP SYN-cookie responder's program (issue 14; attached by lvsd on raw= links with
 * synproxy-xdp=, src/datapath/synresponder.ts keeps its maps): a SYN to a SYN-proxy service is turned, in the driver, into the cookie SYN-ACK that the engine's
 * SYN proxy would send (src/datapath/synproxy.ts: the same cookie, the same 58-byte frame) and
 * sent back with XDP_TX; everything else goes on (XDP_PASS) to lvsd, which checks the client's
 * ACK against the same secret as now.
 *
 * Maps (made by the caller):
 * - config (ARRAY, one 24-byte entry): k0, k1 (the secret, u32), the cookie time counter (u32),
 *   the MSS the SYN-ACK offers (u32), our MAC (6 bytes), 2 bytes of padding;
 * - services (HASH, 8-byte key): the VIP and port as on the wire (4 + 2 bytes), 2 zero bytes;
 * - routes (LPM_TRIE, key u32 prefix length + 4 address bytes as on the wire; 8-byte value): the
 *   director's routes as seen from the link the program is on: the next hop's MAC (6 bytes) and
 *   a kind byte: ROUTE_VIA_SENDER (a connected subnet of this link: the reply goes to the SYN's
 *   source MAC), ROUTE_VIA_MAC (via a gateway on this link whose MAC is known: to that MAC),
 *   ROUTE_ELSEWHERE (another link, or a gateway not resolved yet: lvsd answers);
 * - stats (ARRAY of u64): SYN-ACKs sent (STAT_SENT), frames dropped for a martian source
 *   (STAT_MARTIAN);
 * - held (optional; ARRAY of 8-byte values, HELD_SLOTS / 8 of them): the tuples lvsd holds entries
 *   for (below).
 *
 * It answers only what the engine would answer the same way, and passes the rest: Ethernet II to
 * our MAC; IPv4 without options, not a fragment, a good header checksum, total length within
 * the frame, no martian address (a martian source is dropped: XDP_DROP, counted); TCP with SYN and neither ACK nor RST, with no options (MSS 536,
 * as the engine assumes then) or the MSS option first among them; a service in the map (the caller keeps there only services the engine
 * would answer: VIPs it owns, no mark rules); a route back to the source through this link (as
 * the engine's rp_filter and routing would have it). A SYN whose tuple has an entry in lvsd's
 * table is answered all the same (the engine lets the cookie's ACK replace a closing entry),
 * unless the caller gives `heldFd`: then a SYN whose tuple counts in that array (its byte at
 * conntrack/held.ts heldIndex: an array map of 8-byte values, the slot's element slot >> 3, its
 * byte slot & 7) goes to lvsd, which handles it as the kernel would.
 */

import { HELD_BITS, HELD_M1, HELD_M2, HELD_M3, HELD_SEED } from "../../conntrack/held.js";
import {
  Asm,
  BPF_FUNC_map_lookup_elem,
  BPF_FUNC_redirect_map,
  BPF_FUNC_xdp_adjust_tail,
  BPF_FUNC_xdp_get_buff_len,
  BPF_JEQ,
  BPF_JGE,
  BPF_JGT,
  BPF_JLT,
  BPF_JNE,
  type Reg,
  XDP_DROP,
  XDP_PASS,
  XDP_TX,
} from "./asm.js";
import { emitKeyedHash } from "./hsiphash.js";

export const SYNACK_CONFIG_BYTES = 24;
export const ROUTE_VIA_SENDER = 0;
export const ROUTE_VIA_MAC = 1;
export const ROUTE_ELSEWHERE = 2;
/** The stats map's keys: SYN-ACKs sent, frames dropped for a martian source. */
export const STAT_SENT = 0;
export const STAT_MARTIAN = 1;
export const STAT_KEYS = 2;
const FRAME = 58; // Ethernet 14 + IPv4 20 + TCP 24 (the MSS option)
const MIN_FRAME = 54; // a SYN without options
const H1_WORD = 0x10000;

/** Sum the `n` big-endian 16-bit words at r7 + off into `acc` (with `tmp`). */
function sumWords(a: Asm, acc: Reg, tmp: Reg, off: number, n: number): void {
  for (let k = 0; k < n; k++)
    a.ldx(2, tmp, 7, off + 2 * k)
      .be(tmp, 16)
      .add32(acc, tmp);
}

/** acc = the ones'-complement checksum of the sum in acc, big-endian, ready to store. */
function finish(a: Asm, acc: Reg, tmp: Reg): void {
  for (let k = 0; k < 2; k++) a.mov32(tmp, acc).rsh32i(tmp, 16).and32i(acc, 0xffff).add32(acc, tmp);
  a.xor32i(acc, 0xffff).be(acc, 16);
}

/**
 * `xskMapFd`: on an AF_XDP link (`--link xdp=...,synproxy-xdp=`), what is not answered or dropped
 * goes to the AF_XDP socket of its receive queue (bpf_redirect_map on that XSKMAP, keyed by
 * rx_queue_index; XDP_PASS when the queue has no socket), as lvsd's own redirect=all program.
 */
export function synAckProgram(
  configFd: number,
  servicesFd: number,
  routesFd: number,
  statsFd: number,
  xskMapFd?: number,
  heldFd?: number,
): Uint8Array {
  const a = new Asm();
  // r6 = ctx, r7 = data, r8 = data_end, r9 = the config entry
  a.mov64(6, 1);
  a.mov32i(2, 0).stx(4, 10, -4, 2);
  a.ldMapFd(1, configFd).mov64(2, 10).add64i(2, -4).call(BPF_FUNC_map_lookup_elem);
  a.ji(BPF_JEQ, 0, 0, "pass_null");
  a.mov64(9, 0);
  a.ldx(4, 7, 6, 0).ldx(4, 8, 6, 4);
  a.mov64(2, 7).add64i(2, MIN_FRAME).jx(BPF_JGT, 2, 8, "pass");
  // our MAC
  a.ldx(4, 2, 7, 0).ldx(4, 3, 9, 16).j32x(BPF_JNE, 2, 3, "pass");
  a.ldx(2, 2, 7, 4).ldx(2, 3, 9, 20).j32x(BPF_JNE, 2, 3, "pass");
  // IPv4 (loads are little-endian: 08 00 reads 0x0008), IHL 5, not a fragment, TCP
  a.ldx(2, 2, 7, 12).j32i(BPF_JNE, 2, 0x0008, "pass");
  a.ldx(1, 2, 7, 14).j32i(BPF_JNE, 2, 0x45, "pass");
  a.ldx(2, 2, 7, 20).and32i(2, 0xff3f).j32i(BPF_JNE, 2, 0, "pass");
  a.ldx(1, 2, 7, 23).j32i(BPF_JNE, 2, 6, "pass");
  // SYN without ACK or RST (the engine's SYN-proxy test); no options (the engine's MSS is then
  // 536), or the MSS option first; the client's MSS at fp-72
  a.ldx(1, 2, 7, 47).and32i(2, 0x16).j32i(BPF_JNE, 2, 0x02, "pass");
  a.ldx(1, 2, 7, 46).rsh32i(2, 4).j32i(BPF_JLT, 2, 5, "pass");
  a.mov32i(3, 536).j32i(BPF_JEQ, 2, 5, "mss_in");
  a.mov64(3, 7).add64i(3, FRAME).jx(BPF_JGT, 3, 8, "pass");
  a.ldx(1, 3, 7, 54).j32i(BPF_JNE, 3, 2, "pass");
  a.ldx(1, 3, 7, 55).j32i(BPF_JNE, 3, 4, "pass");
  a.ldx(2, 3, 7, 56).be(3, 16);
  a.label("mss_in").stx(4, 10, -72, 3);
  // total length: at least the headers, within the frame
  a.ldx(2, 3, 7, 16).be(3, 16);
  a.lsh32i(2, 2).add32i(2, 20).j32x(BPF_JGT, 2, 3, "pass");
  a.mov64(5, 7).add64i(5, 14).add64(5, 3).jx(BPF_JGT, 5, 8, "pass");
  // the header checksum: the ten words sum to 0xffff
  a.mov32i(2, 0);
  sumWords(a, 2, 3, 14, 10);
  for (let k = 0; k < 2; k++) a.mov32(3, 2).rsh32i(3, 16).and32i(2, 0xffff).add32(2, 3);
  a.j32i(BPF_JNE, 2, 0xffff, "pass");
  // no martian destination (first octet 0, 127, 224 and up: lvsd decides); a martian source is
  // dropped here and counted (the engine drops it too, as martian_src: under a flood from
  // random sources, about one SYN in seven)
  a.ldx(1, 2, 7, 30).j32i(BPF_JEQ, 2, 0, "pass").j32i(BPF_JEQ, 2, 127, "pass").j32i(BPF_JGE, 2, 224, "pass");
  a.ldx(1, 2, 7, 26)
    .j32i(BPF_JEQ, 2, 0, "martian")
    .j32i(BPF_JEQ, 2, 127, "martian")
    .j32i(BPF_JGE, 2, 224, "martian");
  // a SYN-proxy service: key VIP, port, 0 at fp-16
  a.ldx(4, 2, 7, 30).stx(4, 10, -16, 2).ldx(2, 2, 7, 36).stx(2, 10, -12, 2).mov32i(2, 0).stx(2, 10, -10, 2);
  a.ldMapFd(1, servicesFd).mov64(2, 10).add64i(2, -16).call(BPF_FUNC_map_lookup_elem);
  a.ji(BPF_JEQ, 0, 0, "pass_null");
  // the route back to the source (key: length 32, the source at fp-56); its value kept at fp-64
  a.mov32i(2, 32).stx(4, 10, -56, 2).ldx(4, 2, 7, 26).stx(4, 10, -52, 2);
  a.ldMapFd(1, routesFd).mov64(2, 10).add64i(2, -56).call(BPF_FUNC_map_lookup_elem);
  a.ji(BPF_JEQ, 0, 0, "pass_null");
  a.ldx(8, 2, 0, 0).stx(8, 10, -64, 2);
  a.ldx(1, 2, 10, -58).j32i(BPF_JGE, 2, ROUTE_ELSEWHERE, "pass");
  // the hash's inputs at fp-32..-20 (saddr, daddr, ports, word), the ISN at fp-36, the MSS index at fp-40
  a.ldx(4, 2, 7, 26).be(2, 32).stx(4, 10, -32, 2);
  a.ldx(4, 2, 7, 30).be(2, 32).stx(4, 10, -28, 2);
  a.ldx(2, 2, 7, 34).be(2, 16).lsh32i(2, 16).ldx(2, 3, 7, 36).be(3, 16).or32(2, 3).stx(4, 10, -24, 2);
  a.ldx(4, 2, 7, 38).be(2, 32).stx(4, 10, -36, 2);
  if (heldFd !== undefined) {
    // a tuple lvsd holds an entry for goes to lvsd: its slot (conntrack/held.ts heldIndex) from
    // the words at fp-32..-24, the array element slot >> 3 (key at fp-8), the byte slot & 7
    a.ldx(4, 2, 10, -32).xor32i(2, HELD_SEED).mul32i(2, HELD_M1);
    a.ldx(4, 3, 10, -28).xor32(3, 2).mov32(4, 2).rsh32i(4, 15).xor32(3, 4).mul32i(3, HELD_M2);
    a.ldx(4, 2, 10, -24).xor32(2, 3).mov32(4, 3).rsh32i(4, 13).xor32(2, 4).mul32i(2, HELD_M3);
    a.mov32(4, 2)
      .rsh32i(4, 16)
      .xor32(2, 4)
      .rsh32i(2, 32 - HELD_BITS);
    a.mov32(3, 2).and32i(3, 7).stx(4, 10, -76, 3);
    a.rsh32i(2, 3).stx(4, 10, -8, 2);
    a.ldMapFd(1, heldFd).mov64(2, 10).add64i(2, -8).call(BPF_FUNC_map_lookup_elem);
    a.ji(BPF_JEQ, 0, 0, "unheld");
    a.ldx(4, 3, 10, -76).and32i(3, 7).add64(0, 3).ldx(1, 2, 0, 0).j32i(BPF_JNE, 2, 0, "pass");
    a.label("unheld");
  }
  a.ldx(4, 2, 10, -72);
  a.mov32i(3, 3).j32i(BPF_JGE, 2, 1460, "mss");
  a.mov32i(3, 2).j32i(BPF_JGE, 2, 1440, "mss");
  a.mov32i(3, 1).j32i(BPF_JGE, 2, 1300, "mss");
  a.mov32i(3, 0);
  a.label("mss").stx(4, 10, -40, 3);
  const hash = (): void =>
    emitKeyedHash(a, {
      v0: 1,
      v1: 2,
      v2: 3,
      v3: 4,
      tmp: 5,
      out: 0,
      word: (asm, w, into) => {
        asm.ldx(4, into, 10, -32 + 4 * w);
      },
      key: (asm, v0, v1) => {
        asm.ldx(4, v0, 9, 0).ldx(4, v1, 9, 4);
      },
    });
  a.mov32i(2, H1_WORD).stx(4, 10, -20, 2);
  hash();
  a.stx(4, 10, -44, 0); // h1
  a.ldx(4, 2, 9, 8).stx(4, 10, -20, 2);
  hash(); // r0 = h2
  // cookie = h1 + isn + (count << 24) + ((h2 + mssIndex) & 0xffffff), at fp-48
  a.ldx(4, 2, 10, -40).add32(0, 2).and32i(0, 0xffffff);
  a.ldx(4, 2, 10, -44).add32(0, 2);
  a.ldx(4, 2, 10, -36).add32(0, 2);
  a.ldx(4, 2, 9, 8).lsh32i(2, 24).add32(0, 2);
  a.stx(4, 10, -48, 0);
  // cut the frame to the SYN-ACK's 58 bytes
  a.mov64(1, 6).call(BPF_FUNC_xdp_get_buff_len);
  a.mov64i(2, FRAME).raw(0x1f, 2, 0, 0, 0); // r2 -= r0 (BPF_ALU64 | BPF_SUB | BPF_X)
  a.mov64(1, 6).call(BPF_FUNC_xdp_adjust_tail);
  a.ji(BPF_JNE, 0, 0, "pass_null");
  a.ldx(4, 7, 6, 0).ldx(4, 8, 6, 4);
  a.mov64(2, 7).add64i(2, FRAME).jx(BPF_JGT, 2, 8, "pass_null");
  // Ethernet: to the route's next hop (the sender, or the gateway's MAC), from our MAC
  a.ldx(1, 2, 10, -58).j32i(BPF_JEQ, 2, ROUTE_VIA_SENDER, "to_sender");
  a.ldx(4, 2, 10, -64).stx(4, 7, 0, 2).ldx(2, 2, 10, -60).stx(2, 7, 4, 2).ja("to_done");
  a.label("to_sender").ldx(4, 2, 7, 6).stx(4, 7, 0, 2).ldx(2, 2, 7, 10).stx(2, 7, 4, 2);
  a.label("to_done");
  a.ldx(4, 2, 9, 16).stx(4, 7, 6, 2).ldx(2, 2, 9, 20).stx(2, 7, 10, 2);
  // IPv4: tos 0, length 44, id 0, DF, TTL 64, addresses swapped
  a.mov32i(2, 0).stx(1, 7, 15, 2).stx(2, 7, 18, 2).stx(2, 7, 24, 2);
  a.mov32i(2, 0x2c00).stx(2, 7, 16, 2);
  a.mov32i(2, 0x0040).stx(2, 7, 20, 2);
  a.mov32i(2, 64).stx(1, 7, 22, 2);
  a.ldx(4, 2, 7, 26).ldx(4, 3, 7, 30).stx(4, 7, 26, 3).stx(4, 7, 30, 2);
  // TCP: ports swapped, seq = cookie, ack = ISN + 1, 24-byte header, SYN|ACK, window 4096, MSS
  a.ldx(2, 2, 7, 34).ldx(2, 3, 7, 36).stx(2, 7, 34, 3).stx(2, 7, 36, 2);
  a.ldx(4, 2, 10, -48).be(2, 32).stx(4, 7, 38, 2);
  a.ldx(4, 2, 10, -36).add32i(2, 1).be(2, 32).stx(4, 7, 42, 2);
  a.mov32i(2, 0x60).stx(1, 7, 46, 2);
  a.mov32i(2, 0x12).stx(1, 7, 47, 2);
  a.mov32i(2, 0x0010).stx(2, 7, 48, 2);
  a.mov32i(2, 0).stx(2, 7, 50, 2).stx(2, 7, 52, 2);
  a.mov32i(2, 0x0402).stx(2, 7, 54, 2);
  a.ldx(4, 2, 9, 12).be(2, 16).stx(2, 7, 56, 2);
  // checksums
  a.mov32i(2, 0);
  sumWords(a, 2, 3, 14, 10);
  finish(a, 2, 3);
  a.stx(2, 7, 24, 2);
  a.mov32i(2, 6 + 24);
  sumWords(a, 2, 3, 26, 4); // the pseudo-header's addresses
  sumWords(a, 2, 3, 34, 12);
  finish(a, 2, 3);
  a.stx(2, 7, 50, 2);
  // count it (the key at fp-4: the hash used that slot)
  a.mov32i(2, STAT_SENT).stx(4, 10, -4, 2);
  a.ldMapFd(1, statsFd).mov64(2, 10).add64i(2, -4).call(BPF_FUNC_map_lookup_elem);
  a.ji(BPF_JEQ, 0, 0, "tx");
  a.mov64i(1, 1).atomicAdd64(0, 0, 1);
  a.label("tx").ret(XDP_TX);
  a.label("pass").label("pass_null");
  if (xskMapFd === undefined) a.ret(XDP_PASS);
  else {
    a.ldx(4, 2, 6, 16); // ctx->rx_queue_index
    a.ldMapFd(1, xskMapFd).mov64i(3, XDP_PASS).call(BPF_FUNC_redirect_map).exit();
  }
  a.label("martian").mov32i(2, STAT_MARTIAN).stx(4, 10, -4, 2);
  a.ldMapFd(1, statsFd).mov64(2, 10).add64i(2, -4).call(BPF_FUNC_map_lookup_elem);
  a.ji(BPF_JEQ, 0, 0, "drop");
  a.mov64i(1, 1).atomicAdd64(0, 0, 1);
  a.label("drop").ret(XDP_DROP);
  return a.bytes();
}
