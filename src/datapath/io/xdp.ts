/**
 * AF_XDP backend: an XDP socket bound to one queue of an existing interface (a veth end, a NIC),
 * with its UMEM (shared by RX and TX) and four rings mapped into the process, and an XDP program
 * that redirects the queue's frames to the socket. The addon builds that program from BPF
 * instructions and loads it with the bpf() system call (no clang, no libbpf): it looks up
 * `rx_queue_index` in an XSKMAP and calls bpf_redirect_map with XDP_PASS as the fallback, so
 * frames of a queue without a socket go to the kernel.
 *
 * `redirect: "all"` (default) takes every frame of the queue: the interface is lvsd's alone
 * (dedicated), the kernel sees nothing arriving on it. `redirect: "mac"` takes only frames to
 * the interface's MAC and to group (broadcast/multicast) addresses, and passes the rest (frames
 * a promiscuous device sees for other hosts) to the kernel.
 *
 * The program is attached with a bpf_link (BPF_LINK_CREATE, BPF_XDP) in driver mode, generic
 * (skb) mode where the driver has no XDP; the link belongs to the descriptor, so the program is
 * detached on close() and when the process dies.
 *
 * One program, several sockets: by itself, each openXdp makes its own XSKMAP and program and
 * attaches them, so an interface takes one socket (an interface has one XDP program).
 * attachXdpProgram makes one XSKMAP with `queues` entries and one program for the whole
 * interface and attaches it; the XdpProgramHandle it returns holds the map, the program and the
 * bpf_link. Sockets opened with `program` (one per queue, each with a UMEM of its own, e.g. one
 * per worker thread) make no map or program: each enters itself into the handle's XSKMAP at its
 * queue, and since the program looks up `rx_queue_index`, each queue's frames reach its socket.
 * A socket that closes leaves the map (the kernel removes it) and the program stays attached;
 * the handle must outlive its sockets, and closing it detaches the program (a socket still open
 * then receives nothing more). The handle's descriptors are the process's, so a worker thread
 * can use the handle's mapFd, xdpMode and redirect as posted to it (XdpProgramRef).
 *
 * The socket is bound zero-copy where the driver supports it (never on veth), in copy mode
 * otherwise, with XDP_USE_NEED_WAKEUP: the addon makes a sendto() only when the TX ring's
 * need_wakeup flag asks for it, a recvfrom() only when the fill ring's does.
 *
 * No copies on the forwarding path (`view`, the default): the addon publishes the whole UMEM as
 * one external ArrayBuffer and recv lends it to an empty batch (FrameBatch.view), as the
 * zero-copy AF_PACKET ring does: each received frame stays in its UMEM chunk, 256 bytes
 * (XDP_PACKET_HEADROOM) after the chunk's start (room to prepend an IPIP header) with the rest of
 * the chunk as tail room, and the engine parses and rewrites it there. send puts a frame the
 * batch got from this link back on the TX ring by its own address (offset and length as the
 * engine left them), so a frame forwarded out of the link it came in by is never copied
 * (detail().txInPlace counts them), and so does a frame from another AF_XDP link bound to the
 * same UMEM (`share`: XDP_SHARED_UMEM; lvsd binds all its AF_XDP links to the first one's);
 * frames from elsewhere (the engine's own ARP replies, ICMP errors and SYN-ACKs, frames from
 * TAP or AF_PACKET links, or from an AF_XDP link with a UMEM of its own) are copied into a free
 * chunk (detail().txCopied). When the batch is released (the
 * director does it after the sends), the chunks of frames that did not leave by descriptor go back
 * to the fill ring; completions are reaped in batches and their chunks go back to the fill ring
 * too, in one ring update, beyond `txFrames` chunks kept free for the copies. With
 * `view: false` (or a batch that already holds frames in its own slab) recv copies frames out
 * of the UMEM into the batch instead (detail().rxCopied).
 *
 * Frames carry no checksum state: a local sender on veth that leaves TCP/UDP checksums to
 * offload (CHECKSUM_PARTIAL) hands over frames whose checksum is unfinished, and lvsd would
 * forward them so. Turn TX checksum offload off on such senders (netconf.ts
 * `disableOffloads(ns, dev, { txCsum: false })`); frames from a real wire are complete.
 *
 * Unavailable XDP or AF_XDP (no such interface, a kernel without AF_XDP or bpf(), a refused
 * program, an interface that already has an XDP program, no privileges) is an IoError whose
 * message says what failed and to use `raw=` (AF_PACKET) or `tap=` instead.
 */
import { closeSync } from "node:fs";
import { IoError, IoErrorCode, toIoError } from "./link.js";
import {
  loadNative,
  type NativeLink,
  NativeLinkIo,
  type NativeXdpAttached,
  type NativeXdpAttachOptions,
  type NativeXdpInfo,
  type NativeXdpOptions,
  netnsPath,
} from "./native.js";

export type { NativeXdpInfo };

export interface XdpOptions {
  /** Existing interface to bind to. */
  ifname: string;
  /** Queue (default 0). Frames of other queues go to the kernel. */
  queue?: number;
  /** "all" (default): every frame of the queue; "mac": frames to the interface's MAC and group addresses. */
  redirect?: "all" | "mac";
  /** "auto" (default): zero-copy if the driver supports it; "on": zero-copy or fail; "off": copy mode. */
  zeroCopy?: "auto" | "on" | "off";
  /** "auto" (default): driver (native) XDP, else generic; "drv" / "skb": only that mode. */
  attach?: "auto" | "drv" | "skb";
  /** UMEM chunks for RX (fill ring) and for TX (TX ring); rounded up to a power of two, 64..65536 (default 2048 each). */
  rxFrames?: number;
  txFrames?: number;
  /**
   * Lend the UMEM to batches (default true): frames are rewritten where they were received and a
   * frame leaving by the same link goes out by descriptor. false: recv copies into the batch.
   */
  view?: boolean;
  /**
   * Chunks in the UMEM (default rxFrames + txFrames), 128..1048576: make room for the links that
   * will `share` it (each brings its rxFrames + txFrames).
   */
  umemFrames?: number;
  /**
   * Bind to this open AF_XDP link's UMEM (XDP_SHARED_UMEM) instead of registering one: frames
   * received on either link leave by the other by descriptor too. The two links lend batches
   * the same memory (the first link's). Close them together: once the first is closed, the UMEM
   * is no longer lent to JS.
   */
  share?: XdpIo;
  /** Network namespace (an `ip netns` name or a path) the interface lives in. */
  netns?: string;
  /**
   * Preferred busy polling, in µs (0 = off, the default): SO_BUSY_POLL with SO_PREFER_BUSY_POLL,
   * and each receive first runs the queue's NAPI poll in this thread (the XDP program and the
   * copy into the UMEM) for up to `busyBudget` frames. With the interface's
   * napi_defer_hard_irqs and gro_flush_timeout set (lvsd does it: src/control/napi.ts) the kernel
   * then leaves that work to lvsd while lvsd keeps polling, so a flood beyond what lvsd can take
   * is dropped in the driver's queue before any of that work is spent on it.
   */
  busyPoll?: number;
  /** Frames per busy poll, 1..65535 (default 64). */
  busyBudget?: number;
  /**
   * An XDP program attached with attachXdpProgram: the socket makes no XSKMAP, program or
   * bpf_link of its own, it enters its queue's slot of the program's XSKMAP (so `queue` must be
   * below the program's `queues`); `redirect` and `attach` are the program's. The program must
   * stay attached (the handle open) while the socket is open.
   */
  program?: XdpProgramHandle | XdpProgramRef;
}

export interface XdpProgramOptions {
  /** Existing interface to attach to. */
  ifname: string;
  /** Network namespace (an `ip netns` name or a path) the interface lives in. */
  netns?: string;
  /** Entries of the XSKMAP, 1..4096: sockets can be opened on queues 0..queues-1. */
  queues: number;
  /** As XdpOptions.redirect (default "all"). */
  redirect?: "all" | "mac";
  /** As XdpOptions.attach (default "auto"). */
  attach?: "auto" | "drv" | "skb";
}

/**
 * An XDP program and its XSKMAP attached to an interface (attachXdpProgram) for sockets opened
 * with `program`. Holds three descriptors: the XSKMAP, the program and the bpf_link; close()
 * detaches the program. Close it after the sockets.
 */
export class XdpProgramHandle {
  /** The XSKMAP (openXdp enters its socket at key `queue`). */
  readonly mapFd: number;
  /** "drv": the program runs in the driver (native XDP); "skb": generic XDP. */
  readonly xdpMode: "drv" | "skb";
  /** The XSKMAP's entries: sockets on queues 0..queues-1. */
  readonly queues: number;
  readonly ifname: string;
  readonly redirect: "all" | "mac";
  private readonly progFd: number;
  private readonly linkFd: number;
  private open = true;

  /** Made by attachXdpProgram. */
  constructor(attached: NativeXdpAttached, ifname: string, queues: number, redirect: "all" | "mac") {
    this.mapFd = attached.mapFd;
    this.progFd = attached.progFd;
    this.linkFd = attached.linkFd;
    this.xdpMode = attached.xdpMode;
    this.ifname = ifname;
    this.queues = queues;
    this.redirect = redirect;
  }

  get closed(): boolean {
    return !this.open;
  }

  /** Detach the program (the bpf_link first) and close the XSKMAP. Idempotent. */
  close(): void {
    if (!this.open) return;
    this.open = false;
    for (const fd of [this.linkFd, this.progFd, this.mapFd]) {
      try {
        closeSync(fd);
      } catch {
        // already closed
      }
    }
  }
}

/**
 * What openXdp uses of a program: an XdpProgramHandle, or in a worker thread (a handle cannot be
 * posted as such) these fields of it as posted. The descriptors are the whole process's.
 */
export type XdpProgramRef = Pick<XdpProgramHandle, "mapFd" | "xdpMode" | "redirect">;

const FALLBACK = "use --link raw=IFACE (AF_PACKET) or tap=NAME instead";
const REDIRECTS: readonly string[] = ["all", "mac"];
const ATTACH_MODES: readonly string[] = ["auto", "drv", "skb"];

export class XdpIo extends NativeLinkIo {
  /** "drv": the program runs in the driver (native XDP); "skb": generic XDP. */
  readonly xdpMode: "drv" | "skb";
  readonly zeroCopy: boolean;
  readonly queue: number;
  readonly redirect: "all" | "mac";
  readonly rxRingFrames: number;
  readonly txRingFrames: number;
  /** Bound to another link's UMEM (`share`). */
  readonly umemShared: boolean;

  constructor(handle: NativeLink & NativeXdpInfo, share?: XdpIo, program?: XdpProgramRef) {
    super(handle, handle.mac, share !== undefined ? share.memory : undefined);
    this.umemShared = handle.umemShared;
    if (program !== undefined) this.xdpMode = program.xdpMode;
    else if (handle.xdpMode !== "map") this.xdpMode = handle.xdpMode;
    else {
      handle.close();
      throw new Error("XdpIo: a socket on a shared XSKMAP needs its program");
    }
    this.zeroCopy = handle.zeroCopy;
    this.queue = handle.queue;
    this.redirect = handle.redirect;
    this.rxRingFrames = handle.rxRingFrames;
    this.txRingFrames = handle.txRingFrames;
  }

  /** The addon's link object (for `share`). */
  static nativeOf(x: XdpIo): NativeLink {
    return x.handle;
  }
}

/** Open an AF_XDP socket on an interface queue. Throws IoError with a stable code. */
export function openXdp(opts: XdpOptions): XdpIo {
  const q = opts.queue ?? 0;
  const what = `open AF_XDP socket on ${opts.ifname} queue ${q}`;
  if (typeof opts.ifname !== "string" || opts.ifname.length === 0 || Buffer.byteLength(opts.ifname) > 15) {
    throw new IoError(IoErrorCode.INVALID, `${what}: ifname must be 1..15 bytes`);
  }
  if (!Number.isInteger(q) || q < 0 || q > 4095)
    throw new IoError(IoErrorCode.INVALID, `${what}: queue must be an integer in 0..4095`);
  for (const [k, v] of [
    ["rxFrames", opts.rxFrames],
    ["txFrames", opts.txFrames],
  ] as const) {
    if (v !== undefined && (!Number.isInteger(v) || v < 64 || v > 65536)) {
      throw new IoError(IoErrorCode.INVALID, `${what}: ${k} must be an integer in 64..65536`);
    }
  }
  const program = opts.program;
  if (program !== undefined) {
    if (program instanceof XdpProgramHandle && program.closed)
      throw new IoError(IoErrorCode.INVALID, `${what}: the XDP program handle is closed`);
    if (!Number.isInteger(program.mapFd) || program.mapFd < 0)
      throw new IoError(IoErrorCode.INVALID, `${what}: program.mapFd must be a file descriptor`);
    if (program.xdpMode !== "drv" && program.xdpMode !== "skb")
      throw new IoError(IoErrorCode.INVALID, `${what}: program.xdpMode must be "drv" or "skb"`);
    if (!REDIRECTS.includes(program.redirect))
      throw new IoError(IoErrorCode.INVALID, `${what}: program.redirect must be "all" or "mac"`);
    if (opts.redirect !== undefined && opts.redirect !== program.redirect)
      throw new IoError(
        IoErrorCode.INVALID,
        `${what}: redirect is the program's ("${program.redirect}"), not "${opts.redirect}"`,
      );
  }
  const o: NativeXdpOptions = {
    ifname: opts.ifname,
    queue: q,
    redirect: program?.redirect ?? opts.redirect ?? "all",
    zeroCopy: opts.zeroCopy ?? "auto",
    attach: opts.attach ?? "auto",
  };
  if (opts.rxFrames !== undefined) o.rxFrames = opts.rxFrames;
  if (opts.txFrames !== undefined) o.txFrames = opts.txFrames;
  if (opts.view !== undefined) o.view = opts.view;
  if (opts.umemFrames !== undefined) {
    if (!Number.isInteger(opts.umemFrames) || opts.umemFrames < 128 || opts.umemFrames > 1 << 20)
      throw new IoError(IoErrorCode.INVALID, `${what}: umemFrames must be an integer in 128..1048576`);
    o.umemFrames = opts.umemFrames;
  }
  if (opts.share !== undefined) o.share = XdpIo.nativeOf(opts.share);
  if (opts.busyPoll !== undefined) {
    if (!Number.isInteger(opts.busyPoll) || opts.busyPoll < 0 || opts.busyPoll > 1_000_000)
      throw new IoError(IoErrorCode.INVALID, `${what}: busyPoll must be an integer in 0..1000000 (µs)`);
    o.busyPoll = opts.busyPoll;
  }
  if (opts.busyBudget !== undefined) {
    if (!Number.isInteger(opts.busyBudget) || opts.busyBudget < 1 || opts.busyBudget > 65535)
      throw new IoError(IoErrorCode.INVALID, `${what}: busyBudget must be an integer in 1..65535`);
    o.busyBudget = opts.busyBudget;
  }
  if (program !== undefined) o.xskMapFd = program.mapFd;
  if (opts.netns !== undefined) o.netns = netnsPath(opts.netns);
  const native = loadNative();
  let handle: NativeLink & NativeXdpInfo;
  try {
    handle = native.openXdp(o);
  } catch (err) {
    throw xdpError(err, what, opts.netns);
  }
  return new XdpIo(handle, opts.share, program);
}

/**
 * Attach one XDP program with an XSKMAP of `queues` entries to an interface, for sockets opened
 * with `program` (one per queue). Throws IoError with a stable code: INVALID for bad options
 * (before touching the system), NO_XDP (the interface already has an XDP program, no bpf(), a
 * refused program), NO_DEVICE, NO_PRIVILEGE, NO_NETNS, with the fallback named.
 */
export function attachXdpProgram(opts: XdpProgramOptions): XdpProgramHandle {
  const what = `attach XDP program to ${opts.ifname}`;
  if (typeof opts.ifname !== "string" || opts.ifname.length === 0 || Buffer.byteLength(opts.ifname) > 15) {
    throw new IoError(IoErrorCode.INVALID, `${what}: ifname must be 1..15 bytes`);
  }
  if (!Number.isInteger(opts.queues) || opts.queues < 1 || opts.queues > 4096)
    throw new IoError(IoErrorCode.INVALID, `${what}: queues must be an integer in 1..4096`);
  const redirect = opts.redirect ?? "all";
  if (!REDIRECTS.includes(redirect))
    throw new IoError(IoErrorCode.INVALID, `${what}: redirect must be "all" or "mac"`);
  const attach = opts.attach ?? "auto";
  if (!ATTACH_MODES.includes(attach))
    throw new IoError(IoErrorCode.INVALID, `${what}: attach must be "auto", "drv" or "skb"`);
  const o: NativeXdpAttachOptions = { ifname: opts.ifname, queues: opts.queues, redirect, attach };
  if (opts.netns !== undefined) o.netns = netnsPath(opts.netns);
  const native = loadNative();
  let attached: NativeXdpAttached;
  try {
    attached = native.attachXdp(o);
  } catch (err) {
    throw xdpError(err, what, opts.netns);
  }
  return new XdpProgramHandle(attached, opts.ifname, opts.queues, redirect);
}

/** An addon error as IoError; XDP/AF_XDP failures (xdpCode) with the fallback named. */
function xdpError(err: unknown, what: string, netns: string | undefined): unknown {
  const e = toIoError(err, netns === undefined ? what : `${what} in netns ${netns}`);
  if (e instanceof IoError && (e.code !== IoErrorCode.INVALID || xdpCode(e) === IoErrorCode.NO_XDP)) {
    return new IoError(xdpCode(e), `${e.message}; no AF_XDP link: ${FALLBACK}`, {
      ...(e.errno !== undefined ? { errno: e.errno } : {}),
      ...(e.syscall !== undefined ? { syscall: e.syscall } : {}),
      cause: err,
    });
  }
  return e;
}

/** NO_XDP for failures of the XDP/AF_XDP steps; privilege, namespace and device codes stay. */
function xdpCode(e: IoError): IoErrorCode {
  const stage = (e.cause as { stage?: unknown } | undefined)?.stage;
  if (
    e.code === IoErrorCode.NO_PRIVILEGE ||
    e.code === IoErrorCode.NO_NETNS ||
    e.code === IoErrorCode.NO_DEVICE
  )
    return e.code;
  // EINVAL from these steps (a queue the device does not have, a kernel that refuses the
  // program) is the kernel's refusal, not a bad option of ours.
  if (typeof stage === "string" && /^(xsk|xsk-bind|bpf-map|bpf-prog|xdp-attach)$/.test(stage))
    return IoErrorCode.NO_XDP;
  return e.code;
}
