/**
 * Test lab for the I/O backends: network namespaces made by the test itself, and frames built
 * by hand.
 *
 * How the two sides are placed: the JS side (the code under test) runs in the vitest process and
 * opens its TAP or raw socket *inside* a test namespace through the backends' `netns` option
 * (the addon switches the calling thread into the namespace with setns() just while it opens the
 * descriptor, then back). The kernel side runs as child processes under `ip netns exec`. So no
 * device is ever created in, and no frame ever leaves to, the machine's own namespace.
 *
 * Every namespace and device name starts with `io<pid>-`; namespaces are removed in afterAll and,
 * should a test die, on process exit (which also closes our descriptors, and the devices inside
 * die with their namespace).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import type { FrameBatch } from "../../../src/datapath/io/batch.js";
import { need } from "../../support/tools.js";

export const isRoot = process.getuid?.() === 0;
/**
 * What is missing of the commands every lab here runs (ip netns exec ... sysctl, ss), e.g.
 * "needs ip (Debian package iproute2)", or "". Tests needing more guard themselves.
 */
export const TOOLS_MISSING = isRoot ? need("ip", "sysctl", "ss") : "";
export const canRun = isRoot && process.platform === "linux" && TOOLS_MISSING === "";
export const SKIP_REASON =
  TOOLS_MISSING !== ""
    ? `I/O integration tests ${TOOLS_MISSING}: skipped`
    : "I/O integration tests need root (network namespaces, TAP, AF_PACKET): skipped";

export function sh(cmd: string, ...args: string[]): string {
  return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

export class Lab {
  readonly prefix: string;
  private readonly namespaces: string[] = [];
  private readonly children = new Set<ChildProcess>();
  private readonly onExit = () => this.cleanup();

  constructor(tag: string) {
    this.prefix = `io${process.pid}${tag}-`;
    process.on("exit", this.onExit);
  }

  /** Device name with the lab prefix (kept within IFNAMSIZ). */
  dev(suffix: string): string {
    const n = this.prefix + suffix;
    if (n.length > 15) throw new Error(`device name too long: ${n}`);
    return n;
  }

  /** Create a namespace named <prefix><suffix> with loopback up. */
  netns(suffix: string): string {
    const name = this.prefix + suffix;
    sh("ip", "netns", "add", name);
    this.namespaces.push(name);
    sh("ip", "-n", name, "link", "set", "lo", "up");
    return name;
  }

  /** Run a command in a namespace, synchronously. */
  ip(ns: string, ...args: string[]): string {
    return sh("ip", "-n", ns, ...args);
  }

  /** Start a command in a namespace; resolves with stdout/stderr and the exit code. */
  exec(ns: string, cmd: string[], timeoutMs = 20_000): Promise<{ code: number; out: string; err: string }> {
    const child = spawn("ip", ["netns", "exec", ns, ...cmd], { stdio: ["ignore", "pipe", "pipe"] });
    this.children.add(child);
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      err += d.toString();
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    return once(child, "close").then(([code]) => {
      clearTimeout(timer);
      this.children.delete(child);
      return { code: (code as number | null) ?? -1, out, err };
    });
  }

  /**
   * A UDP listener in a namespace (node's dgram): resolves `ready` once bound; `done` gives the
   * payloads it received (as strings) when it exits after `ms` milliseconds.
   */
  udpListener(ns: string, port: number, ms: number): { ready: Promise<void>; done: Promise<string[]> } {
    const script = `const s=require("dgram").createSocket("udp4");s.on("message",m=>console.log("MSG "+m.toString()));
s.bind(${port},()=>console.log("READY"));setTimeout(()=>process.exit(0),${ms});`;
    const child = spawn("ip", ["netns", "exec", ns, process.execPath, "-e", script], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    this.children.add(child);
    let buf = "";
    let readyResolve: () => void = () => {};
    const ready = new Promise<void>((r) => {
      readyResolve = r;
    });
    child.stdout.on("data", (d: Buffer) => {
      buf += d.toString();
      if (buf.includes("READY")) readyResolve();
    });
    const done = once(child, "close").then(() => {
      this.children.delete(child);
      return buf
        .split("\n")
        .filter((l) => l.startsWith("MSG "))
        .map((l) => l.slice(4));
    });
    return { ready, done };
  }

  /** Send `count` UDP datagrams "<tag><i>" from a namespace. */
  udpSend(
    ns: string,
    dst: string,
    port: number,
    count: number,
    tag: string,
  ): Promise<{ code: number; err: string }> {
    const script = `const s=require("dgram").createSocket("udp4");let left=${count};
for(let i=0;i<${count};i++)s.send(Buffer.from(${JSON.stringify(tag)}+i),${port},${JSON.stringify(dst)},()=>{if(--left===0)s.close();});`;
    return this.exec(ns, [process.execPath, "-e", script]);
  }

  /** Remove everything this lab made. Safe to call more than once. */
  cleanup(): void {
    for (const c of this.children) c.kill("SIGKILL");
    this.children.clear();
    while (this.namespaces.length > 0) {
      const ns = this.namespaces.pop()!;
      try {
        execFileSync("ip", ["netns", "del", ns], { stdio: "ignore" });
      } catch {
        // already gone
      }
    }
    process.off("exit", this.onExit);
  }
}

/** Interface details from `ip -j link show` in a namespace. */
export function linkInfo(
  lab: Lab,
  ns: string,
  dev: string,
): { address: string; master?: string; stats64?: { rx: { packets: number }; tx: { packets: number } } } {
  const j = JSON.parse(lab.ip(ns, "-j", "-s", "link", "show", "dev", dev)) as Array<{
    address: string;
    master?: string;
    stats64?: { rx: { packets: number }; tx: { packets: number } };
  }>;
  return j[0]!;
}

// ---------------------------------------------------------------------------------------------
// Frames

export function ip4(s: string): number {
  const p = s.split(".").map(Number);
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
}

export function parseMac(s: string): Uint8Array {
  return Uint8Array.from(s.split(":").map((h) => Number.parseInt(h, 16)));
}

export function macStr(m: Uint8Array): string {
  return Array.from(m, (b) => b.toString(16).padStart(2, "0")).join(":");
}

/** Internet checksum of buf[off, off+len). */
export function csum(buf: Uint8Array, off: number, len: number): number {
  let s = 0;
  for (let i = 0; i + 1 < len; i += 2) s += (buf[off + i]! << 8) | buf[off + i + 1]!;
  if (len & 1) s += buf[off + len - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/**
 * Answer ARP requests and ICMP echo requests for `ip` in place (swap MACs and addresses, set the
 * reply type, fix the checksum), as the director's own L3 would. Returns true if frame i became
 * a reply.
 */
export function answerInPlace(batch: FrameBatch, i: number, mac: Uint8Array, ip: number): boolean {
  const b = batch.buf;
  const dv = batch.dv;
  const o = batch.off[i]!;
  const n = batch.len[i]!;
  if (n < 42) return false;
  const type = dv.getUint16(o + 12);
  if (type === 0x0806) {
    if (dv.getUint16(o + 20) !== 1 || dv.getUint32(o + 38) !== ip) return false;
    b.copyWithin(o, o + 6, o + 12); // eth dst = requester
    b.set(mac, o + 6);
    dv.setUint16(o + 20, 2);
    b.copyWithin(o + 32, o + 22, o + 32); // target hw+ip = sender hw+ip
    b.set(mac, o + 22);
    dv.setUint32(o + 28, ip);
    return true;
  }
  if (type !== 0x0800) return false;
  const ihl = (b[o + 14]! & 0x0f) * 4;
  const l4 = o + 14 + ihl;
  if (b[o + 23] !== 1 || dv.getUint32(o + 30) !== ip || b[l4] !== 8) return false;
  const totLen = dv.getUint16(o + 16);
  b.copyWithin(o, o + 6, o + 12);
  b.set(mac, o + 6);
  const src = dv.getUint32(o + 26);
  dv.setUint32(o + 26, ip);
  dv.setUint32(o + 30, src);
  b[l4] = 0;
  dv.setUint16(l4 + 2, 0);
  dv.setUint16(l4 + 2, csum(b, l4, totLen - ihl));
  return true;
}

/** An Ethernet/IPv4/UDP frame (UDP checksum 0: none). */
export function udpFrame(
  dst: Uint8Array,
  src: Uint8Array,
  saddr: number,
  daddr: number,
  sport: number,
  dport: number,
  payload: string,
): Uint8Array {
  const p = new TextEncoder().encode(payload);
  const f = new Uint8Array(14 + 20 + 8 + p.length);
  const dv = new DataView(f.buffer);
  f.set(dst, 0);
  f.set(src, 6);
  dv.setUint16(12, 0x0800);
  f[14] = 0x45;
  dv.setUint16(16, 20 + 8 + p.length);
  f[22] = 64;
  f[23] = 17;
  dv.setUint32(26, saddr);
  dv.setUint32(30, daddr);
  dv.setUint16(24, csum(f, 14, 20));
  dv.setUint16(34, sport);
  dv.setUint16(36, dport);
  dv.setUint16(38, 8 + p.length);
  f.set(p, 42);
  return f;
}

/** The UDP payload of frame i as a string, or undefined if it is not IPv4/UDP. */
export function udpPayload(batch: FrameBatch, i: number): string | undefined {
  const o = batch.off[i]!;
  const dv = batch.dv;
  if (batch.len[i]! < 42 || dv.getUint16(o + 12) !== 0x0800 || batch.buf[o + 23] !== 17) return undefined;
  const ihl = (batch.buf[o + 14]! & 0x0f) * 4;
  const l4 = o + 14 + ihl;
  const end = o + 14 + dv.getUint16(o + 16);
  return new TextDecoder().decode(batch.buf.subarray(l4 + 8, end));
}

/** Poll `fn` until it returns true or `ms` pass. */
export async function until(fn: () => boolean, ms = 3000, step = 10): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (fn()) return true;
    await new Promise((r) => setTimeout(r, step));
  }
  return fn();
}
