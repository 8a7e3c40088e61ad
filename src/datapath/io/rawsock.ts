/**
 * AF_PACKET backend: a raw socket bound to an existing interface (a veth end, a NIC). The
 * director shares the interface with the kernel and uses its MAC.
 *
 * mode "ring" (default): PACKET_MMAP TPACKET_V2 RX and TX rings, no system call to receive.
 *   Zero copy (default, `zeroCopy`): the RX ring is mapped into JS (`memory`) and recv lends it
 *   to an empty batch (FrameBatch.view): the engine parses and rewrites each frame where the
 *   kernel wrote it (PACKET_RESERVE leaves HEADROOM in front of it, the ring frame has tail room
 *   after it), and the director gives the ring slots back once the batch is sent
 *   (FrameBatch.release). send writes each frame once into the TX ring and makes one send() for
 *   the whole batch. With `zeroCopy: false`, or when a batch already holds frames, recv copies
 *   frames out of the ring into the batch's slab instead.
 * mode "mmsg": one recvmmsg()/sendmmsg() per batch, straight into/out of the batch's slots.
 *
 * send() in ring mode counts a frame as sent once it is in the TX ring. If the device or its
 * queue is full, the kernel keeps the frame at the head of the ring and retries it (on our next
 * send, or from a 1 ms timer while frames wait): backpressure, not loss. Frames are dropped and
 * counted in txDropped only when the ring itself is full. In mmsg mode a refused frame is dropped.
 *
 * By default a classic BPF filter keeps only what the director needs: frames to the interface's
 * MAC or to `macs` (IPv4, ARP, 802.1Q), and ARP to broadcast/multicast. `macs: "all"` turns it off.
 * A group (multicast) address in `macs` is also joined on the interface (PACKET_ADD_MEMBERSHIP,
 * PACKET_MR_MULTICAST) for as long as the socket lives: lvsd passes VRRP's and connection sync's.
 * PACKET_IGNORE_OUTGOING hides our own transmissions from our receive side. `ipip` replaces that
 * filter with a userspace IPIP decapsulator's: untagged IPv4 protocol 4 addressed to this host
 * (PACKET_HOST) at one of the given addresses.
 *
 * The kernel stack still sees every frame too: give the interface no address the director uses,
 * or it will answer (RST, ICMP) for it. On veth, turn off the peer's offloads
 * (netconf.ts `disableOffloads(ns, peer)`, i.e. `ethtool -K PEER tso off gso off gro off`): GSO
 * super-packets are too long for a slot and are dropped (detail().rxGso, also in rxTruncated).
 * TCP/UDP checksums a local sender left to offload (detail().csumPartial) are completed by the
 * addon before the frame reaches the batch (detail().csumFixed), so forwarded frames are valid.
 */
import { IoError, IoErrorCode, toIoError } from "./link.js";
import { loadNative, type NativeLink, NativeLinkIo, type NativeRawOptions, netnsPath } from "./native.js";

export interface RawOptions {
  /** Existing interface to bind to. */
  ifname: string;
  /**
   * Which frames to receive: undefined (default) = to the interface's MAC plus group ARP;
   * a list = also to these MACs, unicast or multicast (the device is asked to accept them:
   * PACKET_MR_UNICAST or PACKET_MR_MULTICAST); "all" = no filter. Not broadcast.
   */
  macs?: readonly Uint8Array[] | "all";
  /** "ring" (PACKET_MMAP, default) or "mmsg" (recvmmsg/sendmmsg). */
  mode?: "ring" | "mmsg";
  /** RX ring frames (default 2048) and TX ring frames (default 512), ring mode only. */
  rxFrames?: number;
  txFrames?: number;
  /** PACKET_QDISC_BYPASS: skip the interface's qdisc on transmit (no shaping, less work). Default on. */
  qdiscBypass?: boolean;
  /** Ring mode: lend the RX ring to batches instead of copying frames out (default true). */
  zeroCopy?: boolean;
  /**
   * Busy polling, in µs (0 = off, the default): SO_BUSY_POLL plus SO_PREFER_BUSY_POLL. Waiting
   * for frames spins on the device's NAPI context instead of sleeping until its interrupt: lower
   * latency for more CPU. Only devices with NAPI (real NICs) gain from it.
   */
  busyPoll?: number;
  /** Network namespace (an `ip netns` name or a path) the interface lives in. */
  netns?: string;
  /**
   * Receive only IPIP (IPv4 protocol 4) addressed to this host at one of these addresses (uint32,
   * at most 32), for a userspace decapsulator. Excludes `macs`.
   */
  ipip?: readonly number[];
  /**
   * Data-path workers (docs/workers.md): join PACKET_FANOUT group `group` (0..65535) of type
   * PACKET_FANOUT_CBPF, whose classic BPF `program` (src/datapath/workers/steer.ts) picks the
   * member a frame goes to. Members are numbered in the order they joined.
   */
  fanout?: { group: number; program: Uint8Array };
}

export class RawIo extends NativeLinkIo {
  readonly mode: "ring" | "mmsg";
  readonly rxRingFrames: number;
  readonly txRingFrames: number;

  constructor(handle: NativeLink) {
    super(handle, handle.mac);
    this.mode = handle.kind === "mmsg" ? "mmsg" : "ring";
    this.rxRingFrames = handle.rxRingFrames;
    this.txRingFrames = handle.txRingFrames;
  }

  /**
   * Replace the fanout group's steering program (control plane, between batches; the socket must
   * have joined a group with `fanout`). Throws IoError.
   */
  setFanoutProgram(program: Uint8Array): void {
    try {
      this.handle.setFanoutProgram(program);
    } catch (err) {
      throw toIoError(err, `fanout program on ${this.name}`);
    }
  }
}

/** Open an AF_PACKET socket on an interface. Throws IoError with a stable code. */
export function openRaw(opts: RawOptions): RawIo {
  const what = `open raw socket on ${opts.ifname}`;
  if (typeof opts.ifname !== "string" || opts.ifname.length === 0 || Buffer.byteLength(opts.ifname) > 15) {
    throw new IoError(IoErrorCode.INVALID, `${what}: ifname must be 1..15 bytes`);
  }
  const mode = opts.mode ?? "ring";
  if (mode !== "ring" && mode !== "mmsg")
    throw new IoError(IoErrorCode.INVALID, `${what}: mode must be ring or mmsg`);
  for (const [k, v] of [
    ["rxFrames", opts.rxFrames],
    ["txFrames", opts.txFrames],
  ] as const) {
    if (v !== undefined && (!Number.isInteger(v) || v < 8 || v > 1 << 20)) {
      throw new IoError(IoErrorCode.INVALID, `${what}: ${k} must be an integer in 8..1048576`);
    }
  }
  if (
    opts.busyPoll !== undefined &&
    (!Number.isInteger(opts.busyPoll) || opts.busyPoll < 0 || opts.busyPoll > 1_000_000)
  ) {
    throw new IoError(IoErrorCode.INVALID, `${what}: busyPoll must be an integer in 0..1000000 (µs)`);
  }
  const o: NativeRawOptions = {
    ifname: opts.ifname,
    mode,
    filter: opts.macs !== "all",
    qdiscBypass: opts.qdiscBypass ?? true,
    zeroCopy: opts.zeroCopy ?? true,
    busyPoll: opts.busyPoll ?? 0,
  };
  if (opts.macs !== undefined && opts.macs !== "all") {
    if (opts.macs.length > 31) throw new IoError(IoErrorCode.INVALID, `${what}: at most 31 extra MACs`);
    const flat = new Uint8Array(opts.macs.length * 6);
    opts.macs.forEach((m, i) => {
      if (m.length !== 6 || m.every((b) => b === 0xff)) {
        throw new IoError(
          IoErrorCode.INVALID,
          `${what}: macs[${i}] must be a 6-byte unicast or multicast (not broadcast) address`,
        );
      }
      flat.set(m, i * 6);
    });
    o.macs = flat;
  }
  if (opts.ipip !== undefined) {
    if (opts.macs !== undefined)
      throw new IoError(IoErrorCode.INVALID, `${what}: ipip and macs exclude each other`);
    if (opts.ipip.length === 0 || opts.ipip.length > 32)
      throw new IoError(IoErrorCode.INVALID, `${what}: ipip needs 1..32 addresses`);
    const flat = new Uint8Array(opts.ipip.length * 4);
    const dv = new DataView(flat.buffer);
    opts.ipip.forEach((a, i) => {
      if (!Number.isInteger(a) || a < 0 || a > 0xffffffff)
        throw new IoError(IoErrorCode.INVALID, `${what}: ipip[${i}] must be a uint32 IPv4 address`);
      dv.setUint32(i * 4, a);
    });
    o.ipip = flat;
  }
  if (opts.fanout !== undefined) {
    const g = opts.fanout.group;
    if (!Number.isInteger(g) || g < 0 || g > 65535)
      throw new IoError(IoErrorCode.INVALID, `${what}: fanout group must be an integer in 0..65535`);
    o.fanoutGroup = g;
    o.fanoutProgram = opts.fanout.program;
  }
  if (opts.rxFrames !== undefined) o.rxFrames = opts.rxFrames;
  if (opts.txFrames !== undefined) o.txFrames = opts.txFrames;
  if (opts.netns !== undefined) o.netns = netnsPath(opts.netns);
  const native = loadNative();
  let handle: NativeLink;
  try {
    handle = native.openRaw(o);
  } catch (err) {
    throw toIoError(err, opts.netns === undefined ? what : `${what} in netns ${opts.netns}`);
  }
  return new RawIo(handle);
}
