/**
 * LinkIo: what every I/O backend (TAP, AF_PACKET, in-memory, pcap) offers the engine.
 *
 * The engine owns the memory: a backend fills a FrameBatch on `recv` and drains the frames
 * marked for it on `send`, each in as few JS↔kernel crossings as it can (one native call per
 * batch for the native backends). Nothing is allocated per frame and the data path never throws:
 * a closed or failed link receives and sends nothing and counts the loss.
 *
 * The control plane opens and closes links and may throw IoError, whose `code` is stable.
 */
import type { FrameBatch } from "./batch.js";

/** Cumulative per-link counters (frames and bytes as handed to / taken from the kernel). */
export interface LinkStats {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  /** Frames lost on receive: too long for a slot or ring frame, or dropped by the kernel for want of room. */
  rxDropped: number;
  /** Frames the backend could not hand to the kernel (EAGAIN, full TX ring, bad length, errors). */
  txDropped: number;
}

export interface LinkIo {
  /** Interface name (kernel name of the TAP or of the interface the socket is bound to). */
  readonly name: string;
  /** The director's MAC address on this link. */
  readonly mac: Uint8Array;
  readonly mtu: number;
  /**
   * Append received frames at `batch.count` (up to `batch.capacity`), set `link[i] = linkId` and
   * `egress[i] = EGRESS_NONE` for each, advance `batch.count`, and return how many were added
   * (0 when nothing is waiting). Call again until it returns 0 to drain the link.
   */
  recv(batch: FrameBatch, linkId: number): number;
  /** Send every frame i < batch.count with `egress[i] === linkId`; returns how many were sent. */
  send(batch: FrameBatch, linkId: number): number;
  /**
   * Call `cb` on the main thread whenever the link has frames to read (level-triggered: called
   * again on the next loop turn if frames are left); `null` stops it. While a callback is set,
   * the link keeps the event loop alive.
   */
  onReadable(cb: (() => void) | null): void;
  readonly stats: LinkStats;
  /** Stop polling and release the descriptor (a TAP we created disappears). Idempotent. */
  close(): void;
}

/** Stable error codes thrown when opening or controlling a link. */
export const IoErrorCode = {
  /** The native addon is not built (build/Release/lvs_io.node missing or unloadable). */
  NATIVE_MISSING: "ERR_IO_NATIVE_MISSING",
  /** EPERM/EACCES: needs root or CAP_NET_ADMIN / CAP_NET_RAW. */
  NO_PRIVILEGE: "ERR_IO_NO_PRIVILEGE",
  /** The device name is taken: EBUSY (held by another process) or used by a device of another kind. */
  NAME_IN_USE: "ERR_IO_NAME_IN_USE",
  /** No interface (or no TAP to attach to) with that name. */
  NO_DEVICE: "ERR_IO_NO_DEVICE",
  /** The bridge to enslave to does not exist or is not a bridge. */
  NO_BRIDGE: "ERR_IO_NO_BRIDGE",
  /** The network namespace does not exist. */
  NO_NETNS: "ERR_IO_NO_NETNS",
  /** /dev/net/tun is missing (no TUN/TAP support). */
  NO_TUN: "ERR_IO_NO_TUN",
  /** An option is invalid (name too long, bad MAC, MTU out of range, ...). */
  INVALID: "ERR_IO_INVALID",
  /**
   * XDP or AF_XDP cannot be used on this interface or kernel (no AF_XDP sockets, bpf() or the
   * XDP program refused, another XDP program attached, bind to the queue refused): use an
   * AF_PACKET (raw=) or TAP link instead.
   */
  NO_XDP: "ERR_IO_NO_XDP",
  /** The link is closed. */
  CLOSED: "ERR_IO_CLOSED",
  /** Any other system-call failure; `errno` and `syscall` say which. */
  SYSCALL: "ERR_IO_SYSCALL",
} as const;
export type IoErrorCode = (typeof IoErrorCode)[keyof typeof IoErrorCode];

export class IoError extends Error {
  readonly code: IoErrorCode;
  /** errno name from the kernel ("EBUSY"), when a system call failed. */
  readonly errno: string | undefined;
  readonly syscall: string | undefined;
  constructor(
    code: IoErrorCode,
    message: string,
    detail?: { errno?: string; syscall?: string; cause?: unknown },
  ) {
    super(message, detail?.cause === undefined ? undefined : { cause: detail.cause });
    this.name = "IoError";
    this.code = code;
    this.errno = detail?.errno;
    this.syscall = detail?.syscall;
  }
}

/** The fields the native addon puts on the errors it throws. */
interface NativeErrorShape {
  message: string;
  code?: unknown;
  stage?: unknown;
  syscall?: unknown;
}

/**
 * Turn an error thrown by the native addon into an IoError with a stable code. `what` names the
 * operation for the message ("open TAP io1-t0"). Errors that are not from the addon pass through.
 */
export function toIoError(err: unknown, what: string): unknown {
  if (err instanceof IoError || !(err instanceof Error)) return err;
  const e = err as Error & NativeErrorShape;
  if (typeof e.stage !== "string" || typeof e.code !== "string") {
    return err instanceof TypeError || err instanceof RangeError
      ? new IoError(IoErrorCode.INVALID, `${what}: ${err.message}`, { cause: err })
      : err;
  }
  const errno = e.code;
  const stage = e.stage;
  const detail = { errno, syscall: typeof e.syscall === "string" ? e.syscall : "", cause: err };
  let code: IoErrorCode = IoErrorCode.SYSCALL;
  let hint = "";
  if (errno === "EPERM" || errno === "EACCES") {
    code = IoErrorCode.NO_PRIVILEGE;
    hint = " (run as root, or grant CAP_NET_ADMIN and CAP_NET_RAW)";
  } else if (stage === "netns") {
    code = errno === "ENOENT" ? IoErrorCode.NO_NETNS : IoErrorCode.SYSCALL;
  } else if (stage === "bridge") {
    code = errno === "ENODEV" || errno === "EOPNOTSUPP" ? IoErrorCode.NO_BRIDGE : IoErrorCode.SYSCALL;
  } else if (stage === "tun" && (errno === "ENOENT" || errno === "ENODEV" || errno === "ENXIO")) {
    code = IoErrorCode.NO_TUN;
    hint = " (is the tun module loaded?)";
  } else if (stage === "tunsetiff" && (errno === "EBUSY" || errno === "EEXIST")) {
    code = IoErrorCode.NAME_IN_USE;
  } else if (stage === "tunsetiff" && errno === "EINVAL" && /not a T(AP|UN)/.test(e.message)) {
    code = IoErrorCode.NAME_IN_USE;
  } else if ((stage === "attach" || stage === "ifname") && (errno === "ENODEV" || errno === "ENXIO")) {
    code = IoErrorCode.NO_DEVICE;
  } else if (errno === "EINVAL" || errno === "ENAMETOOLONG" || errno === "ERANGE") {
    code = IoErrorCode.INVALID;
  }
  return new IoError(code, `${what}: ${e.message}${hint}`, detail);
}
