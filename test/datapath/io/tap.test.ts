/**
 * TAP backend, end to end through the kernel: the TAP is created inside a test namespace (see
 * lab.ts for how the two sides are placed), the kernel side gets 198.18.0.1/24, and the JS side
 * plays 198.18.0.2 by answering ARP and ICMP by hand.
 */
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { EGRESS_NONE, FrameBatch } from "../../../src/datapath/io/batch.js";
import { IoError, IoErrorCode, type LinkIo, toIoError } from "../../../src/datapath/io/link.js";
import { buildOutput } from "../../../src/datapath/io/native.js";
import { openTap, type TapIo } from "../../../src/datapath/io/tap.js";
import { skipWithout } from "../../support/tools.js";
import {
  answerInPlace,
  canRun,
  ip4,
  Lab,
  linkInfo,
  macStr,
  parseMac,
  SKIP_REASON,
  sh,
  udpFrame,
  udpPayload,
  until,
} from "./lab.js";

if (!canRun) console.warn(SKIP_REASON);

const KERNEL_IP = "198.18.0.1";
const OUR_IP = ip4("198.18.0.2");
const OUR_MAC = parseMac("02:00:5e:10:00:02");

function expectIoError(fn: () => unknown, code: string, errno?: string): IoError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(IoError);
    const e = err as IoError;
    expect(e.code, e.message).toBe(code);
    if (errno !== undefined) expect(e.errno).toBe(errno);
    return e;
  }
  throw new Error(`expected IoError ${code}`);
}

function drain(link: LinkIo, batch: FrameBatch): void {
  batch.reset();
  while (link.recv(batch, 0) > 0) batch.reset();
}

describe.skipIf(!canRun)("TAP backend (root, network namespaces)", () => {
  const lab = new Lab("t");
  const open: LinkIo[] = [];
  let ns = "";
  let tap: TapIo;

  function keep<T extends LinkIo>(l: T): T {
    open.push(l);
    return l;
  }

  beforeAll(() => {
    ns = lab.netns("tap");
    // No IPv6 chatter (router solicitations, MLD): every frame the tests see is one they caused.
    sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1");
    sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1");
    tap = keep(openTap({ name: lab.dev("t0"), netns: ns, mac: OUR_MAC }));
    lab.ip(ns, "addr", "add", `${KERNEL_IP}/24`, "dev", tap.name);
  });

  afterAll(() => {
    for (const l of open) l.close();
    lab.cleanup();
  });

  it("creates the TAP in the namespace, up, with its own MAC distinct from ours", () => {
    const info = linkInfo(lab, ns, tap.name);
    expect(info.address).toBe(macStr(tap.ifaceMac));
    expect(macStr(tap.mac)).toBe(macStr(OUR_MAC));
    expect(tap.created).toBe(true);
    expect(tap.mtu).toBe(1500);
    expect(lab.ip(ns, "link", "show", "dev", tap.name)).toMatch(/[<,]UP[,>]/);
  });

  it("answers `ping -c 3` from the kernel: ARP and ICMP echo replies built by hand flow back", async (ctx) => {
    skipWithout(ctx, "ping");
    const batch = new FrameBatch(64);
    const before = tap.stats;
    let wakeups = 0;
    tap.onReadable(() => {
      wakeups++;
      batch.reset();
      while (tap.recv(batch, 0) > 0) {
        for (let i = 0; i < batch.count; i++) {
          if (answerInPlace(batch, i, tap.mac, OUR_IP)) batch.egress[i] = 0;
        }
        tap.send(batch, 0);
        batch.reset();
      }
    });
    const r = await lab.exec(ns, ["ping", "-c", "3", "-i", "0.2", "-W", "2", "198.18.0.2"]);
    tap.onReadable(null);
    expect(r.out, r.err).toMatch(/3 packets transmitted, 3 received/);
    expect(r.code).toBe(0);
    // One wake-up per echo request at least (the ARP request may share one: the kernel queues the
    // first echo while our write() of the ARP reply is still in the kernel).
    expect(wakeups).toBeGreaterThanOrEqual(3);
    const after = tap.stats;
    // At least one ARP request and three echo requests in, as many replies out.
    expect(after.rxPackets - before.rxPackets).toBeGreaterThanOrEqual(4);
    expect(after.txPackets - before.txPackets).toBeGreaterThanOrEqual(4);
    expect(after.rxBytes - before.rxBytes).toBeGreaterThanOrEqual(42 + 3 * 98);
    expect(after.txBytes - before.txBytes).toBeGreaterThanOrEqual(42 + 3 * 98);
    // The kernel learned our MAC from the ARP reply.
    expect(lab.ip(ns, "neigh", "show", "198.18.0.2")).toContain(macStr(OUR_MAC));
  });

  it("reads a burst of queued frames in one recv call", async () => {
    const batch = new FrameBatch(64);
    drain(tap, batch);
    lab.ip(
      ns,
      "neigh",
      "replace",
      "198.18.0.9",
      "lladdr",
      "02:00:5e:10:00:09",
      "dev",
      tap.name,
      "nud",
      "permanent",
    );
    const sent = await lab.udpSend(ns, "198.18.0.9", 9, 10, "burst");
    expect(sent.code, sent.err).toBe(0);
    batch.reset();
    batch.push(new Uint8Array(60), 7); // recv appends after frames already in the batch
    const n = tap.recv(batch, 3);
    expect(n).toBeGreaterThanOrEqual(10);
    expect(batch.count).toBe(1 + n);
    expect(batch.link[0]).toBe(7);
    const payloads: string[] = [];
    for (let i = 1; i < batch.count; i++) {
      expect(batch.link[i]).toBe(3);
      expect(batch.egress[i]).toBe(EGRESS_NONE);
      expect(batch.off[i]).toBe(batch.slotStart(i) + 64);
      const p = udpPayload(batch, i);
      if (p !== undefined) payloads.push(p);
    }
    expect(payloads.sort()).toEqual(Array.from({ length: 10 }, (_, i) => `burst${i}`).sort());
    batch.reset();
    expect(tap.recv(batch, 3)).toBe(0); // drained
  });

  it("sends only the frames whose egress matches, in one send call", async () => {
    const listener = lab.udpListener(ns, 7000, 1500);
    await listener.ready;
    const before = tap.stats;
    const batch = new FrameBatch(16);
    const egress = [0, 1, 0, EGRESS_NONE, 0, 2];
    egress.forEach((e, k) => {
      const i = batch.push(udpFrame(tap.ifaceMac, tap.mac, OUR_IP, ip4(KERNEL_IP), 5555, 7000, `mix${k}`));
      batch.egress[i] = e;
    });
    expect(tap.send(batch, 0)).toBe(3);
    expect(tap.send(batch, 5)).toBe(0);
    const got = await listener.done;
    expect(got.sort()).toEqual(["mix0", "mix2", "mix4"]);
    const after = tap.stats;
    expect(after.txPackets - before.txPackets).toBe(3);
    expect(after.txDropped).toBe(before.txDropped);
  });

  it("refuses a name in use: ERR_IO_NAME_IN_USE with errno EBUSY", () => {
    expectIoError(
      () => openTap({ name: tap.name, netns: ns, create: true }),
      IoErrorCode.NAME_IN_USE,
      "EBUSY",
    );
    expectIoError(() => openTap({ name: tap.name, netns: ns }), IoErrorCode.NAME_IN_USE, "EBUSY");
    // Attaching to a TAP another descriptor holds is refused the same way.
    expectIoError(
      () => openTap({ name: tap.name, netns: ns, create: false }),
      IoErrorCode.NAME_IN_USE,
      "EBUSY",
    );
    // So is creating a TAP under the name of a device of another kind.
    lab.ip(ns, "link", "add", lab.dev("v0"), "type", "veth", "peer", "name", lab.dev("v1"));
    expectIoError(
      () => openTap({ name: lab.dev("v0"), netns: ns, create: true }),
      IoErrorCode.NAME_IN_USE,
      "EBUSY",
    );
    const e = expectIoError(
      () => openTap({ name: lab.dev("v0"), netns: ns }),
      IoErrorCode.NAME_IN_USE,
      "EINVAL",
    );
    expect(e.message).toMatch(/not a TAP/);
  });

  it("attaches to an existing persistent TAP and leaves it in place on close", () => {
    const name = lab.dev("p0");
    lab.ip(ns, "tuntap", "add", "dev", name, "mode", "tap");
    const p = keep(openTap({ name, netns: ns, create: false }));
    expect(p.created).toBe(false);
    expect(p.ifaceMac).toEqual(parseMac(linkInfo(lab, ns, name).address));
    p.close();
    expect(() => lab.ip(ns, "link", "show", "dev", name)).not.toThrow();
    // The default mode attaches too; create: true refuses.
    const q = keep(openTap({ name, netns: ns }));
    expect(q.created).toBe(false);
    q.close();
    expectIoError(() => openTap({ name, netns: ns, create: true }), IoErrorCode.NAME_IN_USE, "EBUSY");
    expect(() => lab.ip(ns, "link", "show", "dev", name)).not.toThrow();
    expectIoError(() => openTap({ name: lab.dev("nx"), netns: ns, create: false }), IoErrorCode.NO_DEVICE);
  });

  it("removes a TAP it created on close; a closed link is inert", () => {
    const t = keep(openTap({ name: lab.dev("t4"), netns: ns, mtu: 1400 }));
    expect(t.mtu).toBe(1400);
    t.close();
    t.close(); // idempotent
    expect(() => lab.ip(ns, "link", "show", "dev", lab.dev("t4"))).toThrow();
    const batch = new FrameBatch(4);
    batch.egress[batch.push(new Uint8Array(60))] = 0;
    expect(t.recv(batch, 0)).toBe(0);
    expect(t.send(batch, 0)).toBe(0);
    expect(t.stats.txDropped).toBe(1);
    expectIoError(() => t.onReadable(() => {}), IoErrorCode.CLOSED);
  });

  it("keeps a persistent TAP after close when asked to", () => {
    const name = lab.dev("t5");
    openTap({ name, netns: ns, persist: true }).close();
    expect(() => lab.ip(ns, "link", "show", "dev", name)).not.toThrow();
    lab.ip(ns, "tuntap", "del", "dev", name, "mode", "tap");
  });

  it("enslaves the TAP to a bridge", () => {
    const br = lab.dev("br");
    lab.ip(ns, "link", "add", br, "type", "bridge");
    const t = keep(openTap({ name: lab.dev("t3"), netns: ns, bridge: br }));
    expect(linkInfo(lab, ns, t.name).master).toBe(br);
  });

  it("fails clearly on a missing bridge or a non-bridge, leaving no TAP behind", () => {
    const name = lab.dev("t2");
    const e = expectIoError(
      () => openTap({ name, netns: ns, bridge: lab.dev("nobr") }),
      IoErrorCode.NO_BRIDGE,
      "ENODEV",
    );
    expect(e.message).toMatch(/bridge .*nobr does not exist/);
    expect(() => lab.ip(ns, "link", "show", "dev", name)).toThrow();
    const e2 = expectIoError(() => openTap({ name, netns: ns, bridge: tap.name }), IoErrorCode.NO_BRIDGE);
    expect(e2.message).toMatch(/is not a bridge/);
    expect(() => lab.ip(ns, "link", "show", "dev", name)).toThrow();
  });

  it("reports a missing namespace and invalid options with stable codes", () => {
    expectIoError(() => openTap({ name: lab.dev("t6"), netns: `${lab.prefix}none` }), IoErrorCode.NO_NETNS);
    expectIoError(() => openTap({ name: "a-name-longer-than-15" }), IoErrorCode.INVALID);
    expectIoError(() => openTap({ name: lab.dev("t6"), mtu: 10 }), IoErrorCode.INVALID);
    expectIoError(
      () => openTap({ name: lab.dev("t6"), mac: parseMac("01:00:5e:00:00:01") }),
      IoErrorCode.INVALID,
    );
  });

  it("counts frames the kernel dropped because we did not read (queue overflow)", async () => {
    const t = keep(openTap({ name: lab.dev("q0"), netns: ns }));
    lab.ip(ns, "link", "set", "dev", t.name, "txqueuelen", "16");
    lab.ip(ns, "addr", "add", "198.18.5.1/24", "dev", t.name);
    lab.ip(
      ns,
      "neigh",
      "replace",
      "198.18.5.9",
      "lladdr",
      "02:00:5e:10:05:09",
      "dev",
      t.name,
      "nud",
      "permanent",
    );
    const sent = await lab.udpSend(ns, "198.18.5.9", 9, 200, "q");
    expect(sent.code, sent.err).toBe(0);
    expect(await until(() => t.stats.rxDropped > 0)).toBe(true);
    const d = t.detail();
    expect(d.kernelDrops).toBeGreaterThan(0);
    expect(d.rxDropped).toBe(d.kernelDrops + d.rxTruncated);
    const batch = new FrameBatch(256);
    expect(t.recv(batch, 0)).toBeGreaterThan(0);
    expect(t.recv(batch, 0)).toBe(0);
  });

  it("maps EPERM/EACCES for an unprivileged user to ERR_IO_NO_PRIVILEGE", () => {
    const addon = buildOutput("lvs_io.node");
    expect(addon, "addon built").toBeDefined();
    const dir = mkdtempSync(join(tmpdir(), "lvs-io-"));
    try {
      execFileSync("chmod", ["755", dir]);
      const copy = join(dir, "lvs_io.node");
      copyFileSync(addon!, copy);
      const script = `try{require(${JSON.stringify(copy)}).openTap({name:${JSON.stringify(lab.dev("u0"))},create:true,persist:false,up:true});console.log("{}")}
catch(e){console.log(JSON.stringify({message:e.message,code:e.code,stage:e.stage,syscall:e.syscall}))}`;
      const out = execFileSync(process.execPath, ["-e", script], {
        uid: 65534,
        gid: 65534,
        encoding: "utf8",
        cwd: dir,
      });
      const shape = JSON.parse(out) as { message: string; code: string; stage: string; syscall: string };
      expect(["EPERM", "EACCES"]).toContain(shape.code);
      const native = Object.assign(new Error(shape.message), shape);
      const mapped = toIoError(native, "open TAP") as IoError;
      expect(mapped).toBeInstanceOf(IoError);
      expect(mapped.code).toBe(IoErrorCode.NO_PRIVILEGE);
      expect(mapped.message).toMatch(/root|CAP_NET_ADMIN/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("native addon loading", () => {
  it("fails at use time with ERR_IO_NATIVE_MISSING, never at import", async () => {
    const saved = process.env["LVS_IO_ADDON"];
    process.env["LVS_IO_ADDON"] = "/nonexistent/lvs_io.node";
    vi.resetModules();
    try {
      const tapMod = await import("../../../src/datapath/io/tap.js");
      const rawMod = await import("../../../src/datapath/io/rawsock.js");
      const linkMod = await import("../../../src/datapath/io/link.js");
      for (const open of [() => tapMod.openTap({ name: "x0" }), () => rawMod.openRaw({ ifname: "lo" })]) {
        let caught: unknown;
        try {
          open();
        } catch (err) {
          caught = err;
        }
        expect(caught).toBeInstanceOf(linkMod.IoError);
        expect((caught as IoError).code).toBe(IoErrorCode.NATIVE_MISSING);
        expect((caught as Error).message).toMatch(/not built.*npm ci|node-gyp rebuild/);
      }
    } finally {
      if (saved === undefined) delete process.env["LVS_IO_ADDON"];
      else process.env["LVS_IO_ADDON"] = saved;
      vi.resetModules();
    }
  });
});
