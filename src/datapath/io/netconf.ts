/**
 * Host configuration inside a network namespace, through the I/O addon (native/sys.cc), for the
 * control plane only (lvs-realserver, labs, tests): sysctls, IPv4 addresses, NIC offload flags,
 * and the IPIP guard socket. Every call takes an optional `netns` (an `ip netns` name or a path
 * such as /proc/PID/ns/net); without it, the caller's namespace. Failures throw IoError with a
 * stable code (ERR_IO_NO_NETNS, ERR_IO_NO_DEVICE, ERR_IO_NO_PRIVILEGE, ...).
 *
 * No external tools: no `sysctl`, `ip` or `ethtool` binary is needed.
 */
import { closeSync } from "node:fs";
import { toIoError } from "./link.js";
import { loadNative, type NativeAddr, type NativeOffloads, netnsPath } from "./native.js";

function nsArg(netns: string | undefined): string {
  return netns === undefined ? "" : netnsPath(netns);
}

function wrap<T>(what: string, netns: string | undefined, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw toIoError(err, netns === undefined ? what : `${what} in netns ${netns}`);
  }
}

/**
 * A sysctl key as `sysctl(8)` writes it ("net.ipv4.conf.all.arp_ignore") or as a path below
 * /proc/sys ("net/ipv4/conf/eth0.100/arp_ignore": use this form when a name contains a dot).
 */
export function sysctlPath(key: string): string {
  return key.includes("/") ? key : key.replaceAll(".", "/");
}

/** The per-interface IPv4 conf key path: net/ipv4/conf/<dev>/<name>. */
export function ipv4Conf(dev: string, name: string): string {
  return `net/ipv4/conf/${dev}/${name}`;
}

/** Read a sysctl (trimmed). */
export function sysctlGet(key: string, netns?: string): string {
  return wrap(`read sysctl ${key}`, netns, () => loadNative().sysctl(nsArg(netns), sysctlPath(key)));
}

/** Write a sysctl; returns the value it had before. */
export function sysctlSet(key: string, value: string | number, netns?: string): string {
  return wrap(`set sysctl ${key}=${value}`, netns, () =>
    loadNative().sysctl(nsArg(netns), sysctlPath(key), String(value)),
  );
}

/** Interface index; ERR_IO_NO_DEVICE when there is no such interface. */
export function ifIndex(name: string, netns?: string): number {
  return wrap(`interface ${name}`, netns, () => loadNative().ifIndex(nsArg(netns), name));
}

export type AddrInfo = NativeAddr;

/** IPv4 addresses (addr as a uint32, host order). */
export function listAddrs(netns?: string): AddrInfo[] {
  return wrap("list addresses", netns, () => loadNative().addrList(nsArg(netns)));
}

/** Address scopes (RT_SCOPE_*): who may use the address as a source. */
export const AddrScope = { GLOBAL: 0, LINK: 253, HOST: 254 } as const;

/** Add addr/prefix to an interface. Fails (errno EEXIST) if it is there already. */
export function addAddr(ifname: string, addr: number, prefix: number, netns?: string, scope = 0): void {
  const idx = ifIndex(ifname, netns);
  wrap(`add address to ${ifname}`, netns, () =>
    loadNative().addrChange(nsArg(netns), true, idx, addr, prefix, scope),
  );
}

/** Remove addr/prefix from an interface. Fails (errno EADDRNOTAVAIL) if it is not there. */
export function delAddr(ifname: string, addr: number, prefix: number, netns?: string): void {
  const idx = ifIndex(ifname, netns);
  wrap(`delete address from ${ifname}`, netns, () =>
    loadNative().addrChange(nsArg(netns), false, idx, addr, prefix),
  );
}

export type Offloads = NativeOffloads;

/**
 * Set NIC offload flags (ethtool -K through the SIOCETHTOOL ioctl): txCsum (tx-checksumming),
 * sg (scatter-gather), tso, gso, gro. Flags left undefined are not touched. Returns the flags as
 * they were, so they can be restored. Turning a flag off that the device cannot change is not an
 * error. Note the kernel's dependencies: TSO needs tx checksumming and scatter-gather, so turning
 * txCsum off turns TSO off too.
 */
export function setOffloads(
  dev: string,
  flags: Partial<Record<keyof Offloads, boolean>>,
  netns?: string,
): Offloads {
  return wrap(`set offloads on ${dev}`, netns, () => loadNative().ethtool(nsArg(netns), dev, flags));
}

/** The offload flags of an interface. */
export function getOffloads(dev: string, netns?: string): Offloads {
  return setOffloads(dev, {}, netns);
}

/**
 * Turn off segmentation offloads on a *sending* interface (a lab's client or real-server veth)
 * so that a director reading the far end with AF_PACKET gets wire-sized frames: TSO, GSO and GRO
 * off (`ethtool -K dev tso off gso off gro off`). Without this, a TCP sender on veth hands over
 * super-frames of up to 64 KB that do not fit a batch slot; the raw socket drops them
 * (detail().rxGso / rxTruncated) and the connection stalls.
 *
 * Transmit checksum offload stays on: the addon completes such checksums on receive
 * (detail().csumFixed). Pass `{ txCsum: false }` in `extra` to make the sender compute them.
 */
export function disableOffloads(
  netns: string | undefined,
  dev: string,
  extra: Partial<Record<keyof Offloads, boolean>> = {},
): Offloads {
  return setOffloads(dev, { tso: false, gso: false, gro: false, ...extra }, netns);
}

/**
 * An identity for a network namespace that is never reused while the machine is up
 * ("cookie:<n>", SO_NETNS_COOKIE; "ino:<dev>:<inode>" on kernels before 5.14). Also proves that
 * the namespace exists (ERR_IO_NO_NETNS otherwise).
 */
export function netnsId(netns?: string): string {
  return wrap("identify namespace", netns, () => loadNative().netnsId(nsArg(netns)));
}

/** A held descriptor; close() releases it (idempotent). */
export interface IpipGuard {
  readonly fd: number;
  close(): void;
}

/**
 * Silence the kernel's ICMP protocol-unreachable replies to IPIP packets sent to `addr` on
 * `ifname`, while the returned guard is open. On a kernel without the ipip module, every IPIP
 * packet delivered locally is answered with ICMP protocol-unreachable *unless a raw socket for
 * protocol 4 matched it*; the guard is such a socket (bound to the address and the interface)
 * whose filter drops everything. It needs no firewall rule and leaves nothing behind when the
 * process exits.
 */
export function openIpipGuard(addr: number, ifname: string, netns?: string): IpipGuard {
  const fd = wrap(`IPIP guard socket on ${ifname}`, netns, () =>
    loadNative().ipipGuard(nsArg(netns), addr >>> 0, ifname),
  );
  let open = true;
  return {
    fd,
    close() {
      if (!open) return;
      open = false;
      closeSync(fd);
    },
  };
}
