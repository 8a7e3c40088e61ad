/**
 * Address and port names for the control plane (never the data path): numeric IPv4 parsing with
 * inet_aton(3)'s rules, dotted-quad output, and the /etc/services table that ipvsadm consults
 * through getservbyname(3)/getservbyport(3).
 *
 * Host names on input are looked up as ipvsadm's host_to_addr() does with gethostbyname(3): the
 * system's resolver (nsswitch: /etc/hosts, DNS, ...), the first IPv4 address, here through
 * `getent ahostsv4` with a time bound (hostToAddr). Output prints hosts numerically (ipvsadm's
 * gethostbyaddr() names are not looked up: a listing must never wait on DNS). Service (port)
 * names come from /etc/services, read once and cached.
 */

import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { IPPROTO_TCP, IPPROTO_UDP } from "../lib/proto.js";

/**
 * inet_aton(3): "a.b.c.d", "a.b.c" (c is 16 bits), "a.b" (b is 24 bits) or "a" (32 bits); each
 * part decimal, octal (leading 0) or hex (0x). Returns the address as uint32, or undefined.
 */
export function inetAton(s: string): number | undefined {
  if (s.length === 0) return undefined;
  const parts = s.split(".");
  if (parts.length > 4) return undefined;
  const vals: number[] = [];
  for (const p of parts) {
    const v = parseCNumber(p);
    if (v === undefined) return undefined;
    vals.push(v);
  }
  const n = vals.length;
  // All parts but the last are single bytes; the last fills the remaining bytes.
  for (let i = 0; i < n - 1; i++) if ((vals[i] ?? 0) > 0xff) return undefined;
  const last = vals[n - 1] ?? 0;
  const lastMax = [0xffffffff, 0xffffff, 0xffff, 0xff][n - 1] ?? 0;
  if (last > lastMax) return undefined;
  let addr = 0;
  for (let i = 0; i < n - 1; i++) addr += (vals[i] ?? 0) * 2 ** (24 - 8 * i);
  return (addr + last) >>> 0;
}

/** strtoul(s, &end, 0) that must consume the whole (non-empty) string. */
function parseCNumber(p: string): number | undefined {
  let m: RegExpExecArray | null;
  let v: number;
  if ((m = /^0[xX]([0-9a-fA-F]*)$/.exec(p))) v = m[1] ? Number.parseInt(m[1], 16) : 0;
  else if (/^0[0-7]*$/.test(p)) v = Number.parseInt(p, 8);
  else if (/^[1-9][0-9]*$/.test(p)) v = Number.parseInt(p, 10);
  else return undefined;
  return v <= 0xffffffff ? v : undefined;
}

/** The longest a host name lookup may take (gethostbyname has no bound of its own), in ms. */
export const HOST_LOOKUP_TIMEOUT_MS = 2000;
/** How long a lookup's answer (an address, or none) is reused by the same process, in ms. */
export const HOST_CACHE_MS = 30_000;

/** A host name's first IPv4 address, or undefined when it has none. */
export type HostLookup = (name: string) => number | undefined;

/** What can be a host name (a letter somewhere: "10.0.0.300" is a bad address, not a name). */
const HOST_NAME = /^(?=.*[A-Za-z])[A-Za-z0-9_][A-Za-z0-9._-]*$/;

/**
 * ipvsadm's host_to_addr(): a numeric address in any form inet_aton(3) takes, else the first IPv4
 * address `lookup` finds for a host name (default: the system's resolver). Undefined when neither.
 */
export function hostToAddr(s: string, lookup: HostLookup = systemHostLookup): number | undefined {
  const addr = inetAton(s);
  if (addr !== undefined) return addr;
  if (s.length > 253 || !HOST_NAME.test(s)) return undefined;
  return lookup(s);
}

const hostCache = new Map<string, { addr: number | undefined; until: number }>();

/**
 * The system's resolver, as gethostbyname(3) consults it (nsswitch.conf: files, dns, ...): the
 * first address `getent ahostsv4 NAME` prints, within HOST_LOOKUP_TIMEOUT_MS; answers are kept
 * HOST_CACHE_MS. Synchronous: lvsadm and lvsd wait for it, as ipvsadm waits for gethostbyname
 * (lvsd only when a command names a host; numeric addresses never wait).
 */
export const systemHostLookup: HostLookup = (name) => {
  const now = Date.now();
  const hit = hostCache.get(name);
  if (hit && hit.until > now) return hit.addr;
  const r = spawnSync("getent", ["ahostsv4", name], {
    encoding: "utf8",
    timeout: HOST_LOOKUP_TIMEOUT_MS,
    stdio: ["ignore", "pipe", "ignore"],
  });
  const first = r.status === 0 ? /^(\S+)/.exec(r.stdout)?.[1] : undefined;
  const addr = first !== undefined ? inetAton(first) : undefined;
  if (hostCache.size > 1000) hostCache.clear();
  hostCache.set(name, { addr, until: now + HOST_CACHE_MS });
  return addr;
};

/** Dotted quad for a uint32 address. */
export function ipToString(addr: number): string {
  const a = addr >>> 0;
  return `${a >>> 24}.${(a >>> 16) & 0xff}.${(a >>> 8) & 0xff}.${a & 0xff}`;
}

/**
 * strtol(s, &end, 10) accepted only when it consumed the whole string (leading blanks and a sign
 * allowed), within [min, max]; -1 otherwise. This is ipvsadm's string_to_number().
 */
export function stringToNumber(s: string, min: number, max: number): number {
  if (!/^[ \t\n\v\f\r]*[+-]?[0-9]+$/.test(s)) return -1;
  const v = Number.parseInt(s.trim(), 10);
  if (!Number.isSafeInteger(v) || v < min || v > max) return -1;
  return v === 0 ? 0 : v; // "-0" is 0, not JavaScript's negative zero
}

/** A services(5) table: port numbers and names per protocol. */
export interface ServicesDb {
  /** getservbyname(name, proto): the port, or undefined. */
  portOf(name: string, proto: number): number | undefined;
  /** getservbyport(port, proto): the official name, or undefined. */
  nameOf(port: number, proto: number): string | undefined;
  /**
   * gethostbyaddr(addr): a host name for a listing without -n, or undefined (printed as a number).
   * lvsd's control server fills it from names looked up before the listing (names.ts).
   */
  hostOf?(addr: number): string | undefined;
}

function protoName(proto: number): string | undefined {
  return proto === IPPROTO_TCP ? "tcp" : proto === IPPROTO_UDP ? "udp" : undefined;
}

/** Parse services(5) text: `name port/proto [aliases...] [# comment]`. First entry wins, as in libc. */
export function parseServices(text: string): ServicesDb {
  const byName = new Map<string, number>();
  const byPort = new Map<string, string>();
  for (const raw of text.split("\n")) {
    const line = raw.replace(/#.*$/, "").trim();
    if (!line) continue;
    const fields = line.split(/\s+/);
    const name = fields[0];
    const pp = fields[1];
    if (!name || !pp) continue;
    const m = /^(\d+)\/(\w+)$/.exec(pp);
    if (!m?.[1] || !m[2]) continue;
    const port = Number(m[1]);
    const proto = m[2].toLowerCase();
    if (port > 65535) continue;
    const pkey = `${proto}/${port}`;
    if (!byPort.has(pkey)) byPort.set(pkey, name);
    for (const n of [name, ...fields.slice(2)]) {
      const nkey = `${proto}/${n}`;
      if (!byName.has(nkey)) byName.set(nkey, port);
    }
  }
  return {
    portOf(name, proto) {
      const p = protoName(proto);
      return p ? byName.get(`${p}/${name}`) : undefined;
    },
    nameOf(port, proto) {
      const p = protoName(proto);
      return p ? byPort.get(`${p}/${port}`) : undefined;
    },
  };
}

let systemDb: ServicesDb | undefined;

/** /etc/services, read on first use and cached for the life of the process; empty if unreadable. */
export function systemServices(path = "/etc/services"): ServicesDb {
  if (!systemDb) {
    let text = "";
    try {
      text = readFileSync(path, "utf8");
    } catch {
      // No services file: ports print as numbers, as ipvsadm does when getservbyport fails.
    }
    systemDb = parseServices(text);
  }
  return systemDb;
}
