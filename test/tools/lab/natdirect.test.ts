/**
 * LVS-DR and LVS-TUN on the NAT lab's topology (NatLab realServers "dr" / "tun"), as the
 * end-to-end bench measures them: the same namespaces, bridges and lvsd links as LVS-NAT, no
 * router; the real servers prepared by lvs-realserver answer the client straight over their leg
 * on its segment. Needs root; skipped with a message otherwise.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nativeAvailable } from "../../../src/datapath/io/native.js";
import { CLIENT_IP, NatLab, rsIp, rsOutside, VIP } from "../../../src/tools/lab/natlab.js";
import { canUseNetns } from "../../../src/tools/lab/netns.js";
import { pattern } from "../../../src/tools/lab/peer.js";
import { REALSERVER } from "../../../src/tools/lab/routedlab.js";
import { haveTools, skipWithout } from "../../support/tools.js";

const privileged = canUseNetns() && nativeAvailable() && existsSync(REALSERVER);
if (!privileged)
  console.warn(
    "skipping DR/TUN-on-the-NAT-topology tests: needs root, the ip tool, the native addon and bin/lvs-realserver",
  );
const ok = privileged && haveTools("DR/TUN-on-the-NAT-topology tests", "curl");

const BIG = 4 * 1024 * 1024;

for (const mode of ["dr", "tun"] as const) {
  describe.skipIf(!ok)(`LVS-${mode.toUpperCase()} on the NAT lab topology`, () => {
    const lab = new NatLab({ prefix: `nd${mode[0]}${process.pid % 10000}`, servers: 2, realServers: mode });
    const flag = mode === "dr" ? "-g" : "-i";
    const must = (...args: string[]) => {
      const r = lab.lvsadm(...args);
      expect(r.stderr, `lvsadm ${args.join(" ")}`).toBe("");
      expect(r.code).toBe(0);
      return r.stdout;
    };

    beforeAll(async () => {
      await lab.up();
      must("-A", "-t", `${VIP}:80`, "-s", "rr");
      for (let k = 1; k <= 2; k++) must("-a", "-t", `${VIP}:80`, "-r", rsIp(k), flag);
    }, 60_000);
    afterAll(() => lab.down());

    it("answers HTTP in turn, the replies bypassing the director", () => {
      const answers = Array.from({ length: 4 }, () => lab.get(`http://${VIP}/`).trim());
      expect(answers).toEqual(["rs2", "rs1", "rs2", "rs1"]);
      const stats = must("-Ln", "--stats", "--exact");
      const m = /TCP {2}10\.0\.0\.100:80 +\d+ +(\d+) +(\d+)/.exec(stats);
      expect(Number(m?.[1])).toBeGreaterThan(0);
      expect(Number(m?.[2])).toBe(0); // no reply packet went through lvsd
      expect(must("-Ln")).toMatch(
        new RegExp(`-> ${rsIp(1).replaceAll(".", "\\.")}:80 +${mode === "dr" ? "Route" : "Tunnel"} `),
      );
      // the real server reaches the client on its own leg, not via the director
      const route = lab.topo.exec("r1", "ip", ["route", "get", CLIENT_IP, "from", VIP]).stdout;
      expect(route).toContain(`dev ${lab.topo.dev("r1o")}`);
      expect(lab.topo.exec("r1", "ip", ["-4", "addr", "show", "dev", lab.topo.dev("r1o")]).stdout).toContain(
        `${rsOutside(1)}/24`,
      );
    });

    it(`moves ${BIG / 1024 / 1024} MB down byte for byte`, () => {
      const want = createHash("sha256").update(pattern(BIG)).digest("hex");
      const down = lab.client(
        "sh",
        ["-c", `curl -s -m 60 http://${VIP}/bytes/${BIG} | sha256sum`],
        undefined,
        90_000,
      );
      expect(down.stdout.split(" ")[0]).toBe(want);
    });

    it("the real servers never answer ARP for the VIP on the client's segment", (ctx) => {
      skipWithout(ctx, "arping");
      const rsMacs = [1, 2].map(
        (k) =>
          /link\/ether ([0-9a-f:]{17})/.exec(
            lab.topo.exec(`r${k}`, "ip", ["link", "show", lab.topo.dev(`r${k}o`)]).stdout,
          )?.[1],
      );
      expect(rsMacs.every((m) => m !== undefined)).toBe(true);
      const r = lab.client("arping", ["-c", "3", "-w", "4", "-I", lab.topo.dev("ca"), VIP]);
      const replies = [...r.stdout.matchAll(/reply from 10\.0\.0\.100 \[([0-9A-Fa-f:]{17})\]/g)].map((m) =>
        m[1]!.toLowerCase(),
      );
      expect(replies.length).toBeGreaterThan(0);
      for (const mac of replies) expect(rsMacs).not.toContain(mac);
    });
  });
}
