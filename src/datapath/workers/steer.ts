/**
 * The fanout program (docs/workers.md, "Which worker gets a frame"): a classic BPF program the
 * kernel runs for every frame an AF_PACKET fanout group receives (PACKET_FANOUT_CBPF); its
 * result, modulo the group's size, is the member (worker) that gets the frame. It keeps both
 * directions of a connection on the worker that holds it:
 *
 * 1. IPv4 TCP/UDP to a FULLNAT local address (a real server's reply): `dport % N`, the local
 *    port's slice (src/tables/laddr.ts gives worker i the ports p with p % N === i);
 * 2. to a VIP (a client's request): the client's end, `steerWorker(saddr, sport, N)`;
 * 3. from a NAT real server (its reply, to the client): the client's end, now the destination,
 *    `steerWorker(daddr, dport, N)`;
 * 4. any other TCP/UDP: by its source end;
 * 5. everything else (ARP, ICMP, VRRP, fragments, IPv6): worker 0.
 *
 * Loads are relative to the network header (SKF_NET_OFF) and the EtherType is the skb's
 * protocol (SKF_AD_PROTOCOL), so the program does not depend on where skb->data points and
 * sees through a VLAN tag the kernel took off. Addresses are compared one by one (a jeq and a
 * ja each, so jumps of any length work): at most MAX_STEER_ADDRS of them; beyond, the rest are
 * left out (their frames fall to rule 4), and `SteerProgram.truncated` says so.
 *
 * Control plane: built when the table changes, never per packet.
 */
import { FwdMethod } from "../../tables/model.js";
import type { ServiceTable } from "../../tables/services.js";
import { steerWorker } from "./protocol.js";

// Classic BPF opcodes (linux/filter.h, linux/bpf_common.h).
const LD = 0x00;
const LDX = 0x01;
const ST = 0x02;
const ALU = 0x04;
const JMP = 0x05;
const RET = 0x06;
const W = 0x00;
const H = 0x08;
const B = 0x10;
const ABS = 0x20;
const IND = 0x40;
const MEM = 0x60;
const MSH = 0xa0;
const K = 0x00;
const X = 0x08;
const A_SRC = 0x10; // BPF_RET | BPF_A
const MUL = 0x20;
const RSH = 0x70;
const MOD = 0x90;
const XOR = 0xa0;
const JA = 0x00;
const JEQ = 0x10;
const JSET = 0x40;
/** Offsets relative to the network header; the skb's protocol (ancillary data). */
export const SKF_NET_OFF = -0x100000;
export const SKF_AD_PROTOCOL = -0x1000;

/** Addresses the program compares at most (two instructions each; cBPF allows 4,096). */
export const MAX_STEER_ADDRS = 1900;

export interface SteerInsn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

export interface SteerProgram {
  insns: SteerInsn[];
  /** sock_filter structs in host byte order (what openRaw's fanout and setFanoutProgram take). */
  bytes: Uint8Array;
  /** Addresses left out for want of room. */
  truncated: number;
}

export interface SteerTables {
  /** FULLNAT local addresses (uint32). */
  laddrs: readonly number[];
  /** VIPs (uint32). */
  vips: readonly number[];
  /** Real servers whose replies come back through the director with the client's address: NAT. */
  natDests: readonly number[];
}

/** Build the fanout program for `count` workers. */
export function steerProgram(t: SteerTables, count: number): SteerProgram {
  const p: SteerInsn[] = [];
  const at = (): number => p.length;
  const emit = (code: number, k = 0, jt = 0, jf = 0): number => {
    p.push({ code, jt, jf, k: k | 0 });
    return p.length - 1;
  };
  // forward jumps fixed up once their targets are known
  const fix: { at: number; label: string }[] = [];
  const labels = new Map<string, number>();
  const ja = (label: string): void => {
    fix.push({ at: emit(JMP | JA), label });
  };
  let budget = MAX_STEER_ADDRS;
  let truncated = 0;
  const compare = (addrs: readonly number[], label: string): void => {
    for (const a of new Set(addrs.map((x) => x >>> 0))) {
      if (budget === 0) {
        truncated++;
        continue;
      }
      budget--;
      emit(JMP | JEQ | K, a, 0, 1); // equal: the next instruction (ja); else skip it
      ja(label);
    }
  };

  emit(LD | H | ABS, SKF_AD_PROTOCOL); // A = skb->protocol (host order)
  emit(JMP | JEQ | K, 0x0800, 1, 0);
  ja("zero");
  emit(LD | B | ABS, SKF_NET_OFF + 9); // IP protocol
  emit(JMP | JEQ | K, 6, 2, 0);
  emit(JMP | JEQ | K, 17, 1, 0);
  ja("zero");
  emit(LD | H | ABS, SKF_NET_OFF + 6); // flags and fragment offset: MF or an offset
  emit(JMP | JSET | K, 0x3fff, 0, 1);
  ja("zero");
  emit(LDX | B | MSH, SKF_NET_OFF); // X = IP header length
  emit(LD | W | ABS, SKF_NET_OFF + 16); // daddr
  compare(t.laddrs, "lport");
  compare(t.vips, "src");
  emit(LD | W | ABS, SKF_NET_OFF + 12); // saddr
  compare(t.natDests, "dst");
  ja("src");

  // the client is the source: hash(saddr, sport)
  labels.set("src", at());
  emit(LD | H | IND, SKF_NET_OFF + 0);
  emit(ALU | MUL | K, 0x9e37);
  emit(ST, 0);
  emit(LD | W | ABS, SKF_NET_OFF + 12);
  ja("hash");
  // the client is the destination: hash(daddr, dport)
  labels.set("dst", at());
  emit(LD | H | IND, SKF_NET_OFF + 2);
  emit(ALU | MUL | K, 0x9e37);
  emit(ST, 0);
  emit(LD | W | ABS, SKF_NET_OFF + 16);
  // A = addr, M[0] = port * 0x9e37: ((A ^ M[0]) * 0x9e3779b1) >>> 16, mod N
  labels.set("hash", at());
  emit(LDX | W | MEM, 0);
  emit(ALU | XOR | X);
  emit(ALU | MUL | K, 0x9e3779b1);
  emit(ALU | RSH | K, 16);
  emit(ALU | MOD | K, count);
  emit(RET | A_SRC);
  // a FULLNAT reply: the local port's slice
  labels.set("lport", at());
  emit(LD | H | IND, SKF_NET_OFF + 2);
  emit(ALU | MOD | K, count);
  emit(RET | A_SRC);
  labels.set("zero", at());
  emit(RET | K, 0);

  for (const f of fix) p[f.at]!.k = labels.get(f.label)! - f.at - 1;
  const bytes = new Uint8Array(p.length * 8);
  const dv = new DataView(bytes.buffer);
  const le = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  p.forEach((ins, i) => {
    dv.setUint16(i * 8, ins.code, le);
    dv.setUint8(i * 8 + 2, ins.jt);
    dv.setUint8(i * 8 + 3, ins.jf);
    dv.setUint32(i * 8 + 4, ins.k >>> 0, le);
  });
  return { insns: p, bytes, truncated };
}

/** The steering rule in plain code (the reference the program is tested against). */
export function steerReference(
  t: SteerTables,
  count: number,
  f: {
    ipv4: boolean;
    proto: number;
    fragment: boolean;
    saddr: number;
    daddr: number;
    sport: number;
    dport: number;
  },
): number {
  if (!f.ipv4 || (f.proto !== 6 && f.proto !== 17) || f.fragment) return 0;
  const d = f.daddr >>> 0;
  if (t.laddrs.some((a) => a >>> 0 === d)) return f.dport % count;
  if (t.vips.some((a) => a >>> 0 === d)) return steerWorker(f.saddr, f.sport, count);
  if (t.natDests.some((a) => a >>> 0 === f.saddr >>> 0)) return steerWorker(f.daddr, f.dport, count);
  return steerWorker(f.saddr, f.sport, count);
}

/** The addresses the steering program needs, from a service table. */
export function steerTablesOf(table: ServiceTable): SteerTables {
  const laddrs = new Set<number>();
  const natDests = new Set<number>();
  for (const s of table.list()) {
    for (const a of s.laddrs?.list() ?? []) laddrs.add(a >>> 0);
    for (const d of s.dests) if (d.fwd === FwdMethod.MASQ) natDests.add(d.addr >>> 0);
  }
  return { laddrs: [...laddrs], vips: table.vips(), natDests: [...natDests] };
}
