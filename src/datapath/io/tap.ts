/**
 * TAP backend: the director is the far end of a virtual Ethernet cable whose near end is a TAP
 * interface owned by the kernel (optionally enslaved to a Linux bridge).
 *
 * Two MAC addresses are involved: `ifaceMac` is the kernel interface's own, the source of what
 * the kernel sends us; `mac` is the director's on this wire (given, or a random locally
 * administered one) and is what the director answers ARP with. They must differ.
 *
 * Receive loops read() until EAGAIN or the batch is full in one native call; send loops write()
 * for the frames marked for this link in one native call (TUN/TAP has no multi-frame syscall).
 * Frames longer than a batch slot minus HEADROOM are dropped and counted: keep mtu + 18 below it.
 */
import { randomBytes } from "node:crypto";
import { IoError, IoErrorCode, toIoError } from "./link.js";
import { loadNative, type NativeLink, NativeLinkIo, type NativeTapOptions, netnsPath } from "./native.js";

export interface TapOptions {
  /** Interface name (at most 15 bytes). */
  name: string;
  /** Linux bridge to enslave the TAP to (must exist: ERR_IO_NO_BRIDGE otherwise). */
  bridge?: string;
  /** Set the interface MTU (default: leave the kernel's, 1500 for a new TAP). */
  mtu?: number;
  /**
   * undefined (default): create the TAP, or attach to an existing persistent one of that name.
   * true: create a new TAP; ERR_IO_NAME_IN_USE (EBUSY) if any device has the name.
   * false: attach to an existing persistent TAP; ERR_IO_NO_DEVICE if there is none.
   * Attaching gives ERR_IO_NAME_IN_USE if another process holds the TAP or the name belongs to a
   * device that is not a TAP. A TAP we created goes away on close unless `persist`; one we
   * attached to stays.
   */
  create?: boolean;
  /** Keep a created TAP after close (TUNSETPERSIST). */
  persist?: boolean;
  /** Bring the interface up (default true). */
  up?: boolean;
  /** Network namespace (an `ip netns` name or a path such as /proc/PID/ns/net) to open the TAP in. */
  netns?: string;
  /** The director's MAC on this link (default: random, locally administered). */
  mac?: Uint8Array;
  /** Set the kernel interface's MAC. */
  ifaceMac?: Uint8Array;
}

/** A random unicast, locally administered MAC address (02:xx:xx:xx:xx:xx style). */
export function randomMac(): Uint8Array {
  const m = new Uint8Array(randomBytes(6));
  m[0] = (m[0]! & 0xfc) | 0x02;
  return m;
}

function checkMac(mac: Uint8Array | undefined, what: string): void {
  if (mac === undefined) return;
  if (mac.length !== 6) throw new IoError(IoErrorCode.INVALID, `${what} must be 6 bytes`);
  if ((mac[0]! & 1) !== 0) throw new IoError(IoErrorCode.INVALID, `${what} must be a unicast address`);
}

export class TapIo extends NativeLinkIo {
  /** MAC of the kernel side of the TAP. */
  readonly ifaceMac: Uint8Array;
  /** We created the device (it goes away on close unless persistent). */
  readonly created: boolean;

  constructor(handle: NativeLink, mac: Uint8Array) {
    super(handle, mac);
    this.ifaceMac = handle.mac;
    this.created = handle.created;
  }
}

/** Open (create or attach to) a TAP device. Throws IoError with a stable code. */
export function openTap(opts: TapOptions): TapIo {
  const what = `open TAP ${opts.name}`;
  if (typeof opts.name !== "string" || opts.name.length === 0 || Buffer.byteLength(opts.name) > 15) {
    throw new IoError(IoErrorCode.INVALID, `${what}: name must be 1..15 bytes`);
  }
  if (opts.mtu !== undefined && (!Number.isInteger(opts.mtu) || opts.mtu < 68 || opts.mtu > 65521)) {
    throw new IoError(IoErrorCode.INVALID, `${what}: mtu must be an integer in 68..65521`);
  }
  checkMac(opts.mac, "mac");
  checkMac(opts.ifaceMac, "ifaceMac");
  const native = loadNative();
  const o: NativeTapOptions = {
    name: opts.name,
    create: opts.create !== false,
    exclusive: opts.create === true,
    persist: opts.persist ?? false,
    up: opts.up ?? true,
  };
  if (opts.mtu !== undefined) o.mtu = opts.mtu;
  if (opts.bridge !== undefined) o.bridge = opts.bridge;
  if (opts.netns !== undefined) o.netns = netnsPath(opts.netns);
  if (opts.ifaceMac !== undefined) o.ifaceMac = Uint8Array.from(opts.ifaceMac);
  let handle: NativeLink;
  try {
    handle = native.openTap(o);
  } catch (err) {
    throw toIoError(err, opts.netns === undefined ? what : `${what} in netns ${opts.netns}`);
  }
  let mac = opts.mac === undefined ? randomMac() : Uint8Array.from(opts.mac);
  while (mac.every((b, i) => b === handle.mac[i])) mac = randomMac();
  return new TapIo(handle, mac);
}
