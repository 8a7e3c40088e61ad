/**
 * Every forwarding mode through lvsd on AF_PACKET sockets in their zero-copy form (frames parsed
 * and rewritten in the RX ring, written once into the TX ring): NAT and FULLNAT in the NAT lab
 * (backend "raw"), DR and TUN in the routed lab (backend "raw"). Each moves 10 MB each way byte
 * for byte; FULLNAT also inserts a PROXY protocol header (the ring frame's tail room) for nginx.
 * Needs root; skipped with a message otherwise.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kernelDropTable, nftPath } from "../../../src/control/kernel-ingress.js";
import { nativeAvailable } from "../../../src/datapath/io/native.js";
import type { LabBase } from "../../../src/tools/lab/labbase.js";
import { NatLab, rsIp, VIP } from "../../../src/tools/lab/natlab.js";
import { canUseNetns } from "../../../src/tools/lab/netns.js";
import { nginxConf } from "../../../src/tools/lab/nginx.js";
import { pattern } from "../../../src/tools/lab/peer.js";
import { REALSERVER, RoutedLab } from "../../../src/tools/lab/routedlab.js";
import { haveTools } from "../../support/tools.js";

const privileged = canUseNetns() && nativeAvailable() && existsSync(REALSERVER);
if (!privileged)
  console.warn(
    "skipping AF_PACKET mode tests: needs root, the ip tool, the native addon and bin/lvs-realserver",
  );
const ok = privileged && haveTools("AF_PACKET mode tests", "curl");
const withNginx = ok && haveTools("AF_PACKET FULLNAT PROXY protocol test (nginx)", "nginx");

const BIG = 10 * 1024 * 1024;
const LADDR = "192.168.10.200";

type Mode = "nat" | "fullnat" | "dr" | "tun";
const FLAG: Record<Mode, string> = { nat: "-m", fullnat: "--fullnat", dr: "-g", tun: "-i" };

function makeLab(mode: Mode, prefix: string): { lab: LabBase; rs: (k: number) => string } {
  if (mode === "dr" || mode === "tun") {
    const lab = new RoutedLab({ prefix, mode, backend: "raw" });
    return { lab, rs: (k) => lab.rsIp(k) };
  }
  return { lab: new NatLab({ prefix, servers: 2, backend: "raw", rsRoute: mode === "nat" }), rs: rsIp };
}

for (const mode of ["nat", "fullnat", "dr", "tun"] as const) {
  describe.skipIf(!ok)(`LVS-${mode.toUpperCase()} through lvsd on zero-copy AF_PACKET`, () => {
    const prefix = `ap${mode.slice(0, 2)}${process.pid % 10000}`;
    const { lab, rs } = makeLab(mode, prefix);
    const must = (...args: string[]) => {
      const r = lab.lvsadm(...args);
      expect(r.stderr, `lvsadm ${args.join(" ")}`).toBe("");
      expect(r.code).toBe(0);
      return r.stdout;
    };
    const routed = mode === "dr" || mode === "tun";

    beforeAll(async () => {
      await lab.up();
      must("-A", "-t", `${VIP}:80`, "-s", "rr");
      if (mode === "fullnat") must("--add-laddr", "-t", `${VIP}:80`, "-z", LADDR);
      for (let k = 1; k <= 2; k++)
        must("-a", "-t", `${VIP}:80`, "-r", routed ? rs(k) : `${rs(k)}:80`, FLAG[mode]);
    }, 60_000);
    afterAll(() => lab.down());

    it("balances HTTP with rr and moves 10 MB each way byte for byte", () => {
      const answers = Array.from({ length: 4 }, () => lab.get(`http://${VIP}/`).trim());
      expect(answers).toEqual(["rs2", "rs1", "rs2", "rs1"]);
      const want = createHash("sha256").update(pattern(BIG)).digest("hex");
      const down = lab.client(
        "sh",
        ["-c", `curl -s -m 60 http://${VIP}/bytes/${BIG} | sha256sum`],
        undefined,
        90_000,
      );
      expect(down.stdout.split(" ")[0]).toBe(want);
      const f = `/tmp/${prefix}.up`;
      const up = lab.client(
        "sh",
        [
          "-c",
          `head -c ${BIG} /dev/urandom > ${f} && sha256sum < ${f} && curl -s -m 60 --data-binary @${f} http://${VIP}/sha256; rm -f ${f}`,
        ],
        undefined,
        90_000,
      );
      const [local, remote] = up.stdout.trim().split("\n");
      expect(remote).toBe(local?.split(" ")[0]);
      const stats = must("-Ln", "--stats", "--exact");
      const m = /TCP {2}10\.0\.0\.100:80 +\d+ +(\d+) +(\d+)/.exec(stats);
      expect(Number(m?.[1])).toBeGreaterThan(7000); // 10 MB up in ≤ 1500-byte frames
      if (routed) expect(Number(m?.[2])).toBe(0);
      else expect(Number(m?.[2])).toBeGreaterThan(7000);
    });

    if (mode === "nat") {
      it.skipIf(nftPath() === undefined)(
        "keeps the director namespace's own stack away from the frames (kernel=drop), until lvsd ends",
        async () => {
          const t = lab.topo;
          const table = kernelDropTable(t.dev("x0"));
          expect(t.exec("d", "nft", ["list", "table", "netdev", table]).stdout).toContain("policy drop");
          // the namespace's IPv4 receive counter (/proc/net/snmp, Ip: InReceives)
          const inReceives = (): number => {
            const lines = t.exec("d", "cat", ["/proc/net/snmp"]).stdout.split("\n");
            const names = lines.find((l) => l.startsWith("Ip: Forwarding"))!.split(/\s+/);
            const values = lines.filter((l) => l.startsWith("Ip: "))[1]!.split(/\s+/);
            return Number(values[names.indexOf("InReceives")]);
          };
          const before = inReceives();
          const r = lab.client(
            "sh",
            ["-c", `curl -s -m 60 http://${VIP}/bytes/${BIG} | wc -c`],
            undefined,
            90_000,
          );
          expect(Number(r.stdout.trim())).toBe(BIG);
          // lvsd forwarded thousands of frames through x0/x1; the host's stack saw none of them
          expect(inReceives() - before).toBeLessThan(50);
          await lab.stopLvsd();
          expect(t.exec("d", "nft", ["list", "table", "netdev", table]).code).not.toBe(0);
        },
        120_000,
      );
    }

    if (mode === "fullnat") {
      it.skipIf(!withNginx)("inserts a PROXY protocol v2 header in the frame's ring tail room", async () => {
        const dir = `/tmp/${prefix}-ngx`;
        lab.topo.spawn("r1", "nginx", [
          "-c",
          nginxConf({ dir, name: "ngx1", proxyPort: 8081 }),
          "-g",
          "daemon off;",
        ]);
        await new Promise((r) => setTimeout(r, 500));
        must("-A", "-t", `${VIP}:8081`, "-s", "rr", "--proxy-protocol", "v2");
        must("--add-laddr", "-t", `${VIP}:8081`, "-z", LADDR);
        must("-a", "-t", `${VIP}:8081`, "-r", `${rsIp(1)}:8081`, "--fullnat");
        expect(lab.get(`http://${VIP}:8081/`).trim()).toMatch(/^ngx1 10\.0\.0\.7:\d+$/);
      });
    }
  });
}
