/**
 * The VRRP codec against a real keepalived (Debian's, 2.2.7 when this was written), live: for
 * VRRPv2 with a password, VRRPv3, and VRRPv3 to a unicast peer, keepalived runs in a network
 * namespace of its own with `state MASTER`, priority 150, advert_int 1, VRID 51 and two virtual
 * addresses, joined by a veth pair to a second namespace where `tcpdump -w` captures
 * `ip proto 112`. After three adverts keepalived gets SIGTERM and sends its priority-0 advert.
 * Then every captured advert must parse with the expected fields, and `emitVrrp`, given the same
 * fields, MAC, addresses and IP id, must produce the captured frame byte for byte.
 *
 * Needs root, ip, keepalived and tcpdump (skipped with a note naming what is missing). Nothing
 * leaves the two namespaces (named `ka<pid><tag>-k`/`-c`), which are removed afterwards, also when
 * a test fails; keepalived and tcpdump are killed by pid; each run is bounded (about 6 s).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { masterDownIntervalUs } from "../../../src/control/vrrp/instance.js";
import { parseFrame } from "../../../src/datapath/packet/parse.js";
import { FrameView, ParseStatus } from "../../../src/datapath/packet/view.js";
import {
  emitVrrp,
  parseVrrp,
  VRRP_AUTH_NONE,
  VRRP_AUTH_PASS,
  VRRP_GROUP,
  VRRP_STATUS_NAMES,
  VrrpAdvertSpec,
  VrrpView,
  vrrpAddr,
  vrrpAuthEquals,
  vrrpAuthPass,
} from "../../../src/datapath/packet/vrrp.js";
import { ipToU32, macToBytes } from "../../../src/lib/addr.js";
import { skipWithout } from "../../support/tools.js";
import { toHex } from "./helpers.js";

const isRoot = process.getuid?.() === 0 && process.platform === "linux";
if (!isRoot) console.warn("skipping the live keepalived capture: needs root (network namespaces)");

const MAC_K = "02:00:00:00:12:01";
const MAC_C = "02:00:00:00:12:02";
const K = "10.18.0.1";
const C = "10.18.0.2";
const VIPS = ["10.18.0.100", "10.18.0.101"];
const PASS = "secret1";

interface Mode {
  tag: string;
  version: 2 | 3;
  unicast: boolean;
}

const MODES: Mode[] = [
  { tag: "v2", version: 2, unicast: false },
  { tag: "v3", version: 3, unicast: false },
  { tag: "u3", version: 3, unicast: true },
];

function sh(cmd: string, ...args: string[]): string {
  return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 10_000 });
}

function configFor(m: Mode, dev: string): string {
  return [
    "global_defs {",
    m.version === 3 ? "  vrrp_version 3" : "",
    "}",
    "vrrp_instance VI_1 {",
    "  state MASTER",
    `  interface ${dev}`,
    "  virtual_router_id 51",
    "  priority 150",
    "  advert_int 1",
    m.version === 2 ? `  authentication {\n    auth_type PASS\n    auth_pass ${PASS}\n  }` : "",
    m.unicast ? `  unicast_peer {\n    ${C}\n  }` : "",
    `  virtual_ipaddress {\n${VIPS.map((v) => `    ${v}/24`).join("\n")}\n  }`,
    "}",
    "",
  ].join("\n");
}

interface PcapRecord {
  /** Seconds since the epoch. */
  ts: number;
  data: Uint8Array;
}

/** Records of a classic pcap file (as tcpdump -w writes it); a record still being written is left out. */
function readPcap(buf: Buffer): PcapRecord[] {
  if (buf.length < 24) return [];
  let le: boolean;
  let nano: boolean;
  const m = buf.readUInt32LE(0);
  if (m === 0xa1b2c3d4 || m === 0xa1b23c4d) le = true;
  else if (buf.readUInt32BE(0) === 0xa1b2c3d4 || buf.readUInt32BE(0) === 0xa1b23c4d) le = false;
  else throw new Error(`not a pcap file (magic ${m.toString(16)})`);
  const u32 = (o: number) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  nano = u32(0) === 0xa1b23c4d;
  if (u32(20) !== 1) throw new Error(`link type ${u32(20)}, not Ethernet`);
  const out: PcapRecord[] = [];
  let o = 24;
  while (o + 16 <= buf.length) {
    const incl = u32(o + 8);
    if (o + 16 + incl > buf.length) break;
    out.push({
      ts: u32(o) + u32(o + 4) / (nano ? 1e9 : 1e6),
      data: new Uint8Array(buf.subarray(o + 16, o + 16 + incl)),
    });
    o += 16 + incl;
  }
  return out;
}

/** Namespaces, processes and files of one capture; `cleanup()` removes them all. */
class Capture {
  readonly prefix: string;
  readonly nsK: string;
  readonly nsC: string;
  readonly devK: string;
  readonly devC: string;
  readonly dir: string;
  private readonly namespaces: string[] = [];
  private readonly children = new Set<ChildProcess>();
  private readonly onExit = () => this.cleanupSync();

  constructor(tag: string) {
    this.prefix = `ka${process.pid % 100000}${tag}`;
    this.nsK = `${this.prefix}-k`;
    this.nsC = `${this.prefix}-c`;
    this.devK = `${this.prefix}k`;
    this.devC = `${this.prefix}c`;
    this.dir = mkdtempSync(join(tmpdir(), "lvs-vrrp-"));
    process.on("exit", this.onExit);
  }

  setUp(): void {
    for (const ns of [this.nsK, this.nsC]) {
      sh("ip", "netns", "add", ns);
      this.namespaces.push(ns);
      sh("ip", "-n", ns, "link", "set", "lo", "up");
    }
    sh(
      "ip",
      "link",
      "add",
      this.devK,
      "netns",
      this.nsK,
      "type",
      "veth",
      "peer",
      "name",
      this.devC,
      "netns",
      this.nsC,
    );
    sh("ip", "-n", this.nsK, "link", "set", this.devK, "address", MAC_K);
    sh("ip", "-n", this.nsC, "link", "set", this.devC, "address", MAC_C);
    sh("ip", "-n", this.nsK, "addr", "add", `${K}/24`, "dev", this.devK);
    sh("ip", "-n", this.nsC, "addr", "add", `${C}/24`, "dev", this.devC);
    sh("ip", "-n", this.nsK, "link", "set", this.devK, "up");
    sh("ip", "-n", this.nsC, "link", "set", this.devC, "up");
  }

  /** Start a command inside a namespace (`ip netns exec` execs it: the child's pid is the command's). */
  start(ns: string, cmd: string[]): { child: ChildProcess; output: () => string } {
    const child = spawn("ip", ["netns", "exec", ns, ...cmd], { stdio: ["ignore", "pipe", "pipe"] });
    this.children.add(child);
    child.once("exit", () => this.children.delete(child));
    let out = "";
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.stderr?.on("data", (d: Buffer) => {
      out += d.toString();
    });
    return { child, output: () => out };
  }

  /** SIGTERM, then SIGKILL after `ms`; resolves when the process has exited. */
  async stop(child: ChildProcess, ms = 5000): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, "exit");
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), ms);
    await exited;
    clearTimeout(timer);
  }

  async cleanup(): Promise<void> {
    for (const c of [...this.children]) await this.stop(c, 2000);
    this.cleanupSync();
  }

  private cleanupSync(): void {
    for (const c of this.children) c.kill("SIGKILL");
    this.children.clear();
    for (const ns of this.namespaces.splice(0)) {
      try {
        execFileSync("ip", ["netns", "del", ns], { stdio: "ignore" });
      } catch {
        // already gone
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
    process.off("exit", this.onExit);
  }
}

async function until(what: string, ms: number, ok: () => boolean): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const captures: Capture[] = [];
afterAll(async () => {
  for (const c of captures.splice(0)) await c.cleanup();
});

describe.skipIf(!isRoot)("keepalived's adverts, captured live, through our codec", () => {
  for (const m of MODES) {
    const what = `VRRPv${m.version}${m.version === 2 ? " with auth_type PASS" : ""}${m.unicast ? " to a unicast peer" : ""}`;
    it(`${what}: parsed with the expected fields, and re-emitted byte for byte`, async (ctx) => {
      skipWithout(ctx, "ip", "keepalived", "tcpdump");
      const cap = new Capture(m.tag);
      captures.push(cap);
      cap.setUp();
      const conf = join(cap.dir, "keepalived.conf");
      const pcap = join(cap.dir, "vrrp.pcap");
      writeFileSync(conf, configFor(m, cap.devK));

      const td = cap.start(cap.nsC, [
        "tcpdump",
        "-i",
        cap.devC,
        "-n",
        "-U",
        "--immediate-mode",
        "-w",
        pcap,
        "ip proto 112",
      ]);
      await until("tcpdump to listen", 10_000, () => td.output().includes("listening on"));
      const t0 = Date.now() / 1000;
      const ka = cap.start(cap.nsK, [
        "keepalived",
        "--dont-fork",
        "--log-console",
        "--log-detail",
        "--vrrp",
        "--no-syslog",
        "--use-file",
        conf,
        "--pid",
        join(cap.dir, "keepalived.pid"),
        "--vrrp_pid",
        join(cap.dir, "vrrp.pid"),
      ]);
      const adverts = () => {
        try {
          return readPcap(readFileSync(pcap));
        } catch {
          return [];
        }
      };
      try {
        // keepalived waits Master_Down_Interval (3.41 s) before its first advert, then one a second.
        await until("three adverts from keepalived", 12_000, () => adverts().length >= 3);
      } catch (e) {
        throw new Error(`${(e as Error).message}; keepalived said:\n${ka.output()}`);
      }
      await cap.stop(ka.child);
      await until("the priority-0 advert", 3000, () => adverts().some((r) => r.data[36] === 0));
      await new Promise((r) => setTimeout(r, 200));
      await cap.stop(td.child);
      const recs = adverts();
      await cap.cleanup();

      // (a) every advert parses, with the configured fields; the last one has priority 0.
      expect(recs.length).toBeGreaterThanOrEqual(4);
      const f = new FrameView();
      const v = new VrrpView();
      const pass = new Uint8Array(8);
      vrrpAuthPass(PASS, pass, 0);
      const daddr = m.unicast ? ipToU32(C) : VRRP_GROUP;
      recs.forEach((r, i) => {
        const d = r.data;
        expect(parseFrame(d, new DataView(d.buffer, d.byteOffset, d.byteLength), 0, d.length, f)).toBe(
          ParseStatus.OK,
        );
        expect(VRRP_STATUS_NAMES[parseVrrp(f, v, m.unicast ? 1 : 0)]).toBe("ok");
        const addrs = [vrrpAddr(v, 0), vrrpAddr(v, 1)];
        expect({
          version: v.version,
          vrid: v.vrid,
          priority: v.priority,
          count: v.count,
          intervalCs: v.intervalCs,
          authType: v.authType,
          saddr: v.saddr,
          daddr: v.daddr,
          ttl: v.ttl,
          tos: d[15],
          ipId: f.ipId,
          addrs,
        }).toEqual({
          version: m.version,
          vrid: 51,
          priority: i === recs.length - 1 ? 0 : 150,
          count: 2,
          intervalCs: 100,
          authType: m.version === 2 ? VRRP_AUTH_PASS : -1,
          saddr: ipToU32(K),
          daddr,
          ttl: 255,
          tos: 0xc0,
          ipId: i + 1, // keepalived's own counter, from 1
          addrs: VIPS.map(ipToU32),
        });
        if (m.version === 2) expect(vrrpAuthEquals(v, pass, 0)).toBe(1);

        // (b) our emitter, given the same fields, writes the same frame.
        const s = new VrrpAdvertSpec();
        s.version = m.version;
        s.vrid = 51;
        s.priority = v.priority;
        s.interval = m.version === 2 ? 1 : 100;
        s.authType = m.version === 2 ? VRRP_AUTH_PASS : VRRP_AUTH_NONE;
        s.authData.set(pass);
        s.count = 2;
        s.addrs.set(VIPS.map(ipToU32));
        s.saddr = ipToU32(K);
        s.daddr = daddr;
        s.ipId = f.ipId;
        const out = new Uint8Array(128);
        const n = emitVrrp(out, 0, s, macToBytes(MAC_K), 0, macToBytes(MAC_C), 0);
        expect(toHex(out.subarray(0, n))).toBe(toHex(d.subarray(0, 14 + f.ipTotalLen)));
      });

      // Timing: keepalived 2.x starts a non-owner in BACKUP even with `state MASTER` and waits
      // the whole Master_Down_Interval before its first advert; then one per advert_int.
      const mdi = masterDownIntervalUs(m.version, 150, 100) / 1e6;
      expect(recs[0]!.ts - t0).toBeGreaterThan(mdi - 0.1);
      for (let i = 1; i < recs.length - 1; i++) {
        const gap = recs[i]!.ts - recs[i - 1]!.ts;
        expect(gap).toBeGreaterThan(0.8);
        expect(gap).toBeLessThan(1.3);
      }
    }, 45_000);
  }
});
