/**
 * TUN backend: a layer-3 device (IFF_TUN | IFF_NO_PI). Each frame is one bare IP packet, no
 * Ethernet header: what we write is received by the kernel's IP stack as if it had arrived on
 * the device; what the kernel routes to the device is what we read.
 *
 * It shares the batched data path of TAP links (one native call per batch, `read()`/`write()`
 * per packet), so a FrameBatch slot holds an IP packet at `off[i]`. The userspace IPIP
 * decapsulator (src/tools/realserver/decap.ts) hands inner packets to the local stack through one
 * without copying them: it moves each frame's offset to the inner header and sends.
 */
import { IoError, IoErrorCode, toIoError } from "./link.js";
import { loadNative, type NativeLink, NativeLinkIo, type NativeTunOptions, netnsPath } from "./native.js";

export interface TunOptions {
  /** Interface name (at most 15 bytes). */
  name: string;
  /**
   * undefined (default): create the device, or attach to an existing persistent TUN of that name.
   * true: create; ERR_IO_NAME_IN_USE if the name exists. false: attach; ERR_IO_NO_DEVICE if missing.
   * A TUN we created disappears when we close it.
   */
  create?: boolean;
  /** Bring the interface up (default true). */
  up?: boolean;
  mtu?: number;
  /** Network namespace (an `ip netns` name or a path) to open the device in. */
  netns?: string;
}

const NO_MAC = new Uint8Array(6);

export class TunIo extends NativeLinkIo {
  /** We created the device (it goes away on close). */
  readonly created: boolean;

  constructor(handle: NativeLink) {
    super(handle, NO_MAC);
    this.created = handle.created;
  }
}

/** Open (create or attach to) a TUN device. Throws IoError with a stable code. */
export function openTun(opts: TunOptions): TunIo {
  const what = `open TUN ${opts.name}`;
  if (typeof opts.name !== "string" || opts.name.length === 0 || Buffer.byteLength(opts.name) > 15) {
    throw new IoError(IoErrorCode.INVALID, `${what}: name must be 1..15 bytes`);
  }
  if (opts.mtu !== undefined && (!Number.isInteger(opts.mtu) || opts.mtu < 68 || opts.mtu > 65535)) {
    throw new IoError(IoErrorCode.INVALID, `${what}: mtu must be an integer in 68..65535`);
  }
  const o: NativeTunOptions = {
    name: opts.name,
    create: opts.create !== false,
    exclusive: opts.create === true,
    up: opts.up ?? true,
  };
  if (opts.mtu !== undefined) o.mtu = opts.mtu;
  if (opts.netns !== undefined) o.netns = netnsPath(opts.netns);
  const native = loadNative();
  let handle: NativeLink;
  try {
    handle = native.openTun(o);
  } catch (err) {
    throw toIoError(err, opts.netns === undefined ? what : `${what} in netns ${opts.netns}`);
  }
  return new TunIo(handle);
}
