/**
 * LVS-DR and LVS-TUN end to end in the tutorial topologies (src/tools/lab/routedlab.ts): the client
 * behind a router, real servers prepared by lvs-realserver, replies going straight back to the
 * client. Needs root; skipped with a message otherwise.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nativeAvailable } from "../../../src/datapath/io/native.js";
import { VIP } from "../../../src/tools/lab/natlab.js";
import { canUseNetns } from "../../../src/tools/lab/netns.js";
import { pattern } from "../../../src/tools/lab/peer.js";
import { REALSERVER, RoutedLab } from "../../../src/tools/lab/routedlab.js";
import { haveTools, skipWithout } from "../../support/tools.js";

const privileged = canUseNetns() && nativeAvailable() && existsSync(REALSERVER);
if (!privileged)
  console.warn(
    "skipping DR/TUN namespace tests: needs root, the ip tool, the native addon and bin/lvs-realserver",
  );
const ok = privileged && haveTools("DR/TUN namespace tests", "curl"); // the client's requests

const BIG = 10 * 1024 * 1024;

for (const mode of ["dr", "tun"] as const) {
  describe.skipIf(!ok)(`LVS-${mode.toUpperCase()} through lvsd`, () => {
    const lab = new RoutedLab({
      prefix: `${mode}${process.pid % 100000}`,
      mode,
      rsLinkMtu: mode === "tun" ? 1400 : 1500,
    });
    const must = (...args: string[]) => {
      const r = lab.lvsadm(...args);
      expect(r.stderr, `lvsadm ${args.join(" ")}`).toBe("");
      expect(r.code).toBe(0);
      return r.stdout;
    };
    const flag = mode === "dr" ? "-g" : "-i";

    beforeAll(async () => {
      await lab.up();
      must("-A", "-t", `${VIP}:80`, "-s", "rr");
      for (let k = 1; k <= 2; k++) must("-a", "-t", `${VIP}:80`, "-r", lab.rsIp(k), flag);
    }, 60_000);
    afterAll(() => lab.down());

    it("answers HTTP in turn through the router, replies bypassing the director", () => {
      const answers = Array.from({ length: 4 }, () => lab.get(`http://${VIP}/`).trim());
      expect(answers).toEqual(["rs2", "rs1", "rs2", "rs1"]);
      const stats = must("-Ln", "--stats", "--exact");
      const out = /TCP {2}10\.0\.0\.100:80 +\d+ +(\d+) +(\d+)/.exec(stats);
      expect(Number(out?.[1])).toBeGreaterThan(0);
      expect(Number(out?.[2])).toBe(0); // no reply packet went through lvsd
      expect(must("-Ln")).toMatch(
        new RegExp(`-> ${lab.rsIp(1).replaceAll(".", "\\.")}:80 +${mode === "dr" ? "Route" : "Tunnel"} `),
      );
    });

    it("shows the input-only connection states", () => {
      const conns = must("-Lnc");
      // after the client's FIN the input-only table goes to FIN_WAIT, then the last ACK keeps it there or TIME_WAIT
      expect(conns).toMatch(
        /TCP \d\d:\d\d {2}(FIN_WAIT|TIME_WAIT|CLOSE) +10\.0\.1\.7:\d+ +10\.0\.0\.100:80 /,
      );
    });

    it("moves 10 MB each way byte for byte", () => {
      const want = createHash("sha256").update(pattern(BIG)).digest("hex");
      const down = lab.client(
        "sh",
        ["-c", `curl -s -m 60 http://${VIP}/bytes/${BIG} | sha256sum`],
        undefined,
        90_000,
      );
      expect(down.stdout.split(" ")[0]).toBe(want);
      const f = `/tmp/${lab.topo.prefix}.up`;
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
    });

    it("answers UDP", (ctx) => {
      skipWithout(ctx, "socat");
      must("-A", "-u", `${VIP}:53`, "-s", "rr");
      must("-a", "-u", `${VIP}:53`, "-r", lab.rsIp(1), flag);
      const r = lab.client("sh", ["-c", `printf hi | socat -t 2 - UDP4:${VIP}:53`]);
      expect(r.stdout).toBe("rs1:hi");
    });

    if (mode === "dr") {
      it("the real servers never answer ARP for the VIP", (ctx) => {
        skipWithout(ctx, "arping");
        const rsMacs = [1, 2].map(
          (k) =>
            /link\/ether ([0-9a-f:]{17})/.exec(
              lab.topo.exec(`r${k}`, "ip", ["link", "show", lab.topo.dev(`r${k}a`)]).stdout,
            )?.[1],
        );
        expect(rsMacs.every((m) => m !== undefined)).toBe(true);
        // ask for the VIP on the segment: every answer must come from the director
        const r = lab.topo.exec("rt", "arping", ["-c", "3", "-w", "4", "-I", lab.topo.dev("ra"), VIP]);
        const replies = [...r.stdout.matchAll(/reply from 10\.0\.0\.100 \[([0-9A-Fa-f:]{17})\]/g)].map((m) =>
          m[1]!.toLowerCase(),
        );
        expect(replies.length).toBeGreaterThan(0);
        for (const mac of replies) expect(rsMacs).not.toContain(mac);
        // and the real servers do hold the VIP (on lo), so they accept what the director sends them
        for (let k = 1; k <= 2; k++) {
          expect(lab.topo.exec(`r${k}`, "ip", ["-4", "addr", "show", "dev", "lo"]).stdout).toContain(
            `${VIP}/32`,
          );
        }
      });
    } else {
      it("takes the fragmentation-needed path when the real servers' link has a smaller MTU", () => {
        // The 10 MB upload above needed it: the router's 1400-byte leg sent fragmentation-needed
        // for our 1520-byte tunnel packets, and lvsd told the client (MTU 1380).
        const pmtu = lab.client("ip", ["route", "get", VIP]).stdout;
        expect(pmtu).toMatch(/mtu 13[0-9]{2}/);
        expect(Number(/mtu (\d+)/.exec(pmtu)?.[1])).toBeLessThanOrEqual(1380);
      });
    }

    it("round-trips the table through -S, -C and -R", () => {
      const saved = must("-Sn");
      expect(saved).toContain(`-a -t ${VIP}:80 -r ${lab.rsIp(1)}:80 ${flag} -w 1`);
      must("-C");
      expect(lab.lvsadmIn(saved, "-R").code).toBe(0);
      expect(must("-Sn")).toBe(saved);
      expect(lab.get(`http://${VIP}/`).trim()).toMatch(/^rs[12]$/);
    });
  });
}
