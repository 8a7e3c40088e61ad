/**
 * Address conversions for the control plane, tests and output: dotted-quad IPv4 (RFC 791
 * addresses, written as in RFC 1123 2.1 "#.#.#.#") to and from uint32, and IEEE 802 MAC
 * addresses "aa:bb:cc:dd:ee:ff" to and from bytes. These allocate and throw; keep them off the
 * per-packet path, which works on uint32 addresses and MAC bytes in place.
 */

/** Thrown for malformed addresses. `code` is stable. */
export class AddrError extends Error {
  readonly code = "ERR_PACKET_BAD_ADDR";
  constructor(message: string) {
    super(message);
    this.name = "AddrError";
  }
}

const DOTTED = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** "10.0.0.1" -> 0x0a000001. Rejects anything but four decimal octets 0-255. */
export function ipToU32(s: string): number {
  const m = DOTTED.exec(s);
  if (m === null) throw new AddrError(`invalid IPv4 address: ${JSON.stringify(s)}`);
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const o = Number(m[i]);
    if (o > 255) throw new AddrError(`invalid IPv4 address: ${JSON.stringify(s)}`);
    n = n * 256 + o;
  }
  return n;
}

/** 0x0a000001 -> "10.0.0.1". */
export function u32ToIp(n: number): string {
  n >>>= 0;
  return `${n >>> 24}.${(n >>> 16) & 0xff}.${(n >>> 8) & 0xff}.${n & 0xff}`;
}

/** An address given as a dotted string or a uint32. */
export function toU32(a: string | number): number {
  if (typeof a === "number") {
    if (!Number.isInteger(a) || a < 0 || a > 0xffffffff) throw new AddrError(`invalid IPv4 address: ${a}`);
    return a;
  }
  return ipToU32(a);
}

const MAC = /^[0-9a-fA-F]{1,2}(:[0-9a-fA-F]{1,2}){5}$/;

/** "aa:bb:cc:dd:ee:ff" -> 6 bytes. */
export function macToBytes(s: string): Uint8Array {
  if (!MAC.test(s)) throw new AddrError(`invalid MAC address: ${JSON.stringify(s)}`);
  const out = new Uint8Array(6);
  const parts = s.split(":");
  for (let i = 0; i < 6; i++) out[i] = Number.parseInt(parts[i]!, 16);
  return out;
}

/** 6 bytes at `off` -> "aa:bb:cc:dd:ee:ff" (lower-case, two digits each). */
export function bytesToMac(buf: Uint8Array, off = 0): string {
  if (off < 0 || off + 6 > buf.length) throw new AddrError("MAC address out of range");
  let s = "";
  for (let i = 0; i < 6; i++) {
    if (i > 0) s += ":";
    s += buf[off + i]!.toString(16).padStart(2, "0");
  }
  return s;
}

/** A MAC given as a string or 6 bytes, as 6 bytes (a copy). */
export function toMac(m: string | Uint8Array): Uint8Array {
  if (typeof m === "string") return macToBytes(m);
  if (m.length !== 6) throw new AddrError(`invalid MAC address: ${m.length} bytes`);
  return Uint8Array.from(m);
}

/**
 * Whether `a` (uint32 or int32) may be a virtual service's or a real server's address: not in
 * 0.0.0.0/8 ("this network"), not the limited broadcast 255.255.255.255, not multicast
 * (224.0.0.0/4) — what the kernel's inet_addr_type calls RTN_BROADCAST or RTN_MULTICAST.
 */
export function isUnicastAddr(a: number): boolean {
  const u = a >>> 0;
  return u >>> 24 !== 0 && u !== 0xffffffff && u >>> 28 !== 0xe;
}
