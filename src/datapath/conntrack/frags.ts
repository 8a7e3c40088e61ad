/**
 * Fragment cache. The kernel reassembles IPv4 before IPVS sees a packet; lvs-ts forwards
 * fragments as they come instead. The first fragment carries the ports, so it is classified
 * normally and its (saddr, daddr, IP id, protocol) is remembered here with the connection and
 * direction; later fragments, which have no L4 header, are matched by that key and follow the
 * same connection. A later fragment that arrives before its first fragment (or after the entry
 * was overwritten) is dropped and counted.
 *
 * A direct-mapped cache of typed arrays: O(1), no allocation, entries live 30 s (the usual
 * reassembly timeout) or until overwritten.
 */
import { clock } from "../clock.js";

export const FRAG_TIMEOUT_MS = 30_000;

export class FragCache {
  private readonly mask: number;
  private readonly saddr: Uint32Array;
  private readonly daddr: Uint32Array;
  /** IP id << 8 | protocol, or -1 when empty. */
  private readonly idProto: Int32Array;
  private readonly conn: Int32Array;
  private readonly dir: Uint8Array;
  private readonly expires: Float64Array;
  /** Direction of the last successful `lookup`. */
  lastDir = 0;

  constructor(size = 4096) {
    let n = 1;
    while (n < size) n *= 2;
    this.mask = n - 1;
    this.saddr = new Uint32Array(n);
    this.daddr = new Uint32Array(n);
    this.idProto = new Int32Array(n).fill(-1);
    this.conn = new Int32Array(n);
    this.dir = new Uint8Array(n);
    this.expires = new Float64Array(n);
  }

  private slot(saddr: number, daddr: number, id: number, proto: number): number {
    let h = Math.imul(saddr ^ Math.imul(daddr, 0x9e3779b1), 0x85ebca6b) ^ ((id << 8) | proto);
    h ^= h >>> 15;
    return Math.imul(h, 0xc2b2ae35) & this.mask;
  }

  record(saddr: number, daddr: number, id: number, proto: number, conn: number, dir: number): void {
    const s = this.slot(saddr | 0, daddr | 0, id, proto);
    this.saddr[s] = saddr;
    this.daddr[s] = daddr;
    this.idProto[s] = (id << 8) | proto;
    this.conn[s] = conn;
    this.dir[s] = dir;
    this.expires[s] = clock.nowMs + FRAG_TIMEOUT_MS;
  }

  /** Connection slot for a later fragment, or -1; sets `lastDir`. */
  lookup(saddr: number, daddr: number, id: number, proto: number): number {
    const s = this.slot(saddr | 0, daddr | 0, id, proto);
    saddr >>>= 0;
    daddr >>>= 0;
    if (
      this.idProto[s] !== ((id << 8) | proto) ||
      this.saddr[s] !== saddr ||
      this.daddr[s] !== daddr ||
      this.expires[s]! <= clock.nowMs
    ) {
      return -1;
    }
    this.lastDir = this.dir[s]!;
    return this.conn[s]!;
  }
}
