/**
 * FULLNAT local-address pool of one service (after DPVS's laddr): the director rewrites the
 * client's address and port to one of these addresses and a port allocated from it, so real
 * servers answer the director without any route back to clients.
 *
 * Ports 1025..65535 per (local address, protocol) are tracked in bitmaps; allocation is a
 * rotating scan from where the last one stopped (no allocation, no collisions), release clears
 * the bit when the connection leaves the table. Local addresses are used round robin.
 *
 * With data-path workers (docs/workers.md) each worker's pool owns a slice of the ports, those
 * with port % count === index (as DPVS gives each worker its own local ports), so a real
 * server's reply to a local port tells which worker owns the connection.
 */

export const LPORT_MIN = 1025;
export const LPORT_MAX = 65535;
const WORDS = 65536 / 32;

class AddrPorts {
  readonly addr: number;
  /** [TCP bitmap, UDP bitmap]. */
  readonly used: [Uint32Array, Uint32Array] = [new Uint32Array(WORDS), new Uint32Array(WORDS)];
  readonly cursor = new Uint32Array(2);
  readonly inUse = new Uint32Array(2);
  constructor(addr: number, first: number) {
    this.addr = addr >>> 0;
    this.cursor[0] = first;
    this.cursor[1] = first;
  }
}

/** The first port of the slice (port % count === index) at or above LPORT_MIN. */
function firstPort(index: number, count: number): number {
  return LPORT_MIN + ((index - (LPORT_MIN % count) + count) % count);
}

export class LocalAddrPool {
  private readonly addrs: AddrPorts[] = [];
  private next = 0;
  /** Allocations refused because every port of every address was in use. */
  exhausted = 0;
  /** Result of the last successful `alloc`. */
  allocAddr = 0;
  allocPort = 0;
  /** This pool's slice: ports from `first` by `step` (p % step === index). */
  private readonly first: number;
  private readonly step: number;
  /** Ports the slice holds per address and protocol. */
  readonly portsPerAddr: number;

  /** A pool owning the ports p with p % count === index (all ports: 0, 1). */
  constructor(index = 0, count = 1) {
    if (!Number.isInteger(count) || count < 1 || !Number.isInteger(index) || index < 0 || index >= count)
      throw new RangeError(`bad local port slice ${index} of ${count}`);
    this.first = firstPort(index, count);
    this.step = count;
    this.portsPerAddr = Math.floor((LPORT_MAX - this.first) / count) + 1;
  }

  list(): number[] {
    return this.addrs.map((a) => a.addr);
  }

  has(addr: number): boolean {
    return this.addrs.some((a) => a.addr === addr >>> 0);
  }

  get size(): number {
    return this.addrs.length;
  }

  add(addr: number): boolean {
    if (this.has(addr)) return false;
    this.addrs.push(new AddrPorts(addr, this.first));
    return true;
  }

  /** Remove an address; its ports in use are forgotten (their connections keep their tuple). */
  remove(addr: number): boolean {
    const i = this.addrs.findIndex((a) => a.addr === addr >>> 0);
    if (i < 0) return false;
    this.addrs.splice(i, 1);
    if (this.next >= this.addrs.length) this.next = 0;
    return true;
  }

  /** Ports in use on `addr` for protocol slot p (0 TCP, 1 UDP). */
  inUse(addr: number, p: number): number {
    const a = this.addrs.find((x) => x.addr === addr >>> 0);
    return a ? a.inUse[p]! : 0;
  }

  /**
   * Allocate a (local address, port) for protocol slot p (0 TCP, 1 UDP); sets `allocAddr` and
   * `allocPort` and returns true, or returns false (and counts) when all are in use.
   */
  alloc(p: number): boolean {
    const n = this.addrs.length;
    for (let k = 0; k < n; k++) {
      const idx = (this.next + k) % n;
      const a = this.addrs[idx]!;
      if (a.inUse[p]! >= this.portsPerAddr) continue;
      const bits = a.used[p]!;
      const step = this.step;
      let port = a.cursor[p]!;
      for (let tries = 0; tries < this.portsPerAddr; tries++) {
        const w = port >>> 5;
        const m = 1 << (port & 31);
        const next = port + step > LPORT_MAX ? this.first : port + step;
        if ((bits[w]! & m) === 0) {
          bits[w] = bits[w]! | m;
          a.inUse[p] = a.inUse[p]! + 1;
          a.cursor[p] = next;
          this.next = (idx + 1) % n;
          this.allocAddr = a.addr;
          this.allocPort = port;
          return true;
        }
        port = next;
      }
    }
    this.exhausted++;
    return false;
  }

  /**
   * Mark (addr, port) used for protocol slot p, as a connection learnt from a sync master holds
   * it. False when the address is not in the pool or the port is taken already.
   */
  reserve(addr: number, port: number, p: number): boolean {
    addr >>>= 0;
    const a = this.addrs.find((x) => x.addr === addr);
    if (a === undefined || port < LPORT_MIN || port > LPORT_MAX) return false;
    const bits = a.used[p]!;
    const w = port >>> 5;
    const m = 1 << (port & 31);
    if ((bits[w]! & m) !== 0) return false;
    bits[w] = bits[w]! | m;
    a.inUse[p] = a.inUse[p]! + 1;
    return true;
  }

  /** Give a port back. Unknown addresses (removed from the pool) are ignored. */
  release(addr: number, port: number, p: number): void {
    addr >>>= 0; // callers pass int32 (no boxing)
    for (let k = 0; k < this.addrs.length; k++) {
      const a = this.addrs[k]!;
      if (a.addr !== addr) continue;
      const bits = a.used[p]!;
      const w = port >>> 5;
      const m = 1 << (port & 31);
      if ((bits[w]! & m) !== 0) {
        bits[w] = bits[w]! & ~m;
        a.inUse[p] = a.inUse[p]! - 1;
      }
      return;
    }
  }
}
