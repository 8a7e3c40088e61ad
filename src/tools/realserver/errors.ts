/**
 * Typed errors of lvs-realserver, with stable codes. The CLI prints the message and exits with
 * `exitCode` (2 for bad usage, 1 for everything else).
 */
import { IoError, IoErrorCode } from "../../datapath/io/link.js";

export const RsErrorCode = {
  /** Bad command line. */
  USAGE: "ERR_RS_USAGE",
  /** An address that is malformed or cannot be a VIP / local address. */
  BAD_ADDRESS: "ERR_RS_BAD_ADDRESS",
  /** The network namespace does not exist. */
  NO_NETNS: "ERR_RS_NO_NETNS",
  /** The interface does not exist (or has no IPv4 address for the decapsulator). */
  NO_DEVICE: "ERR_RS_NO_DEVICE",
  /** Not root / missing CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_ADMIN. */
  NO_PRIVILEGE: "ERR_RS_NO_PRIVILEGE",
  /** A decapsulator already runs for this namespace. */
  BUSY: "ERR_RS_BUSY",
  /** The kernel has the ipip module here: the userspace decapsulator would duplicate packets. */
  KERNEL_IPIP: "ERR_RS_KERNEL_IPIP",
  /** The native I/O addon is not built. */
  NATIVE_MISSING: "ERR_RS_NATIVE_MISSING",
  /** The state file is unreadable or the state directory not writable. */
  STATE: "ERR_RS_STATE",
  /** Any other failure of a system call. */
  SYSTEM: "ERR_RS_SYSTEM",
} as const;
export type RsErrorCode = (typeof RsErrorCode)[keyof typeof RsErrorCode];

export class RealServerError extends Error {
  readonly code: RsErrorCode;
  constructor(code: RsErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "RealServerError";
    this.code = code;
  }

  get exitCode(): number {
    return this.code === RsErrorCode.USAGE || this.code === RsErrorCode.BAD_ADDRESS ? 2 : 1;
  }
}

/** Map an IoError from the addon onto a RealServerError (anything else passes through). */
export function fromIoError(err: unknown): unknown {
  if (!(err instanceof IoError)) return err;
  const map: Partial<Record<IoErrorCode, RsErrorCode>> = {
    [IoErrorCode.NO_NETNS]: RsErrorCode.NO_NETNS,
    [IoErrorCode.NO_DEVICE]: RsErrorCode.NO_DEVICE,
    [IoErrorCode.NO_PRIVILEGE]: RsErrorCode.NO_PRIVILEGE,
    [IoErrorCode.NATIVE_MISSING]: RsErrorCode.NATIVE_MISSING,
    [IoErrorCode.INVALID]: RsErrorCode.USAGE,
  };
  return new RealServerError(map[err.code] ?? RsErrorCode.SYSTEM, err.message, { cause: err });
}
