/**
 * lvs-realserver in network namespaces made by this test (prefix io<pid>s-/io<pid>t-/io<pid>c-,
 * removed in afterAll and on exit; traffic only between these namespaces).
 *
 *   DR:   cl (198.18.7.1) ── veth ── rs (198.18.7.2, VIP on lo)
 *   TUN:  c (198.18.8.1) ─┐
 *         d (198.18.8.2) ─┼─ bridge in "lan"        d: a director written here in JS that
 *         rs (198.18.8.3) ┘                            encapsulates client packets for the VIP
 *
 * The commands run in this process (main() from src/tools/cli/realserver.ts, TunSession); the last
 * block runs the built bin/lvs-realserver (--daemon, errors), and is skipped when dist/ is not
 * built.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FrameBatch } from "../../../src/datapath/io/batch.js";
import {
  disableOffloads,
  ifIndex,
  listAddrs,
  sysctlGet,
  sysctlSet,
} from "../../../src/datapath/io/netconf.js";
import { openRaw, type RawIo } from "../../../src/datapath/io/rawsock.js";
import { eth, ipv4 } from "../../../src/datapath/packet/build.js";
import { ipToU32, u32ToIp } from "../../../src/lib/addr.js";
import { main } from "../../../src/tools/cli/realserver.js";
import { parseRsArgs } from "../../../src/tools/realserver/args.js";
import { TunSession } from "../../../src/tools/realserver/commands.js";
import { canRun, Lab, linkInfo, parseMac, sh, TOOLS_MISSING, until } from "../../datapath/io/lab.js";

const SKIP = TOOLS_MISSING
  ? `lvs-realserver namespace tests ${TOOLS_MISSING}: skipped`
  : "lvs-realserver namespace tests need root (network namespaces, AF_PACKET, TUN): skipped";
if (!canRun) console.warn(SKIP);

const ROOT = join(import.meta.dirname, "..", "..", "..");
const BIN = join(ROOT, "bin", "lvs-realserver");
const BUILT = existsSync(join(ROOT, "dist", "src", "tools", "cli", "realserver.js"));

function disableIpv6(ns: string): void {
  sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1");
  sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1");
}

function onLo(ns: string, addr: string): boolean {
  const lo = ifIndex("lo", ns);
  return listAddrs(ns).some((a) => a.ifindex === lo && a.addr === ipToU32(addr) && a.prefix === 32);
}

/** Run main() quietly in this process; returns the exit status. */
async function rs(...argv: string[]): Promise<number> {
  return main([...argv, "--quiet"]);
}

/** Receive from a raw socket for `ms`, calling `fn` on each frame. */
async function watch(raw: RawIo, ms: number, fn: (b: FrameBatch, i: number) => void): Promise<void> {
  const b = new FrameBatch(256);
  await until(() => {
    b.reset();
    raw.recv(b, 0);
    for (let i = 0; i < b.count; i++) fn(b, i);
    return false;
  }, ms);
}

const TCP_ECHO_SERVER = (host: string, port: number, ms: number) =>
  `const s=require("net").createServer(c=>c.pipe(c));s.listen(${port},${JSON.stringify(host)},()=>console.log("READY"));setTimeout(()=>process.exit(0),${ms});`;
const TCP_ECHO_CLIENT = (host: string, port: number, bytes: number) =>
  `const d=require("crypto").randomBytes(${bytes});const c=require("net").connect(${port},${JSON.stringify(host)});
const got=[];let n=0;c.on("data",b=>{got.push(b);n+=b.length;if(n>=d.length){console.log(Buffer.concat(got).equals(d)?"OK":"BAD");c.destroy();}});
c.on("connect",()=>c.write(d));c.on("error",e=>{console.log("ERR "+e.code);process.exit(1);});`;
const UDP_ECHO_SERVER = (host: string, port: number, ms: number) =>
  `const s=require("dgram").createSocket("udp4");s.on("message",(m,r)=>s.send("echo:"+m,r.port,r.address));
s.bind(${port},${JSON.stringify(host)},()=>console.log("READY"));setTimeout(()=>process.exit(0),${ms});`;

function listening(ns: string, proto: "t" | "u", addr: string): boolean {
  return sh("ip", "netns", "exec", ns, "ss", `-ln${proto}`).includes(addr);
}

describe.skipIf(!canRun)("lvs-realserver dr (root, namespaces)", () => {
  const lab = new Lab("s");
  const stateDir = mkdtempSync(join(tmpdir(), "lvs-rs-"));
  const VIP = "10.77.0.100";
  const VIP2 = "10.77.0.101"; // on lo before we start: claimed, never removed
  const CL = "198.18.7.1";
  const RS = "198.18.7.2";
  let cl = "";
  let rsNs = "";
  let cv = "";
  let rv = "";
  let rvMac = "";
  let cvMac: Uint8Array;
  let probe: RawIo;
  const keys = ["arp_ignore", "arp_announce"];
  let before: Record<string, string> = {};

  const sysctls = (): Record<string, string> => {
    const out: Record<string, string> = {};
    for (const dev of ["all", "lo", rv]) {
      for (const k of keys) out[`${dev}.${k}`] = sysctlGet(`net/ipv4/conf/${dev}/${k}`, rsNs);
    }
    return out;
  };

  /** Send ARP who-has `target` from the client side; resolve with the replies' sender MACs. */
  async function arp(target: string): Promise<string[]> {
    const req = eth({ src: cvMac, dst: "ff:ff:ff:ff:ff:ff" })
      .arp({ op: 1, sha: cvMac, spa: CL, tpa: target })
      .build({ padTo: 60 });
    const b = new FrameBatch(4);
    b.egress[b.push(req)] = 0;
    expect(probe.send(b, 0)).toBe(1);
    const macs: string[] = [];
    await watch(probe, 400, (fb, i) => {
      const o = fb.off[i]!;
      if (fb.dv.getUint16(o + 12) !== 0x0806 || fb.dv.getUint16(o + 20) !== 2) return;
      if (fb.dv.getUint32(o + 28) !== ipToU32(target)) return;
      macs.push(
        Array.from(fb.buf.subarray(o + 22, o + 28), (x) => x.toString(16).padStart(2, "0")).join(":"),
      );
    });
    return macs;
  }

  beforeAll(() => {
    cl = lab.netns("cl");
    rsNs = lab.netns("rs");
    disableIpv6(cl);
    disableIpv6(rsNs);
    cv = lab.dev("cv");
    rv = lab.dev("rv");
    lab.ip(cl, "link", "add", cv, "type", "veth", "peer", "name", rv, "netns", rsNs);
    lab.ip(cl, "addr", "add", `${CL}/24`, "dev", cv);
    lab.ip(rsNs, "addr", "add", `${RS}/24`, "dev", rv);
    lab.ip(cl, "link", "set", cv, "up");
    lab.ip(rsNs, "link", "set", rv, "up");
    rvMac = linkInfo(lab, rsNs, rv).address;
    cvMac = parseMac(linkInfo(lab, cl, cv).address);
    probe = openRaw({ ifname: cv, netns: cl });
    // A non-default value, so that the undo has to restore it exactly.
    sysctlSet(`net/ipv4/conf/${rv}/arp_announce`, "1", rsNs);
    lab.ip(rsNs, "addr", "add", `${VIP2}/32`, "dev", "lo");
    before = sysctls();
  });

  afterAll(() => {
    probe?.close();
    lab.cleanup();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it("control: with the VIP on lo and default sysctls, the host answers ARP for it", async () => {
    lab.ip(rsNs, "addr", "add", `${VIP}/32`, "dev", "lo");
    try {
      expect(await arp(VIP)).toEqual([rvMac]);
    } finally {
      lab.ip(rsNs, "addr", "del", `${VIP}/32`, "dev", "lo");
    }
  });

  it("dr puts the VIPs on lo and sets arp_ignore=1 / arp_announce=2 on all, lo and --dev", async () => {
    expect(
      await rs("dr", "--vip", `${VIP},${VIP2}`, "--dev", rv, "--netns", rsNs, "--state-dir", stateDir),
    ).toBe(0);
    expect(onLo(rsNs, VIP)).toBe(true);
    expect(onLo(rsNs, VIP2)).toBe(true);
    const now = sysctls();
    for (const dev of ["all", "lo", rv]) {
      expect(now[`${dev}.arp_ignore`]).toBe("1");
      expect(now[`${dev}.arp_announce`]).toBe("2");
    }
    // Doing it again changes nothing and keeps the recorded old values.
    expect(await rs("dr", "--vip", VIP, "--dev", rv, "--netns", rsNs, "--state-dir", stateDir)).toBe(0);
  });

  it("never answers ARP for the VIP, but still for its own address", async () => {
    expect(await arp(VIP)).toEqual([]);
    expect(await arp(VIP2)).toEqual([]);
    expect(await arp(RS)).toEqual([rvMac]);
  });

  it("accepts a TCP connection to the VIP sent to its MAC; its ARP requests never name the VIP", async () => {
    lab.ip(cl, "neigh", "replace", VIP, "lladdr", rvMac, "dev", cv, "nud", "permanent");
    lab.ip(cl, "route", "replace", `${VIP}/32`, "dev", cv);
    lab.ip(rsNs, "neigh", "flush", "all");
    const server = lab.exec(rsNs, [process.execPath, "-e", TCP_ECHO_SERVER(VIP, 8080, 8000)], 10_000);
    await until(() => listening(rsNs, "t", `${VIP}:8080`), 3000);
    const senders: string[] = [];
    const capture = watch(probe, 1500, (b, i) => {
      const o = b.off[i]!;
      if (b.dv.getUint16(o + 12) === 0x0806 && b.dv.getUint16(o + 20) === 1)
        senders.push(u32ToIp(b.dv.getUint32(o + 28)));
    });
    const client = await lab.exec(cl, [process.execPath, "-e", TCP_ECHO_CLIENT(VIP, 8080, 100_000)]);
    expect(client.out.trim(), client.err).toBe("OK");
    await capture;
    // The real server had to resolve the client's MAC to answer: arp_announce=2 makes it use RS.
    expect(senders.length).toBeGreaterThan(0);
    expect(new Set(senders)).toEqual(new Set([RS]));
    void server; // killed by lab.cleanup()
  });

  it("--undo restores the sysctls exactly and removes only the address it added; twice is harmless", async () => {
    expect(await rs("dr", "--undo", "--netns", rsNs, "--state-dir", stateDir)).toBe(0);
    expect(onLo(rsNs, VIP)).toBe(false);
    expect(onLo(rsNs, VIP2)).toBe(true); // it was there before: not ours to remove
    expect(sysctls()).toEqual(before);
    expect(before[`${rv}.arp_announce`]).toBe("1");
    expect(await rs("dr", "--undo", "--netns", rsNs, "--state-dir", stateDir)).toBe(0);
    expect(sysctls()).toEqual(before);
  });

  it("--undo --vip releases one VIP and keeps the sysctls while another is set up", async () => {
    const V3 = "10.77.0.103";
    expect(await rs("dr", "--vip", `${VIP},${V3}`, "--netns", rsNs, "--state-dir", stateDir)).toBe(0);
    expect(await rs("dr", "--undo", "--vip", VIP, "--netns", rsNs, "--state-dir", stateDir)).toBe(0);
    expect(onLo(rsNs, VIP)).toBe(false);
    expect(onLo(rsNs, V3)).toBe(true);
    expect(sysctlGet("net/ipv4/conf/all/arp_ignore", rsNs)).toBe("1");
    expect(await rs("dr", "--undo", "--vip", V3, "--netns", rsNs, "--state-dir", stateDir)).toBe(0);
    expect(onLo(rsNs, V3)).toBe(false);
    expect(sysctls()).toEqual(before);
  });

  it("refuses a VIP configured on another interface, changing nothing", async () => {
    expect(await rs("dr", "--vip", RS, "--netns", rsNs, "--state-dir", stateDir)).toBe(2);
    expect(sysctls()).toEqual(before);
  });

  it("clear errors: missing namespace, missing device, bad address", async () => {
    expect(await rs("dr", "--vip", VIP, "--netns", `${lab.prefix}none`, "--state-dir", stateDir)).toBe(1);
    expect(
      await rs("dr", "--vip", VIP, "--dev", lab.dev("nx"), "--netns", rsNs, "--state-dir", stateDir),
    ).toBe(1);
    expect(await rs("dr", "--vip", "10.77.0.300", "--netns", rsNs, "--state-dir", stateDir)).toBe(2);
    expect(sysctls()).toEqual(before);
  });
});

describe.skipIf(!canRun)("lvs-realserver tun: userspace IPIP decapsulation (root, namespaces)", () => {
  const lab = new Lab("t");
  const stateDir = mkdtempSync(join(tmpdir(), "lvs-rs-"));
  const VIP = "10.78.0.100";
  const C_IP = "198.18.8.1";
  const D_IP = "198.18.8.2";
  const RS_IP = "198.18.8.3";
  let c = "";
  let d = "";
  let r = "";
  let rv = "";
  let tunName = "";
  let rsMac: Uint8Array;
  let dMac: Uint8Array;
  let director: RawIo;
  let clientTap: RawIo;
  let session: TunSession | undefined;
  /** ICMP protocol-unreachable frames the director side received. */
  let protoUnreach = 0;
  /** Frames from the VIP that reached the director (replies must bypass it). */
  let viaDirector = 0;
  let encapsulated = 0;
  const out = new FrameBatch(256, 4096);
  let beforeArp: string[] = [];

  /** The director: count what comes back, encapsulate client packets for the VIP to the RS. */
  function pumpDirector(): void {
    const b = new FrameBatch(256);
    for (let round = 0; round < 16; round++) {
      b.reset();
      if (director.recv(b, 0) === 0) break;
      out.reset();
      for (let i = 0; i < b.count; i++) {
        const o = b.off[i]!;
        const dv = b.dv;
        if (dv.getUint16(o + 12) !== 0x0800) continue;
        const proto = b.buf[o + 23]!;
        const l4 = o + 14 + (b.buf[o + 14]! & 15) * 4;
        if (proto === 1 && b.buf[l4] === 3 && b.buf[l4 + 1] === 2) protoUnreach++;
        if (dv.getUint32(o + 26) === ipToU32(VIP)) viaDirector++;
        if (dv.getUint32(o + 30) !== ipToU32(VIP)) continue;
        const inner = b.buf.subarray(o + 14, o + 14 + dv.getUint16(o + 16));
        const frame = eth({ src: dMac, dst: rsMac })
          .ipv4({ src: D_IP, dst: RS_IP, proto: 4, df: true, tos: inner[1]! & 3 })
          .payload(inner)
          .build();
        out.egress[out.push(frame)] = 0;
        encapsulated++;
      }
      director.send(out, 0);
    }
  }

  /** A hand-built UDP-in-IPIP packet from the director's side. */
  function sendIpip(payload: string, sport: number): void {
    const inner = ipv4({ src: C_IP, dst: VIP }).udp({ sport, dport: 5353 }).payload(payload).build();
    const frame = eth({ src: dMac, dst: rsMac })
      .ipv4({ src: D_IP, dst: RS_IP, proto: 4, df: true })
      .payload(inner)
      .build();
    const b = new FrameBatch(2, 4096);
    b.egress[b.push(frame)] = 0;
    expect(director.send(b, 0)).toBe(1);
  }

  beforeAll(() => {
    const lan = lab.netns("lan");
    c = lab.netns("c");
    d = lab.netns("d");
    r = lab.netns("rs");
    for (const ns of [lan, c, d, r]) disableIpv6(ns);
    const br = lab.dev("br");
    lab.ip(lan, "link", "add", br, "type", "bridge");
    lab.ip(lan, "link", "set", br, "up");
    const attach = (ns: string, inside: string, outside: string, addr: string) => {
      lab.ip(ns, "link", "add", inside, "type", "veth", "peer", "name", outside, "netns", lan);
      lab.ip(lan, "link", "set", outside, "master", br, "up");
      lab.ip(ns, "addr", "add", `${addr}/24`, "dev", inside);
      lab.ip(ns, "link", "set", inside, "up");
    };
    const cv = lab.dev("cv");
    const dv = lab.dev("dv");
    rv = lab.dev("rv");
    attach(c, cv, lab.dev("cb"), C_IP);
    attach(d, dv, lab.dev("db"), D_IP);
    attach(r, rv, lab.dev("rb"), RS_IP);
    tunName = lab.dev("tn");
    rsMac = parseMac(linkInfo(lab, r, rv).address);
    dMac = parseMac(linkInfo(lab, d, dv).address);
    // The client reaches the VIP through the director; 1480 leaves room for the outer header.
    lab.ip(c, "route", "add", `${VIP}/32`, "via", D_IP, "mtu", "1480");
    // The client's TCP sends wire-sized frames (the director reads them with AF_PACKET).
    disableOffloads(c, cv);
    // Strict reverse-path filtering, as many distributions set it: the decapsulator must cope.
    sysctlSet("net/ipv4/conf/all/rp_filter", "1", r);
    beforeArp = ["all", "lo", rv].map((dev) => sysctlGet(`net/ipv4/conf/${dev}/arp_ignore`, r));
    director = openRaw({ ifname: dv, netns: d });
    director.onReadable(pumpDirector);
    clientTap = openRaw({ ifname: cv, netns: c, macs: "all", mode: "mmsg" });
  });

  /** Servers bound to the VIP (start them once the VIP is on lo). */
  function startServers(ms: number): void {
    lab.exec(r, [process.execPath, "-e", UDP_ECHO_SERVER(VIP, 5353, ms)], ms + 5000);
    lab.exec(r, [process.execPath, "-e", TCP_ECHO_SERVER(VIP, 5001, ms)], ms + 5000);
  }

  afterAll(() => {
    session?.stop();
    director?.onReadable(null);
    director?.close();
    clientTap?.close();
    lab.cleanup();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it("control: without the decapsulator the kernel answers IPIP with ICMP protocol-unreachable", async () => {
    const n0 = protoUnreach;
    sendIpip("nobody", 40000);
    expect(await until(() => protoUnreach > n0, 2000)).toBe(true);
  });

  it("refuses a --local address the host does not have, changing nothing", async () => {
    const args = [
      "tun",
      "--vip",
      VIP,
      "--dev",
      rv,
      "--netns",
      r,
      "--state-dir",
      stateDir,
      "--local",
      "198.18.8.99",
    ];
    expect(await rs(...args)).toBe(2);
    expect(onLo(r, VIP)).toBe(false);
    expect(["all", "lo", rv].map((dev) => sysctlGet(`net/ipv4/conf/${dev}/arp_ignore`, r))).toEqual(
      beforeArp,
    );
    expect(await rs("status", "--netns", r, "--state-dir", stateDir)).toBe(0);
  });

  it("tun sets up the VIP, the ARP sysctls and a TUN device; the kernel has no ipip module here", () => {
    const a = parseRsArgs([
      "tun",
      "--vip",
      VIP,
      "--dev",
      rv,
      "--netns",
      r,
      "--tun-name",
      tunName,
      "--state-dir",
      stateDir,
    ]);
    session = TunSession.start(a);
    expect(ifIndex(tunName, r)).toBeGreaterThan(0);
    expect(() => ifIndex("tunl0", r)).toThrow();
    expect(onLo(r, VIP)).toBe(true);
    expect(sysctlGet("net/ipv4/conf/all/arp_ignore", r)).toBe("1");
    expect(sysctlGet(`net/ipv4/conf/${tunName}/rp_filter`, r)).toBe("2"); // loose beats strict `all`
    expect(sysctlGet("net/ipv4/conf/all/rp_filter", r)).toBe("1"); // untouched
    expect(session.locals).toEqual([ipToU32(RS_IP)]);
    startServers(30_000);
  });

  it("a hand-built UDP-in-IPIP packet reaches the server on the VIP; the reply goes straight to the client", async () => {
    await until(() => listening(r, "u", `${VIP}:5353`), 3000);
    const listener = lab.udpListener(c, 40001, 1500);
    await listener.ready;
    const n0 = protoUnreach;
    let direct = 0;
    let tunneled = 0;
    const capture = watch(clientTap, 1200, (b, i) => {
      const o = b.off[i]!;
      if (b.dv.getUint16(o + 12) !== 0x0800) return;
      if (b.dv.getUint32(o + 26) === ipToU32(VIP) && b.buf[o + 23] === 17) {
        // A plain UDP packet from the VIP, sent by the real server's own MAC.
        if (b.buf.subarray(o + 6, o + 12).every((x, k) => x === rsMac[k])) direct++;
      }
      // (The bridge may flood the director's IPIP frames to the client's port before it has
      // learned the real server's MAC: only IPIP addressed to the client would be a reply.)
      if (b.buf[o + 23] === 4 && b.dv.getUint32(o + 30) === ipToU32(C_IP)) tunneled++;
    });
    sendIpip("hello-1", 40001);
    sendIpip("hello-2", 40001);
    expect((await listener.done).sort()).toEqual(["echo:hello-1", "echo:hello-2"]);
    await capture;
    expect(direct).toBe(2);
    expect(tunneled).toBe(0);
    expect(protoUnreach).toBe(n0); // the guard kept the kernel quiet
    const s = session!.decap.stats();
    expect(s.delivered).toBeGreaterThanOrEqual(2);
    expect(Object.values(s.drops).every((n) => n === 0)).toBe(true);
  });

  it("a TCP connection through the JS director: 1 MB echoed byte for byte, replies bypass the director", async () => {
    await until(() => listening(r, "t", `${VIP}:5001`), 3000);
    const n0 = protoUnreach;
    const e0 = encapsulated;
    const res = await lab.exec(c, [process.execPath, "-e", TCP_ECHO_CLIENT(VIP, 5001, 1 << 20)], 20_000);
    expect(res.out.trim(), res.err).toBe("OK");
    expect(encapsulated - e0).toBeGreaterThan(100);
    expect(viaDirector).toBe(0);
    expect(protoUnreach).toBe(n0);
    const s = session!.decap.stats();
    expect(s.delivered).toBeGreaterThan(100);
    expect(s.drops["bad_inner"]).toBe(0);
  });

  it("a second tun for the same namespace is refused while one runs", async () => {
    expect(await rs("tun", "--vip", VIP, "--dev", rv, "--netns", r, "--state-dir", stateDir)).toBe(1);
  });

  it("stopping reverts everything: TUN gone, VIP removed, sysctls restored, ICMP back", async () => {
    session!.stop();
    session = undefined;
    expect(() => ifIndex(tunName, r)).toThrow();
    expect(onLo(r, VIP)).toBe(false);
    expect(["all", "lo", rv].map((dev) => sysctlGet(`net/ipv4/conf/${dev}/arp_ignore`, r))).toEqual(
      beforeArp,
    );
    expect(sysctlGet("net/ipv4/conf/all/rp_filter", r)).toBe("1");
    expect(await rs("tun", "--undo", "--netns", r, "--state-dir", stateDir)).toBe(0); // nothing left: fine
    const n0 = protoUnreach;
    sendIpip("after", 40002);
    expect(await until(() => protoUnreach > n0, 2000)).toBe(true);
  });

  describe.skipIf(!BUILT)("bin/lvs-realserver (built into dist/)", () => {
    const run = (...args: string[]) =>
      spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8", timeout: 20_000 });

    it("--daemon (recvmmsg mode) runs the decapsulator in the background; status shows it; tun --undo stops it and reverts", async () => {
      const pidFile = join(stateDir, "d.pid");
      const start = run(
        "tun",
        "--vip",
        VIP,
        "--dev",
        rv,
        "--netns",
        r,
        "--tun-name",
        tunName,
        "--mode",
        "mmsg",
        "--daemon",
        "--pid-file",
        pidFile,
        "--state-dir",
        stateDir,
      );
      expect(start.status, start.stderr).toBe(0);
      const pid = Number(readFileSync(pidFile, "utf8"));
      expect(() => process.kill(pid, 0)).not.toThrow();
      expect(ifIndex(tunName, r)).toBeGreaterThan(0);
      expect(run("status", "--netns", r, "--state-dir", stateDir).stdout).toMatch(
        new RegExp(`pid ${pid} running`),
      );
      // It decapsulates.
      startServers(5000);
      await until(() => listening(r, "u", `${VIP}:5353`), 3000);
      const listener = lab.udpListener(c, 40003, 1500);
      await listener.ready;
      sendIpip("daemon", 40003);
      expect(await listener.done).toEqual(["echo:daemon"]);
      const undo = run("tun", "--undo", "--netns", r, "--state-dir", stateDir);
      expect(undo.status, undo.stderr).toBe(0);
      expect(undo.stdout).toMatch(/stopped the decapsulator/);
      expect(() => process.kill(pid, 0)).toThrow();
      expect(existsSync(pidFile)).toBe(false);
      expect(() => ifIndex(tunName, r)).toThrow();
      expect(onLo(r, VIP)).toBe(false);
      expect(["all", "lo", rv].map((dev) => sysctlGet(`net/ipv4/conf/${dev}/arp_ignore`, r))).toEqual(
        beforeArp,
      );
    });

    it("exit statuses and messages: bad address 2, missing namespace 1, no privileges 1", () => {
      const bad = run("dr", "--vip", "10.0.0.256");
      expect(bad.status).toBe(2);
      expect(bad.stderr).toMatch(/invalid IPv4 address/);
      const nons = run("dr", "--vip", VIP, "--netns", `${lab.prefix}none`, "--state-dir", stateDir);
      expect(nons.status).toBe(1);
      expect(nons.stderr).toMatch(/does not exist/);
      const nodev = run("tun", "--vip", VIP, "--dev", lab.dev("nx"), "--netns", r, "--state-dir", stateDir);
      expect(nodev.status).toBe(1);
      expect(nodev.stderr).toMatch(/no interface/);
      let setpriv = "";
      try {
        setpriv = execFileSync("sh", ["-c", "command -v setpriv"], { encoding: "utf8" }).trim();
      } catch {
        // not installed: skip that part
      }
      if (setpriv !== "") {
        const np = spawnSync(
          setpriv,
          ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, BIN, "dr", "--vip", VIP],
          { encoding: "utf8" },
        );
        expect(np.status).toBe(1);
        expect(np.stderr).toMatch(/needs root/);
      }
      expect(run("--help").stdout).toMatch(/Usage:/);
    });
  });
});
