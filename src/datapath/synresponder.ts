/**
 * The XDP SYN-cookie responder on a raw= or xdp= link (`--link raw=IF,...,synproxy-xdp=auto|drv|skb`,
 * docs/security.md): the program of src/datapath/io/bpf/synack.ts attached to the interface,
 * answering SYNs to SYN-proxy services in the driver with the engine's own cookie SYN-ACK, so
 * that a SYN flood never reaches lvsd's socket. The client's ACK comes to lvsd, which checks the
 * cookie with the same secret and goes on as when it sent the SYN-ACK itself. On an xdp= link
 * the program also hands every frame it does not answer or drop to lvsd's AF_XDP socket.
 * Control-plane cadence, not per packet: this file allocates freely.
 *
 * `sync` (every SYNC_MS, not per packet) keeps the program's maps true to the engine:
 * - config: the secret in force (SynProxy.key0/key1: rotations reach the map within SYNC_MS,
 *   and the engine still accepts the previous secret), the cookie time counter, the MSS the
 *   engine offers (min(smallest MTU - 40, 1460)), the link's MAC;
 * - services: the TCP services with --synproxy and a port, whose VIP this director owns (VRRP:
 *   not a BACKUP's VIPs), and none while firewall-mark rules exist (a marked SYN may belong to
 *   a fwmark service: lvsd decides);
 * - routes: lvsd's routes as this link sees them (ROUTE_VIA_SENDER for its connected subnets,
 *   ROUTE_VIA_MAC with the gateway's MAC from the neighbour table, ROUTE_ELSEWHERE for routes
 *   out of other links and gateways not resolved yet). A SYN whose source routes elsewhere (the
 *   engine's rp_filter, or a reply that leaves by another link) goes to lvsd;
 * - stats: the program's SYN-ACK count, added to SynProxy.xdpCookiesSent (lvsadm
 *   --synproxy-stats: xdp_cookies_sent), and the martian sources it dropped, added to the
 *   engine's martian_src drops (lvsadm --drops).
 * One more map needs no sync: `held` (HeldMap), an array that lvsd and every responder program
 * share, mapped into lvsd's memory, where the connection table counts its SYN-proxy entries by
 * client tuple as they come and go (conntrack/held.ts): the program leaves a SYN whose tuple lvsd
 * holds to lvsd, which handles it as the kernel would (a SYN on an established entry goes to its
 * real server, whose challenge ACK lets the client reset it).
 */
import { IPPROTO_TCP } from "../lib/proto.js";
import { SVC_F_SYNPROXY } from "../tables/model.js";
import { clock } from "./clock.js";
import { HELD_SLOTS } from "./conntrack/held.js";
import { CONN_F_SYNPROXY, CONN_F_SYNPROXY_WAIT } from "./conntrack/table.js";
import { Drop } from "./drops.js";
import type { Engine } from "./engine.js";
import {
  BPF_F_MMAPABLE,
  BPF_F_NO_PREALLOC,
  BPF_MAP_TYPE_ARRAY,
  BPF_MAP_TYPE_HASH,
  BPF_MAP_TYPE_LPM_TRIE,
} from "./io/bpf/asm.js";
import {
  ROUTE_ELSEWHERE,
  ROUTE_VIA_MAC,
  ROUTE_VIA_SENDER,
  STAT_KEYS,
  STAT_MARTIAN,
  STAT_SENT,
  SYNACK_CONFIG_BYTES,
  synAckProgram,
} from "./io/bpf/synack.js";
import type { NativeAddon } from "./io/native.js";
import { NEIGH_INCOMPLETE, NEIGH_NONE } from "./net/neigh.js";
import { SynProxy } from "./synproxy.js";

/** How often the maps are brought up to date. */
export const SYNC_MS = 250;
const MAX_SERVICES = 4096;
const MAX_ROUTES = 1024;

export type XdpAttach = "auto" | "drv" | "skb";

type Bpf = Pick<
  NativeAddon,
  | "bpfMapCreate"
  | "bpfMapUpdate"
  | "bpfMapDelete"
  | "bpfMapLookup"
  | "bpfMapMmap"
  | "bpfLoadXdp"
  | "bpfAttachXdp"
  | "bpfClose"
>;

/** A map entry as written. */
interface Entry {
  key: Uint8Array;
  value: Uint8Array;
}
/** The services map's value: presence is what counts. */
const SERVICE_VALUE = new Uint8Array([1, 0, 0, 0]);

/**
 * The held-tuples array (conntrack/held.ts) of an engine: one BPF array map of HELD_SLOTS bytes
 * (8-byte values), mapped into lvsd's memory as the connection table's `held`, shared by every
 * responder program of the engine. Made on first use; it lives as long as the process.
 */
export class HeldMap {
  private static readonly made = new WeakMap<Engine, HeldMap>();
  readonly fd: number;
  readonly bytes: Uint8Array;

  private constructor(bpf: Bpf, engine: Engine) {
    this.fd = bpf.bpfMapCreate(BPF_MAP_TYPE_ARRAY, 4, 8, HELD_SLOTS / 8, "lvs_sp_held", BPF_F_MMAPABLE);
    try {
      this.bytes = new Uint8Array(bpf.bpfMapMmap(this.fd, HELD_SLOTS));
    } catch (err) {
      bpf.bpfClose(this.fd);
      throw err;
    }
    const ct = engine.ct;
    ct.held = this.bytes;
    // what the table holds already
    for (const i of ct.slots())
      if ((ct.flags[i]! & (CONN_F_SYNPROXY | CONN_F_SYNPROXY_WAIT)) !== 0) ct.hold(i);
  }

  /** The engine's array, made (and its table's SYN-proxy entries counted in it) on first use. */
  static of(bpf: Bpf, engine: Engine): HeldMap {
    let h = HeldMap.made.get(engine);
    if (h === undefined) {
      h = new HeldMap(bpf, engine);
      HeldMap.made.set(engine, h);
    }
    return h;
  }
}

/** The program and its four maps (not attached: `SynResponder` attaches it; tests run it). */
export class SynAckMaps {
  readonly config: number;
  readonly services: number;
  readonly routes: number;
  readonly stats: number;
  readonly prog: number;
  /** What the services and routes maps hold now (keys and values as written). */
  private readonly haveServices = new Map<string, Entry>();
  private readonly haveRoutes = new Map<string, Entry>();
  private readonly cfg = new Uint8Array(SYNACK_CONFIG_BYTES);
  private readonly key0 = new Uint8Array(4);
  private readonly statKey = new Uint8Array(4);
  private readonly count = new Uint8Array(8);

  /**
   * `xskMapFd`: the program hands the rest to that XSKMAP's sockets (an xdp= link); the maps own
   * it. `heldFd`: the held-tuples array (HeldMap; not owned).
   */
  constructor(
    private readonly bpf: Bpf,
    private readonly xskMapFd?: number,
    heldFd?: number,
  ) {
    const fds: number[] = [];
    try {
      this.config = bpf.bpfMapCreate(BPF_MAP_TYPE_ARRAY, 4, SYNACK_CONFIG_BYTES, 1, "lvs_sp_cfg");
      fds.push(this.config);
      this.services = bpf.bpfMapCreate(BPF_MAP_TYPE_HASH, 8, 4, MAX_SERVICES, "lvs_sp_svcs");
      fds.push(this.services);
      this.routes = bpf.bpfMapCreate(
        BPF_MAP_TYPE_LPM_TRIE,
        8,
        8,
        MAX_ROUTES,
        "lvs_sp_routes",
        BPF_F_NO_PREALLOC,
      );
      fds.push(this.routes);
      this.stats = bpf.bpfMapCreate(BPF_MAP_TYPE_ARRAY, 4, 8, STAT_KEYS, "lvs_sp_stats");
      fds.push(this.stats);
      this.prog = bpf.bpfLoadXdp(
        synAckProgram(this.config, this.services, this.routes, this.stats, xskMapFd, heldFd),
        "lvs_synack",
      );
    } catch (err) {
      for (const fd of fds) bpf.bpfClose(fd);
      throw err;
    }
  }

  /** The config entry: secret, cookie counter, the MSS offered, our MAC. */
  setConfig(k0: number, k1: number, counter: number, mss: number, mac: Uint8Array): void {
    const dv = new DataView(this.cfg.buffer);
    dv.setInt32(0, k0 | 0, true);
    dv.setInt32(4, k1 | 0, true);
    dv.setUint32(8, counter >>> 0, true);
    dv.setUint32(12, mss >>> 0, true);
    this.cfg.set(mac.subarray(0, 6), 16);
    this.bpf.bpfMapUpdate(this.config, this.key0, this.cfg);
  }

  /** The SYN-proxy services, as [VIP, port] (uint32, host order). */
  setServices(list: readonly (readonly [number, number])[]): void {
    const want: Entry[] = [];
    for (const [vip, port] of list) {
      const key = new Uint8Array(8);
      const dv = new DataView(key.buffer);
      dv.setUint32(0, vip >>> 0);
      dv.setUint16(4, port);
      want.push({ key, value: SERVICE_VALUE });
    }
    this.mirror(this.services, this.haveServices, want);
  }

  /**
   * The routes as the link sees them: [net, prefix, kind, MAC or undefined]. An earlier entry of
   * the same prefix wins (as the engine's route walk).
   */
  setRoutes(list: readonly (readonly [number, number, number, Uint8Array | undefined])[]): void {
    const want: Entry[] = [];
    for (const [net, prefix, kind, mac] of list) {
      const key = new Uint8Array(8);
      const dv = new DataView(key.buffer);
      dv.setUint32(0, prefix, true);
      dv.setUint32(4, net >>> 0);
      const value = new Uint8Array(8);
      if (mac !== undefined) value.set(mac.subarray(0, 6), 0);
      value[6] = kind;
      want.push({ key, value });
    }
    this.mirror(this.routes, this.haveRoutes, want);
  }

  /** Make map `fd` hold `want` (the first of equal keys wins): delete, then write what changed. */
  private mirror(fd: number, have: Map<string, Entry>, want: readonly Entry[]): void {
    const next = new Map<string, Entry>();
    for (const e of want) {
      const h = Buffer.from(e.key).toString("hex");
      if (!next.has(h)) next.set(h, e);
    }
    for (const [h, e] of have) {
      if (next.has(h)) continue;
      this.bpf.bpfMapDelete(fd, e.key);
      have.delete(h);
    }
    for (const [h, e] of next) {
      const old = have.get(h);
      if (old !== undefined && Buffer.compare(old.value, e.value) === 0) continue;
      this.bpf.bpfMapUpdate(fd, e.key, e.value);
      have.set(h, e);
    }
  }

  /** SYN-ACKs the program has sent. */
  sent(): number {
    return this.stat(STAT_SENT);
  }

  /** Frames the program dropped for a martian source. */
  martians(): number {
    return this.stat(STAT_MARTIAN);
  }

  private stat(k: number): number {
    new DataView(this.statKey.buffer).setUint32(0, k, true);
    if (!this.bpf.bpfMapLookup(this.stats, this.statKey, this.count)) return 0;
    return Number(new DataView(this.count.buffer).getBigUint64(0, true));
  }

  close(): void {
    for (const fd of [this.prog, this.stats, this.routes, this.services, this.config]) this.bpf.bpfClose(fd);
    if (this.xskMapFd !== undefined) this.bpf.bpfClose(this.xskMapFd);
  }
}

/** The responder for engine link `link` (engine.net.links index), attached by `attach`. */
export class SynResponder {
  readonly maps: SynAckMaps;
  /** Whether the program runs in the driver (native XDP) or generic (skb) mode. */
  readonly driverMode: boolean;
  private readonly linkFd: number;
  /** The program's counts at the last sync. */
  private lastSent = 0;
  private lastMartians = 0;

  /**
   * `attach` puts the program (its fd) on the interface and returns the bpf_link's fd (lvsd:
   * `bpfAttachXdp(prog, ifname, mode)`; tests that run the program themselves attach nothing).
   */
  constructor(
    private readonly bpf: Bpf,
    private readonly engine: Engine,
    private readonly link: number,
    attach: (prog: number) => { fd: number; driverMode: boolean },
    xskMapFd?: number,
  ) {
    this.maps = new SynAckMaps(bpf, xskMapFd, HeldMap.of(bpf, engine).fd);
    try {
      this.sync();
      const r = attach(this.maps.prog);
      this.linkFd = r.fd;
      this.driverMode = r.driverMode;
    } catch (err) {
      this.maps.close();
      throw err;
    }
  }

  /** Bring the maps up to date with the engine (control-plane cadence, SYNC_MS). */
  sync(): void {
    const e = this.engine;
    const net = e.net;
    const sp = e.synproxy;
    // an xdp= link's responder is made before its socket, and its link entry after: until then
    // the program's MAC matches nothing and every frame goes on to the socket
    if (net.links[this.link] === undefined) return;
    const mtu = net.minMtu - 40;
    this.maps.setConfig(
      sp.key0,
      sp.key1,
      SynProxy.counter(clock.nowMs),
      mtu < 1460 ? mtu : 1460,
      net.links[this.link]!.mac,
    );
    const svcs: [number, number][] = [];
    if (e.marks.program.count === 0) {
      for (const s of e.table.services) {
        if (s === null || s.proto !== IPPROTO_TCP || s.fwmark !== 0 || s.port === 0) continue;
        if ((s.flags & SVC_F_SYNPROXY) === 0) continue;
        if (e.owner.count !== 0 && e.owner.disowned(s.addr)) continue;
        svcs.push([s.addr, s.port]);
      }
    }
    this.maps.setServices(svcs);
    const routes: [number, number, number, Uint8Array | undefined][] = [];
    for (const r of net.listRoutes()) {
      let kind = ROUTE_ELSEWHERE;
      let mac: Uint8Array | undefined;
      if (r.link === this.link) {
        if (r.via === 0) kind = ROUTE_VIA_SENDER;
        else {
          const n = net.neigh.find(r.via | 0);
          const st = n >= 0 ? net.neigh.state[n]! : NEIGH_NONE;
          if (st !== NEIGH_NONE && st !== NEIGH_INCOMPLETE) {
            kind = ROUTE_VIA_MAC;
            mac = net.neigh.macs.subarray(n * 6, n * 6 + 6);
          }
        }
      }
      routes.push([r.net, r.prefix, kind, mac]);
    }
    this.maps.setRoutes(routes);
    const n = this.maps.sent();
    sp.xdpCookiesSent += n - this.lastSent;
    this.lastSent = n;
    const m = this.maps.martians();
    e.drops[Drop.MARTIAN_SRC]! += m - this.lastMartians;
    this.lastMartians = m;
  }

  close(): void {
    this.bpf.bpfClose(this.linkFd);
    this.maps.close();
  }
}
