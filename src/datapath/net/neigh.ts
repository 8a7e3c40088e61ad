/**
 * Neighbour (ARP) table: IPv4 address -> MAC, per director, as an open-addressed hash of typed
 * arrays so the per-packet lookup allocates nothing. Entries are static (configured) or learned
 * from ARP; learned entries go stale after `reachableMs` and are then refreshed by the resolver.
 */

export const NEIGH_NONE = 0;
export const NEIGH_INCOMPLETE = 1;
export const NEIGH_REACHABLE = 2;
export const NEIGH_STALE = 3;
export const NEIGH_STATIC = 4;

const EMPTY = 0;
const USED = 1;
const DELETED = 2;

export class NeighTable {
  readonly capacity: number;
  private readonly mask: number;
  private readonly keys: Uint32Array;
  private readonly slot: Uint8Array;
  readonly state: Uint8Array;
  readonly macs: Uint8Array;
  readonly link: Int16Array;
  readonly updated: Float64Array;
  /** Last time an ARP request was sent for the entry (resolver rate limit). */
  readonly probed: Float64Array;
  readonly probes: Uint8Array;
  size = 0;

  constructor(capacity = 4096) {
    let c = 16;
    while (c < capacity * 2) c *= 2;
    this.capacity = c;
    this.mask = c - 1;
    this.keys = new Uint32Array(c);
    this.slot = new Uint8Array(c);
    this.state = new Uint8Array(c);
    this.macs = new Uint8Array(c * 6);
    this.link = new Int16Array(c);
    this.updated = new Float64Array(c);
    this.probed = new Float64Array(c);
    this.probes = new Uint8Array(c);
  }

  private h(ip: number): number {
    return (Math.imul(ip, 0x9e3779b1) >>> 16) & this.mask;
  }

  /** Index of ip's entry, or -1. */
  find(ip: number): number {
    ip >>>= 0;
    let i = this.h(ip | 0);
    for (let n = 0; n < this.capacity; n++) {
      const s = this.slot[i];
      if (s === EMPTY) return -1;
      if (s === USED && this.keys[i] === ip) return i;
      i = (i + 1) & this.mask;
    }
    return -1;
  }

  /** Whether entry i still holds ip (as int32 or uint32) with a usable MAC (not NONE or INCOMPLETE). */
  usable(i: number, ip: number): boolean {
    const st = this.state[i]!;
    return this.slot[i] === USED && this.keys[i] === ip >>> 0 && st !== NEIGH_NONE && st !== NEIGH_INCOMPLETE;
  }

  /** Index of ip's entry, created (state NONE) if missing; -1 when the table is full. */
  findOrAdd(ip: number): number {
    ip >>>= 0;
    let i = this.h(ip | 0);
    let firstFree = -1;
    for (let n = 0; n < this.capacity; n++) {
      const s = this.slot[i];
      if (s === USED && this.keys[i] === ip) return i;
      if (s !== USED && firstFree < 0) firstFree = i;
      if (s === EMPTY) break;
      i = (i + 1) & this.mask;
    }
    if (firstFree < 0 || this.size * 2 >= this.capacity) return -1;
    this.slot[firstFree] = USED;
    this.keys[firstFree] = ip;
    this.state[firstFree] = NEIGH_NONE;
    this.probes[firstFree] = 0;
    this.probed[firstFree] = 0;
    this.link[firstFree] = -1;
    this.size++;
    return firstFree;
  }

  /** Record ip -> mac (bytes at mac[macOff..+6]) learned on `link`. Static entries are kept. */
  learn(ip: number, mac: Uint8Array, macOff: number, link: number, now: number, isStatic = false): number {
    const i = this.findOrAdd(ip);
    if (i < 0) return -1;
    if (this.state[i] === NEIGH_STATIC && !isStatic) return i;
    const o = i * 6;
    for (let k = 0; k < 6; k++) this.macs[o + k] = mac[macOff + k]!;
    this.link[i] = link;
    this.state[i] = isStatic ? NEIGH_STATIC : NEIGH_REACHABLE;
    this.updated[i] = now;
    this.probes[i] = 0;
    return i;
  }

  remove(ip: number): boolean {
    const i = this.find(ip);
    if (i < 0) return false;
    this.slot[i] = DELETED;
    this.state[i] = NEIGH_NONE;
    this.size--;
    return true;
  }

  /** Iterate used entries (control plane). */
  *entries(): IterableIterator<number> {
    for (let i = 0; i < this.capacity; i++) if (this.slot[i] === USED) yield i;
  }

  ipAt(i: number): number {
    return this.keys[i]!;
  }
}
