/**
 * The director's own IPv4 presence: links with their MACs and addresses, connected and static
 * routes, and the neighbour table. The engine asks it where a packet goes next (`route`) and
 * to write the Ethernet header for that hop (`setL2`); both are allocation-free.
 *
 * Routing is longest-prefix match over a short array sorted by prefix length (directors have a
 * handful of routes); the neighbour table is an open-addressed typed-array hash.
 */

import { NEIGH_INCOMPLETE, NEIGH_NONE, NeighTable } from "./neigh.js";

export interface LinkAddr {
  addr: number;
  prefix: number;
}

export class Link {
  readonly id: number;
  readonly name: string;
  readonly mac: Uint8Array;
  readonly addrs: LinkAddr[];
  /** Change it with Net.setLinkMtu, which keeps Net.minMtu true. */
  mtu: number;
  /** The MAC as two int32s (bytes 0-1, bytes 2-5), for the per-frame destination check. */
  readonly macHi: number;
  readonly macLo: number;
  private readonly primary: number;
  constructor(id: number, name: string, mac: Uint8Array, addrs: LinkAddr[], mtu: number) {
    this.id = id;
    this.name = name;
    this.mac = mac;
    this.macHi = (mac[0]! << 8) | mac[1]!;
    this.macLo = (mac[2]! << 24) | (mac[3]! << 16) | (mac[4]! << 8) | mac[5]!;
    this.addrs = addrs;
    this.mtu = mtu;
    this.primary = (addrs[0]?.addr ?? 0) | 0;
  }

  /** True when addr lies in one of this link's connected subnets. */
  onLink(addr: number): boolean {
    for (const a of this.addrs) {
      const m = prefixMask(a.prefix);
      if ((a.addr & m) >>> 0 === (addr & m) >>> 0) return true;
    }
    return false;
  }

  /**
   * The link's first address, used as the source of frames the director originates (tunnel
   * headers, ARP requests, ICMP errors). An int32, like every address that crosses a call on the
   * data path (a uint32 above 2^31 would be boxed): write it with setUint32/setInt32 or `>>> 0` it.
   * Cached at construction: loading a double field through a generic access copies its box.
   */
  primaryAddr(): number {
    return this.primary;
  }
}

export interface Route {
  net: number;
  prefix: number;
  mask: number;
  link: number;
  /** Gateway address, 0 for a connected route. */
  via: number;
}

export function prefixMask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** Statuses of `setL2` (negative; >= 0 is the egress link). */
export const L2_NO_ROUTE = -1;
export const L2_NEIGH_MISS = -2;

const HOP_CACHE_SIZE = 256;
const HOP_CACHE_MASK = HOP_CACHE_SIZE - 1;

export class Net {
  readonly links: Link[] = [];
  private routes: Route[] = [];
  private readonly local: number[] = [];
  readonly neigh = new NeighTable();
  /** Next-hop address chosen by the last `route` call, as an int32 (`>>> 0` for the uint32). */
  nextHop = 0;
  /** Smallest MTU of any link: packets no longer than this need no per-link MTU check. */
  minMtu = 65535;
  /** Learned neighbours older than this are re-probed by the resolver. */
  reachableMs = 30_000;
  /**
   * setL2's next-hop cache, direct-mapped by destination: the destination (int32), its next hop
   * (int32), the neighbour entry and the egress link (-1: empty). Cleared when routes change;
   * each hit re-checks that the neighbour entry still holds the next hop with a usable MAC.
   */
  private readonly hopKey = new Int32Array(HOP_CACHE_SIZE);
  private readonly hopVia = new Int32Array(HOP_CACHE_SIZE);
  private readonly hopNeigh = new Int32Array(HOP_CACHE_SIZE);
  private readonly hopLink = new Int16Array(HOP_CACHE_SIZE).fill(-1);

  addLink(name: string, mac: Uint8Array, addrs: LinkAddr[], mtu = 1500): Link {
    const l = new Link(this.links.length, name, mac, addrs, mtu);
    this.links.push(l);
    if (mtu < this.minMtu) this.minMtu = mtu;
    for (const a of addrs) {
      const mask = prefixMask(a.prefix);
      this.addRouteRaw({ net: (a.addr & mask) >>> 0, prefix: a.prefix, mask, link: l.id, via: 0 });
      this.local.push(a.addr >>> 0);
    }
    return l;
  }

  /** Change link `l`'s MTU (control plane), keeping `minMtu` the smallest of all links. */
  setLinkMtu(l: number, mtu: number): void {
    this.links[l]!.mtu = mtu;
    let m = 65535;
    for (const k of this.links) if (k.mtu < m) m = k.mtu;
    this.minMtu = m;
  }

  private addRouteRaw(r: Route): void {
    this.hopLink.fill(-1); // routes changed: forget every cached route
    this.routes.push(r);
    this.routes.sort((a, b) => b.prefix - a.prefix);
  }

  /** Add a static route (`default` = prefix 0) via a gateway on a connected subnet. */
  addRoute(net: number, prefix: number, via: number): Route {
    let link = -1;
    for (const l of this.links) if (l.onLink(via)) link = l.id;
    if (link < 0) throw new Error(`gateway ${via >>> 0} is not on a connected subnet`);
    const mask = prefixMask(prefix);
    const r: Route = { net: (net & mask) >>> 0, prefix, mask, link, via: via >>> 0 };
    this.addRouteRaw(r);
    return r;
  }

  listRoutes(): readonly Route[] {
    return this.routes;
  }

  /** True when addr is one of the director's own addresses. */
  isLocal(addr: number): boolean {
    addr >>>= 0;
    const l = this.local;
    for (let k = 0; k < l.length; k++) if (l[k] === addr) return true;
    return false;
  }

  /** Egress link for daddr (sets `nextHop`), or -1. */
  /** Whether the frame at `base` is addressed to link `link`'s own (unicast) MAC. */
  isOurMac(buf: Uint8Array, base: number, link: number): boolean {
    const l = this.links[link];
    if (l === undefined) return false;
    return (
      ((buf[base]! << 8) | buf[base + 1]!) === l.macHi &&
      ((buf[base + 2]! << 24) | (buf[base + 3]! << 16) | (buf[base + 4]! << 8) | buf[base + 5]!) === l.macLo
    );
  }

  route(daddr: number): number {
    const rs = this.routes;
    for (let k = 0; k < rs.length; k++) {
      const r = rs[k]!;
      if ((daddr & r.mask) >>> 0 === r.net) {
        this.nextHop = (r.via !== 0 ? r.via : daddr) | 0; // int32: no boxing across calls
        return r.link;
      }
    }
    return -1;
  }

  /**
   * Write the Ethernet destination and source for a frame at `base` going to `daddr`.
   * Returns the egress link, L2_NO_ROUTE, or L2_NEIGH_MISS (then `nextHop` names the
   * address to resolve).
   */
  setL2(buf: Uint8Array, base: number, daddr: number): number {
    // The next-hop cache first: a hit skips the route walk and the neighbour hash, and is
    // checked against the neighbour entry itself, so a changed or removed entry is a miss.
    const k = (daddr ^ (daddr >>> 11)) & HOP_CACHE_MASK;
    let link = this.hopLink[k]!;
    let n: number;
    if (
      link >= 0 &&
      this.hopKey[k] === (daddr | 0) &&
      this.neigh.usable(this.hopNeigh[k]!, this.hopVia[k]!)
    ) {
      n = this.hopNeigh[k]!;
      this.nextHop = this.hopVia[k]!;
    } else {
      link = this.route(daddr);
      if (link < 0) return L2_NO_ROUTE;
      n = this.neigh.find(this.nextHop);
      if (n < 0) return L2_NEIGH_MISS;
      const st = this.neigh.state[n]!;
      if (st === NEIGH_NONE || st === NEIGH_INCOMPLETE) return L2_NEIGH_MISS;
      this.hopKey[k] = daddr | 0;
      this.hopVia[k] = this.nextHop;
      this.hopNeigh[k] = n;
      this.hopLink[k] = link;
    }
    const macs = this.neigh.macs;
    const o = n * 6;
    buf[base] = macs[o]!;
    buf[base + 1] = macs[o + 1]!;
    buf[base + 2] = macs[o + 2]!;
    buf[base + 3] = macs[o + 3]!;
    buf[base + 4] = macs[o + 4]!;
    buf[base + 5] = macs[o + 5]!;
    const src = this.links[link]!.mac;
    buf[base + 6] = src[0]!;
    buf[base + 7] = src[1]!;
    buf[base + 8] = src[2]!;
    buf[base + 9] = src[3]!;
    buf[base + 10] = src[4]!;
    buf[base + 11] = src[5]!;
    return link;
  }
}
