/**
 * Frames from a local sender with offloads on (the veth default: tx checksumming, TSO, GSO).
 *
 * - "snd" sends UDP and TCP from its veth end (198.18.4.1) to 198.18.4.2, which is our raw socket
 *   on the other end in "dir". The kernel hands such frames over CHECKSUM_PARTIAL
 *   (TP_STATUS_CSUMNOTREADY): the addon must finish the checksum before the batch sees it.
 * - A JS forwarder in "fwd" relays frames between two veths with raw sockets (an L2 relay, as
 *   lvsd would forward them): a TCP connection from "cli" to "srv" only works if the frames it
 *   forwards carry valid checksums. With TSO/GSO on, the sender's super-frames are counted
 *   (rxGso) and dropped; disableOffloads() on the senders fixes that.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FrameBatch } from "../../../src/datapath/io/batch.js";
import { disableOffloads, getOffloads, setOffloads } from "../../../src/datapath/io/netconf.js";
import { openRaw, type RawIo } from "../../../src/datapath/io/rawsock.js";
import { checkL4Checksum, L4Csum, parseFrame } from "../../../src/datapath/packet/parse.js";
import { FrameView, ParseStatus } from "../../../src/datapath/packet/view.js";
import { canRun, Lab, linkInfo, SKIP_REASON, sh, until } from "./lab.js";

if (!canRun) console.warn(SKIP_REASON);

const SND_IP = "198.18.4.1";
const DIR_IP = "198.18.4.2";
const CLI_IP = "198.18.5.1";
const SRV_IP = "198.18.5.2";

/** A TCP server that echoes everything back, one connection at a time (prints READY once bound). */
const ECHO_SERVER = (host: string, port: number, ms: number) =>
  `const s=require("net").createServer(c=>c.pipe(c));s.listen(${port},${JSON.stringify(host)},()=>console.log("READY"));setTimeout(()=>process.exit(0),${ms});`;

/** Send `bytes` random bytes, read the echo, print OK when it matches (or BAD/ERR). */
const ECHO_CLIENT = (host: string, port: number, bytes: number) =>
  `const d=require("crypto").randomBytes(${bytes});const c=require("net").connect(${port},${JSON.stringify(host)});
const got=[];let n=0;c.on("data",b=>{got.push(b);n+=b.length;if(n>=d.length){console.log(Buffer.concat(got).equals(d)?"OK":"BAD");c.destroy();}});
c.on("connect",()=>c.write(d));c.on("error",e=>{console.log("ERR "+e.code);process.exit(1);});`;

function disableIpv6(ns: string): void {
  sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1");
  sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1");
}

describe.skipIf(!canRun)("AF_PACKET: frames with offloaded checksums and GSO (root, namespaces)", () => {
  const lab = new Lab("o");

  afterAll(() => lab.cleanup());

  describe("receive: checksums a local sender left unfinished are completed", () => {
    let snd = "";
    let dir = "";
    let vs = "";
    let vd = "";
    beforeAll(() => {
      snd = lab.netns("snd");
      dir = lab.netns("dir");
      disableIpv6(snd);
      disableIpv6(dir);
      vs = lab.dev("vs");
      vd = lab.dev("vd");
      lab.ip(snd, "link", "add", vs, "type", "veth", "peer", "name", vd, "netns", dir);
      lab.ip(snd, "addr", "add", `${SND_IP}/24`, "dev", vs);
      lab.ip(snd, "link", "set", vs, "up");
      lab.ip(dir, "link", "set", vd, "up");
      const mac = linkInfo(lab, dir, vd).address;
      lab.ip(snd, "neigh", "replace", DIR_IP, "lladdr", mac, "dev", vs, "nud", "permanent");
    });

    it("the sender's veth has tx checksum offload on (the default this test relies on)", () => {
      expect(getOffloads(vs, snd).txCsum).toBe(true);
    });

    for (const mode of ["ring", "mmsg"] as const) {
      it(`mode ${mode}: UDP and TCP from the peer arrive with valid checksums, counted in detail()`, async () => {
        const raw = openRaw({ ifname: vd, netns: dir, mode });
        try {
          const r = await lab.udpSend(snd, DIR_IP, 9999, 5, `${mode}-csum-`);
          expect(r.code, r.err).toBe(0);
          // A TCP SYN (nobody answers; the client gives up after its timeout).
          const syn = lab.exec(
            snd,
            [
              process.execPath,
              "-e",
              `const c=require("net").connect({port:8080,host:${JSON.stringify(DIR_IP)}});c.on("error",()=>{});setTimeout(()=>process.exit(0),300);`,
            ],
            5000,
          );
          const batch = new FrameBatch(64);
          const v = new FrameView();
          let udp = 0;
          let tcp = 0;
          await until(() => {
            batch.reset();
            raw.recv(batch, 0);
            for (let i = 0; i < batch.count; i++) {
              expect(parseFrame(batch.buf, batch.dv, batch.off[i]!, batch.len[i]!, v)).toBe(ParseStatus.OK);
              if (v.proto !== 6 && v.proto !== 17) continue;
              expect(checkL4Checksum(v), `${v.proto === 6 ? "TCP" : "UDP"} checksum`).toBe(L4Csum.OK);
              if (v.proto === 17) udp++;
              else tcp++;
            }
            return udp >= 5 && tcp >= 1;
          }, 3000);
          await syn;
          expect(udp).toBe(5);
          expect(tcp).toBeGreaterThanOrEqual(1);
          const d = raw.detail();
          expect(d.csumPartial).toBeGreaterThanOrEqual(6);
          expect(d.csumFixed).toBe(d.csumPartial);
        } finally {
          raw.close();
        }
      });
    }
  });

  describe("forwarding through raw sockets (an L2 relay in JS)", () => {
    let cli = "";
    let fwd = "";
    let srv = "";
    let cv = "";
    let sv = "";
    let a: RawIo;
    let b: RawIo;

    beforeAll(() => {
      cli = lab.netns("cli");
      fwd = lab.netns("fwd");
      srv = lab.netns("srv");
      for (const ns of [cli, fwd, srv]) disableIpv6(ns);
      cv = lab.dev("cv");
      sv = lab.dev("sv");
      const fa = lab.dev("fa");
      const fb = lab.dev("fb");
      lab.ip(cli, "link", "add", cv, "type", "veth", "peer", "name", fa, "netns", fwd);
      lab.ip(srv, "link", "add", sv, "type", "veth", "peer", "name", fb, "netns", fwd);
      lab.ip(cli, "addr", "add", `${CLI_IP}/24`, "dev", cv);
      lab.ip(srv, "addr", "add", `${SRV_IP}/24`, "dev", sv);
      for (const [ns, dev] of [
        [cli, cv],
        [srv, sv],
        [fwd, fa],
        [fwd, fb],
      ] as const) {
        lab.ip(ns, "link", "set", dev, "up");
      }
      a = openRaw({ ifname: fa, netns: fwd, macs: "all" });
      b = openRaw({ ifname: fb, netns: fwd, macs: "all", mode: "mmsg" });
      // The relay: everything from one side leaves by the other, untouched by JS.
      const batch = new FrameBatch(256);
      const pump = (from: RawIo, fromId: number, toId: number) => () => {
        for (let round = 0; round < 16; round++) {
          batch.reset();
          const n = from.recv(batch, fromId);
          if (n === 0) break;
          for (let i = 0; i < batch.count; i++) batch.egress[i] = toId;
          (toId === 0 ? a : b).send(batch, toId);
        }
      };
      a.onReadable(pump(a, 0, 1));
      b.onReadable(pump(b, 1, 0));
    });

    afterAll(() => {
      a?.close();
      b?.close();
    });

    async function echo(port: number, bytes: number, ms = 10_000): Promise<string> {
      const server = lab.exec(srv, [process.execPath, "-e", ECHO_SERVER(SRV_IP, port, ms)], ms + 2000);
      await until(() => sh("ip", "netns", "exec", srv, "ss", "-ltn").includes(`${SRV_IP}:${port}`), 3000);
      const client = await lab.exec(cli, [process.execPath, "-e", ECHO_CLIENT(SRV_IP, port, bytes)], ms);
      void server;
      return client.out.trim() || client.err.trim() || `exit ${client.code}`;
    }

    it("a TCP transfer through the relay succeeds with TSO/GSO off and tx checksum offload on", async () => {
      const before = disableOffloads(cli, cv);
      disableOffloads(srv, sv);
      expect(before.tso).toBe(true); // it was on: the helper changed something
      const now = getOffloads(cv, cli);
      expect(now).toMatchObject({ tso: false, gso: false, gro: false, txCsum: true });
      const a0 = a.detail();
      const b0 = b.detail();
      expect(await echo(5001, 1 << 20)).toBe("OK");
      const a1 = a.detail();
      const b1 = b.detail();
      // Both directions carried partial-checksum frames, and every one was completed.
      expect(a1.csumPartial - a0.csumPartial).toBeGreaterThan(10);
      expect(b1.csumPartial - b0.csumPartial).toBeGreaterThan(10);
      expect(a1.csumFixed - a0.csumFixed).toBe(a1.csumPartial - a0.csumPartial);
      expect(b1.csumFixed - b0.csumFixed).toBe(b1.csumPartial - b0.csumPartial);
      expect(a1.rxGso - a0.rxGso).toBe(0);
    });

    it("with TSO on, the sender's super-frames are counted as rxGso and dropped", async () => {
      setOffloads(cv, { tso: true, gso: true }, cli);
      try {
        const g0 = a.detail();
        const port = 5002;
        const server = lab.exec(srv, [process.execPath, "-e", ECHO_SERVER(SRV_IP, port, 4000)], 6000);
        await until(() => sh("ip", "netns", "exec", srv, "ss", "-ltn").includes(`${SRV_IP}:${port}`), 3000);
        const client = lab.exec(cli, [process.execPath, "-e", ECHO_CLIENT(SRV_IP, port, 256 * 1024)], 3000);
        expect(await until(() => a.detail().rxGso > g0.rxGso, 3000)).toBe(true);
        const g1 = a.detail();
        expect(g1.rxTruncated - g0.rxTruncated).toBeGreaterThanOrEqual(g1.rxGso - g0.rxGso);
        await client;
        await server;
      } finally {
        disableOffloads(cli, cv);
      }
    });
  });

  it("offload helpers fail clearly on a missing device or namespace", () => {
    const code = (fn: () => unknown): string => {
      try {
        fn();
      } catch (err) {
        return (err as { code: string }).code;
      }
      return "no error";
    };
    expect(code(() => getOffloads(lab.dev("nx"), lab.netns("x")))).toBe("ERR_IO_NO_DEVICE");
    expect(code(() => getOffloads("lo", `${lab.prefix}none`))).toBe("ERR_IO_NO_NETNS");
  });
});
