/**
 * Loads the I/O addon (native/, built by node-gyp into build/Release/lvs_io.node during
 * `npm ci`) on first use, and holds the LinkIo implementation shared by the native backends.
 *
 * Importing this module never loads the addon: only opening a TAP or raw socket does, and if
 * the addon is missing that throws IoError ERR_IO_NATIVE_MISSING naming the paths tried and how
 * to build it. Set LVS_IO_ADDON to load it from another path.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { EGRESS_NONE, type FrameBatch, type FrameMemory, HEADROOM } from "./batch.js";
import { IoError, IoErrorCode, type LinkIo, type LinkStats } from "./link.js";

/** A link object made by the addon. One method call per batch on the data path. */
export interface NativeLink {
  readonly name: string;
  readonly ifindex: number;
  /** Kernel interface MAC (for a TAP: the kernel side of the wire). */
  readonly mac: Uint8Array;
  readonly mtu: number;
  /** A TAP this link created (removed on close unless persistent). */
  readonly created: boolean;
  readonly fd: number;
  readonly kind: "tap" | "tun" | "ring" | "mmsg" | "xdp";
  readonly rxRingFrames: number;
  readonly txRingFrames: number;
  /** Bytes per ring frame (ring mode) or UMEM chunk (AF_XDP), 0 otherwise. */
  readonly ringFrameSize: number;
  /**
   * The RX ring itself (ring mode with zeroCopy), or an AF_XDP link's whole UMEM (with `view`):
   * an external ArrayBuffer over the mapping, detached on close. null when the link copies
   * (other modes, zeroCopy/view off, V8 sandbox).
   */
  readonly ring: ArrayBuffer | null;
  /** Read up to `max` frames into slots start.. (offset i*slotSize+headroom); count, or -errno. */
  rx(
    slab: Uint8Array,
    off: Uint32Array,
    len: Uint32Array,
    start: number,
    max: number,
    slotSize: number,
    headroom: number,
  ): number;
  /**
   * Zero-copy receive (a link with `ring`): set off[i]/len[i] (i from start, up to max) to frames
   * where they lie in `ring`, keeping their ring slots (UMEM chunks) until `release` (or the next
   * rxView with start 0). Returns the count, or -errno.
   */
  rxView(off: Uint32Array, len: Uint32Array, start: number, max: number): number;
  /**
   * Give the ring slots rxView handed out back to the kernel (AF_XDP: the chunks of frames that
   * did not leave by descriptor go back to the fill ring).
   */
  release(): void;
  /**
   * Send frames i < count with egress[i] === linkId; returns how many were handed to the kernel.
   * AF_XDP: frames rxView handed out (slab = `ring`) go by descriptor, others are copied.
   */
  tx(
    slab: Uint8Array,
    off: Uint32Array,
    len: Uint32Array,
    egress: Int16Array,
    count: number,
    linkId: number,
  ): number;
  poll(cb: (() => void) | null): void;
  /** Fill `out` with the counters, in STAT order. */
  stats(out: Float64Array): void;
  close(): void;
  /** AF_PACKET in a fanout group: replace the group's classic BPF program (PACKET_FANOUT_DATA). */
  setFanoutProgram(program: Uint8Array): void;
}

export interface NativeTapOptions {
  name: string;
  /** Create the device if it is missing (else it must exist). */
  create: boolean;
  /** With create: fail with EBUSY if the name exists at all (IFF_TUN_EXCL). */
  exclusive: boolean;
  persist: boolean;
  up: boolean;
  mtu?: number;
  bridge?: string;
  netns?: string;
  ifaceMac?: Uint8Array;
}

export interface NativeRawOptions {
  ifname: string;
  netns?: string;
  mode: "ring" | "mmsg";
  filter: boolean;
  /** Extra destination MACs to accept, 6 bytes each (group ones are joined: PACKET_MR_MULTICAST). */
  macs?: Uint8Array;
  /** IPIP decapsulator filter instead of the director's: protocol 4 to these addresses (4 bytes each). */
  ipip?: Uint8Array;
  qdiscBypass: boolean;
  /** Ring mode: expose the RX ring to JS (rxView) instead of copying frames out (default true). */
  zeroCopy?: boolean;
  /** SO_BUSY_POLL in µs (0 = off) plus SO_PREFER_BUSY_POLL. */
  busyPoll?: number;
  rxFrames?: number;
  txFrames?: number;
  /** Join this PACKET_FANOUT_CBPF group (0..65535) after bind, steered by `fanoutProgram`. */
  fanoutGroup?: number;
  /** sock_filter structs in host byte order, 8 bytes each (src/datapath/workers/steer.ts). */
  fanoutProgram?: Uint8Array;
}

/** What openXdp reports about the socket it bound (src/datapath/io/xdp.ts). */
export interface NativeXdpInfo {
  /** "map": the socket joined a shared XSKMAP (option xskMapFd); the mode is the program's. */
  readonly xdpMode: "drv" | "skb" | "map";
  readonly zeroCopy: boolean;
  readonly queue: number;
  readonly redirect: "all" | "mac";
  /** The socket is bound to another link's UMEM (option `share`). */
  readonly umemShared: boolean;
}

export interface NativeXdpOptions {
  ifname: string;
  netns?: string;
  queue: number;
  redirect: "all" | "mac";
  zeroCopy: "auto" | "on" | "off";
  attach: "auto" | "drv" | "skb";
  rxFrames?: number;
  txFrames?: number;
  /** Publish the UMEM as `ring` and lend it to batches (rxView, tx by descriptor); default true. */
  view?: boolean;
  /** Chunks in the UMEM (default rxFrames + txFrames): room for links that will share it. */
  umemFrames?: number;
  /** Bind to this AF_XDP link's UMEM (XDP_SHARED_UMEM) instead of registering one. */
  share?: NativeLink;
  /** SO_BUSY_POLL in µs (0 = off) plus SO_PREFER_BUSY_POLL; each receive runs the NAPI poll. */
  busyPoll?: number;
  /** SO_BUSY_POLL_BUDGET: frames per busy poll (default 64). */
  busyBudget?: number;
  /**
   * An XSKMAP made by attachXdp: the socket makes no map, program or bpf_link of its own and
   * enters its descriptor at key `queue` (fails with stage "bpf-map" if the map has fewer
   * than queue + 1 entries). `redirect` and `attach` are then only reported / ignored.
   */
  xskMapFd?: number;
}

export interface NativeXdpAttachOptions {
  ifname: string;
  netns?: string;
  /** The XSKMAP's max_entries, 1..4096: queues 0..queues-1 can have a socket. */
  queues: number;
  redirect?: "all" | "mac";
  attach?: "auto" | "drv" | "skb";
}

/** attachXdp's result: three descriptors the caller closes (linkFd first: it detaches the program). */
export interface NativeXdpAttached {
  mapFd: number;
  progFd: number;
  linkFd: number;
  xdpMode: "drv" | "skb";
}

export interface NativeTunOptions {
  name: string;
  create: boolean;
  exclusive: boolean;
  up: boolean;
  mtu?: number;
  netns?: string;
}

/** An IPv4 address as the addon lists it (addr in host order). */
export interface NativeAddr {
  ifindex: number;
  label: string;
  addr: number;
  prefix: number;
  scope: number;
}

/** Offload flags of an interface (null: the device does not report it). */
export interface NativeOffloads {
  txCsum: boolean | null;
  sg: boolean | null;
  tso: boolean | null;
  gso: boolean | null;
  gro: boolean | null;
}

export interface NativeAddon {
  readonly abiVersion: number;
  openTap(o: NativeTapOptions): NativeLink;
  openRaw(o: NativeRawOptions): NativeLink;
  openTun(o: NativeTunOptions): NativeLink;
  /** AF_XDP socket + XDP program on an interface queue (native/xdp.cc). */
  openXdp(o: NativeXdpOptions): NativeLink & NativeXdpInfo;
  /** One XSKMAP and the XDP program, attached to the interface, for several openXdp sockets (xskMapFd). */
  attachXdp(o: NativeXdpAttachOptions): NativeXdpAttached;
  /** The XDP program's instructions (8 bytes each) for an XSKMAP fd, optionally with the MAC check. */
  xdpProgram(mapFd: number, mac?: Uint8Array): Uint8Array;
  /**
   * The benchmark's AF_XDP copier (native/xdpcopy.cc): for `ms`, every frame received on one
   * link leaves by the other, by descriptor, in C++ (b opened with `share: a`). Blocks.
   */
  xdpCopy(a: NativeLink, b: NativeLink, ms: number, busy: boolean): NativeXdpCopyResult;
  /** Load generated XDP instructions (src/datapath/io/bpf/asm.ts); returns the program's fd. */
  bpfLoadXdp(insns: Uint8Array, name: string): number;
  /** BPF_PROG_TEST_RUN: the program on `data`; `out` receives the frame after it. */
  bpfTestRun(fd: number, data: Uint8Array, out: Uint8Array): { retval: number; size: number };
  bpfClose(fd: number): void;
  bpfMapCreate(
    type: number,
    keySize: number,
    valueSize: number,
    maxEntries: number,
    name: string,
    flags?: number,
  ): number;
  bpfMapUpdate(fd: number, key: Uint8Array, value: Uint8Array): void;
  /** False when the key was not there. */
  bpfMapDelete(fd: number, key: Uint8Array): boolean;
  /** Copies the value into `value`; false when the key is not there. */
  bpfMapLookup(fd: number, key: Uint8Array, value: Uint8Array): boolean;
  /** The values of a BPF_F_MMAPABLE array map, `bytes` long, mapped shared (unmapped when collected). */
  bpfMapMmap(fd: number, bytes: number): ArrayBuffer;
  /**
   * Attach XDP program `progFd` to interface `ifname` by a bpf_link ("auto": driver mode, else
   * generic; "drv"/"skb": only that one); closing `fd` detaches it. Throws (stage "xdp-attach").
   */
  bpfAttachXdp(
    progFd: number,
    ifname: string,
    attach: "auto" | "drv" | "skb",
  ): { fd: number; driverMode: boolean };
  /** Read /proc/sys/<path> in the namespace ("" = ours); write `value` if given. Returns the old value. */
  sysctl(netns: string, path: string, value?: string): string;
  ifIndex(netns: string, name: string): number;
  addrList(netns: string): NativeAddr[];
  /** scope: RT_SCOPE_* (0 global, default; 253 link; 254 host). */
  addrChange(
    netns: string,
    add: boolean,
    ifindex: number,
    addr: number,
    prefix: number,
    scope?: number,
  ): void;
  /** Set the given offload flags; returns the flags as they were before. */
  ethtool(netns: string, ifname: string, set: Partial<Record<keyof NativeOffloads, boolean>>): NativeOffloads;
  /** A raw IPPROTO_IPIP socket that drops everything (see native/sys.cc); returns its descriptor. */
  ipipGuard(netns: string, addr: number, ifname: string): number;
  /** A stable identity of the namespace: "cookie:<n>" (SO_NETNS_COOKIE) or "ino:<dev>:<inode>". */
  netnsId(netns: string): string;
  /**
   * SO_PEERCRED of a connected Unix socket: the process at the other end (as it was when it
   * connected). For lvsd's control socket log (src/control/server.ts). Throws on a bad fd.
   */
  peerCred(fd: number): NativePeerCred;
  /**
   * madvise(MADV_HUGEPAGE) over the whole 2 MiB pages inside `buf`: bytes advised, or -errno.
   * Optional: builds before it lack it (no ABI change).
   */
  adviseHugePages?(buf: ArrayBuffer): number;
}

/** What one xdpCopy call moved. */
export interface NativeXdpCopyResult {
  aToB: number;
  bToA: number;
  /** Receive rounds (each: both RX rings looked at once). */
  rounds: number;
  /** Rounds in which a link gave a whole batch (256 frames): the copier is behind. */
  fullRounds: number;
  txDropped: number;
}

/** Who is at the other end of a Unix socket (struct ucred). */
export interface NativePeerCred {
  pid: number;
  uid: number;
  gid: number;
}

/** Slots of the counter array filled by NativeLink.stats (native/link.h StatSlot). */
export const STAT = {
  RX_PACKETS: 0,
  RX_BYTES: 1,
  TX_PACKETS: 2,
  TX_BYTES: 3,
  RX_DROPPED: 4,
  TX_DROPPED: 5,
  RX_TRUNCATED: 6,
  KERNEL_DROPS: 7,
  LAST_ERRNO: 8,
  CSUM_PARTIAL: 9,
  CSUM_FIXED: 10,
  RX_GSO: 11,
  RX_COPIED: 12,
  TX_COPIED: 13,
  TX_IN_PLACE: 14,
} as const;
export const STAT_COUNT = 15;

const ADDON_ABI = 15;
const here = dirname(fileURLToPath(import.meta.url));
let cached: NativeAddon | undefined;

/** Where to look for a build output, nearest first (src/datapath/io and dist/src/datapath/io both work). */
function candidates(file: string): string[] {
  const out: string[] = [];
  let dir = here;
  for (let up = 0; up < 7; up++) {
    out.push(join(dir, "build", "Release", file), join(dir, "build", "Debug", file));
    dir = dirname(dir);
  }
  return out;
}

/** Path of a build output (the addon or bench/e2e/tapcopy), or undefined if it is not built. */
export function buildOutput(file: string): string | undefined {
  return candidates(file).find((p) => existsSync(p));
}

/** Load the addon (once). Throws IoError ERR_IO_NATIVE_MISSING with a clear message. */
export function loadNative(): NativeAddon {
  if (cached !== undefined) return cached;
  const env = process.env["LVS_IO_ADDON"];
  const tried = env ? [env] : candidates("lvs_io.node");
  const path = tried.find((p) => existsSync(p));
  if (process.platform !== "linux") {
    throw new IoError(
      IoErrorCode.NATIVE_MISSING,
      `the TAP/AF_PACKET I/O addon is Linux-only (${process.platform})`,
    );
  }
  if (path === undefined) {
    throw new IoError(
      IoErrorCode.NATIVE_MISSING,
      "the native I/O addon is not built (looked for lvs_io.node in build/Release and build/Debug). " +
        "Build it with `npm ci` or `npx node-gyp rebuild` (needs python3, make, g++).",
    );
  }
  let mod: NativeAddon;
  try {
    mod = createRequire(import.meta.url)(path) as NativeAddon;
  } catch (err) {
    throw new IoError(
      IoErrorCode.NATIVE_MISSING,
      `cannot load the native I/O addon ${path}: ${(err as Error).message}. Rebuild it with \`npx node-gyp rebuild\`.`,
      { cause: err },
    );
  }
  if (mod.abiVersion !== ADDON_ABI) {
    throw new IoError(
      IoErrorCode.NATIVE_MISSING,
      `native I/O addon ${path} is stale (abi ${mod.abiVersion}, want ${ADDON_ABI}): rebuild with \`npx node-gyp rebuild\``,
    );
  }
  cached = mod;
  return mod;
}

/** True when the addon can be loaded (for tests and tools that want to skip rather than fail). */
export function nativeAvailable(): boolean {
  try {
    loadNative();
    return true;
  } catch {
    return false;
  }
}

/**
 * Ask for transparent huge pages under large arrays (the connection table's: `ConnTable.buffers`),
 * before they are first touched, so that random lookups in a table of a million entries miss the
 * TLB far less (bench/RESULTS.md, issue 13 §6). Returns the bytes advised in all (0 without the
 * addon, with an addon built before it, or where the kernel refuses: no THP support).
 */
export function adviseHugePages(bufs: readonly ArrayBuffer[]): number {
  if (!nativeAvailable()) return 0;
  const advise = loadNative().adviseHugePages;
  if (advise === undefined) return 0;
  let total = 0;
  for (const b of bufs) {
    const n = advise(b);
    if (n > 0) total += n;
  }
  return total;
}

/** Resolve a namespace name (as `ip netns` names it) or a path (/proc/PID/ns/net) to a path. */
export function netnsPath(ns: string): string {
  if (ns.includes("/")) return ns;
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(ns) || ns === "." || ns === "..") {
    throw new IoError(IoErrorCode.INVALID, `bad network namespace name: ${JSON.stringify(ns)}`);
  }
  return `/var/run/netns/${ns}`;
}

/** Counters beyond LinkStats, for diagnostics. */
export interface LinkDetail extends LinkStats {
  /** Frames longer than a slot or ring frame (GSO super-packets on veth: turn off TSO/GSO on the peer). */
  rxTruncated: number;
  /** Drops reported by the kernel (PACKET_STATISTICS, or a TAP's queue overflow). */
  kernelDrops: number;
  /**
   * AF_PACKET frames a local sender left with an unfinished TCP/UDP checksum
   * (TP_STATUS_CSUMNOTREADY: veth, or virtio with offloads).
   */
  csumPartial: number;
  /**
   * Of those, the IPv4 TCP/UDP frames (also inside IPIP) whose checksum the addon completed before
   * handing them over, so they can be forwarded as they are. The rest (IPv6, fragments, other
   * protocols) are passed on unchanged.
   */
  csumFixed: number;
  /**
   * Frames longer than MTU + 18 (GSO/TSO super-frames a local sender handed over unsegmented).
   * They do not fit a slot and are dropped (also counted in rxTruncated and rxDropped): turn off
   * TSO/GSO on the sending interface (src/datapath/io/netconf.ts disableOffloads).
   */
  rxGso: number;
  /** AF_XDP: frames copied out of the UMEM into a batch's own slab (recv without a lent UMEM). 0 otherwise. */
  rxCopied: number;
  /**
   * AF_XDP: frames copied into a UMEM chunk to be sent (frames the engine built, frames from
   * another link). 0 otherwise.
   */
  txCopied: number;
  /** AF_XDP: frames sent by descriptor from the UMEM chunk they were received in (no copy). 0 otherwise. */
  txInPlace: number;
  /** Last hard errno seen on the data path, 0 if none. */
  lastErrno: number;
}

/** A native link's RX ring (AF_XDP: UMEM) lent to FrameBatches (views made once, at open). */
class RingMemory implements FrameMemory {
  readonly buf: Uint8Array;
  readonly dv: DataView;
  readonly slotSize: number;
  private readonly handle: NativeLink;

  constructor(handle: NativeLink, ring: ArrayBuffer) {
    this.handle = handle;
    this.buf = new Uint8Array(ring);
    this.dv = new DataView(ring);
    this.slotSize = handle.ringFrameSize;
  }

  release(): void {
    this.handle.release();
  }
}

/**
 * LinkIo over a NativeLink: the data path is one native call per batch, no allocation. A link
 * with a zero-copy ring (AF_PACKET ring mode, AF_XDP) lends an empty batch its RX ring or UMEM
 * (FrameBatch.view)
 * and leaves the frames there; a batch that already holds frames in its own slab gets copies
 * (as every other backend does), and a batch holding another link's memory gets nothing this
 * round (the frames wait for the next one: readiness is level-triggered).
 */
export class NativeLinkIo implements LinkIo {
  readonly name: string;
  readonly mac: Uint8Array;
  readonly mtu: number;
  readonly ifindex: number;
  protected readonly handle: NativeLink;
  /** The RX ring as FrameMemory (zero-copy), or null when this link copies into the batch. */
  readonly memory: FrameMemory | null;
  private readonly counters = new Float64Array(STAT_COUNT);
  private closed = false;

  /**
   * `memory`: the memory this link lends, when another link published it (an AF_XDP link sharing
   * another's UMEM); by default the link's own `ring`, if any.
   */
  constructor(handle: NativeLink, mac: Uint8Array, memory?: FrameMemory | null) {
    this.handle = handle;
    this.name = handle.name;
    this.mac = mac;
    this.mtu = handle.mtu;
    this.ifindex = handle.ifindex;
    this.memory =
      memory !== undefined
        ? memory
        : handle.ring !== null && handle.ring !== undefined
          ? new RingMemory(handle, handle.ring)
          : null;
  }

  /** The descriptor (for diagnostics; do not read or close it). -1 once closed. */
  get fd(): number {
    return this.closed ? -1 : this.handle.fd;
  }

  recv(batch: FrameBatch, linkId: number): number {
    const start = batch.count;
    const max = batch.capacity - start;
    if (max <= 0) return 0;
    const mem = this.memory;
    let n: number;
    if (mem !== null && (batch.memory === mem || (start === 0 && batch.memory === null))) {
      n = this.handle.rxView(batch.off, batch.len, start, max);
      if (n > 0 && batch.memory === null) batch.view(mem);
    } else if (batch.memory === null) {
      n = this.handle.rx(batch.buf, batch.off, batch.len, start, max, batch.slotSize, HEADROOM);
    } else {
      return 0; // the batch holds another link's frames in that link's memory
    }
    if (n <= 0) return 0; // nothing waiting, closed, or failed (counted in detail().lastErrno)
    const end = start + n;
    const link = batch.link;
    const egress = batch.egress;
    for (let i = start; i < end; i++) {
      link[i] = linkId;
      egress[i] = EGRESS_NONE;
    }
    batch.count = end;
    return n;
  }

  send(batch: FrameBatch, linkId: number): number {
    return this.handle.tx(batch.buf, batch.off, batch.len, batch.egress, batch.count, linkId);
  }

  onReadable(cb: (() => void) | null): void {
    if (cb === null) {
      this.handle.poll(null);
      return;
    }
    if (this.closed) throw new IoError(IoErrorCode.CLOSED, `link ${this.name} is closed`);
    this.handle.poll(cb);
  }

  get stats(): LinkStats {
    const c = this.readCounters();
    return {
      rxPackets: c[STAT.RX_PACKETS]!,
      rxBytes: c[STAT.RX_BYTES]!,
      txPackets: c[STAT.TX_PACKETS]!,
      txBytes: c[STAT.TX_BYTES]!,
      rxDropped: c[STAT.RX_DROPPED]!,
      txDropped: c[STAT.TX_DROPPED]!,
    };
  }

  /** All counters, including why frames were lost. */
  detail(): LinkDetail {
    const c = this.readCounters();
    return {
      ...this.stats,
      rxTruncated: c[STAT.RX_TRUNCATED]!,
      kernelDrops: c[STAT.KERNEL_DROPS]!,
      csumPartial: c[STAT.CSUM_PARTIAL]!,
      csumFixed: c[STAT.CSUM_FIXED]!,
      rxGso: c[STAT.RX_GSO]!,
      rxCopied: c[STAT.RX_COPIED]!,
      txCopied: c[STAT.TX_COPIED]!,
      txInPlace: c[STAT.TX_IN_PLACE]!,
      lastErrno: c[STAT.LAST_ERRNO]!,
    };
  }

  /** Close the link; its RX ring (if lent) is detached, so views of it read as empty. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.handle.close();
  }

  private readCounters(): Float64Array {
    this.handle.stats(this.counters);
    return this.counters;
  }
}
