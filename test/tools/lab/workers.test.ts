/**
 * lvsd --workers N on AF_PACKET and on AF_XDP (docs/workers.md): every forwarding mode, with
 * 1 and with 2 data-path worker threads. On AF_PACKET each worker has a socket per link in a
 * fanout group steered by the classic BPF program of src/datapath/workers/steer.ts; on AF_XDP
 * worker i binds queue i of each (2-queue) veth behind one XDP program and hands the frames
 * another worker owns over to it (src/datapath/workers/handoff.ts). NAT, FULLNAT, DR and TUN in the
 * NAT lab's topology (DR and TUN real servers prepared by lvs-realserver); each moves 4 MB each
 * way byte for byte, then 16 short connections (16 client ports) all answered; with 2 workers
 * both workers' sockets received frames on the client side (`lvsadm --links`, one row per link
 * and worker) and the summed counters in `lvsadm -Ln --stats` add up.
 * Needs root; skipped with a message otherwise.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultWorkerUrl } from "../../../src/control/workers.js";
import { nativeAvailable } from "../../../src/datapath/io/native.js";
import { NatLab, rsIp, VIP } from "../../../src/tools/lab/natlab.js";
import { canUseNetns, waitFor } from "../../../src/tools/lab/netns.js";
import { pattern } from "../../../src/tools/lab/peer.js";
import { REALSERVER } from "../../../src/tools/lab/routedlab.js";
import { haveTools } from "../../support/tools.js";

const privileged =
  canUseNetns() &&
  nativeAvailable() &&
  existsSync(REALSERVER) &&
  existsSync(fileURLToPath(defaultWorkerUrl()));
if (!privileged)
  console.warn(
    "skipping lvsd --workers tests: needs root, the ip tool, the native addon, bin/lvs-realserver and dist/ (npm run build)",
  );
const ok = privileged && haveTools("lvsd --workers tests", "curl");

const BIG = 4 * 1024 * 1024;
const LADDR = "192.168.10.200";

type Mode = "nat" | "fullnat" | "dr" | "tun";
const FLAG: Record<Mode, string> = { nat: "-m", fullnat: "--fullnat", dr: "-g", tun: "-i" };

for (const backend of ["raw", "xdp"] as const)
  for (const workers of [1, 2]) {
    for (const mode of ["nat", "fullnat", "dr", "tun"] as const) {
      const on = backend === "raw" ? "AF_PACKET" : "AF_XDP";
      describe.skipIf(!ok)(`LVS-${mode.toUpperCase()} through lvsd --workers ${workers} on ${on}`, () => {
        const prefix = `w${backend[0]}${workers}${mode[0]}${process.pid % 10000}`;
        const routed = mode === "dr" || mode === "tun";
        const lab = new NatLab({
          prefix,
          servers: 2,
          backend,
          // AF_XDP: worker i binds queue i of each veth
          queues: backend === "xdp" ? workers : 1,
          rsRoute: mode === "nat",
          realServers: mode === "fullnat" ? "nat" : mode,
          lvsdArgs: ["--workers", String(workers), "--http", "127.0.0.1:19101"],
        });
        const must = (...args: string[]) => {
          const r = lab.lvsadm(...args);
          expect(r.stderr, `lvsadm ${args.join(" ")}`).toBe("");
          expect(r.code).toBe(0);
          return r.stdout;
        };

        beforeAll(async () => {
          await lab.up();
          must("-A", "-t", `${VIP}:80`, "-s", "rr");
          if (mode === "fullnat") must("--add-laddr", "-t", `${VIP}:80`, "-z", LADDR);
          for (let k = 1; k <= 2; k++)
            must("-a", "-t", `${VIP}:80`, "-r", routed ? rsIp(k) : `${rsIp(k)}:80`, FLAG[mode]);
        }, 60_000);
        afterAll(() => lab.down());

        it("moves 4 MB each way byte for byte, answers 16 connections, on every worker", async () => {
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
          const answers = Array.from({ length: 16 }, () => lab.get(`http://${VIP}/`).trim());
          for (const a of answers) expect(a).toMatch(/^rs[12]$/);
          expect(new Set(answers).size).toBe(2);
          // counters are published every 50 ms and summed when lvsadm asks
          await new Promise((r) => setTimeout(r, 300));
          const stats = must("-Ln", "--stats", "--exact");
          const m = /TCP {2}10\.0\.0\.100:80 +(\d+) +(\d+) +(\d+)/.exec(stats);
          expect(Number(m?.[1])).toBe(18); // connections: 2 transfers and 16 requests
          expect(Number(m?.[2])).toBeGreaterThan(2800); // 4 MB up in ≤ 1500-byte frames
          if (routed) expect(Number(m?.[3])).toBe(0);
          else expect(Number(m?.[3])).toBeGreaterThan(2800);
          // lvsadm -Lc lists the workers' connection tables: the 18 connections, all to the VIP
          const lc = must("-Lnc")
            .split("\n")
            .filter((l) => l.includes(`${VIP}:80`));
          expect(lc.length).toBe(18);
          // the metrics count the workers' entries too (lvsd --http, inside the director's namespace)
          const metrics = lab.topo.exec("d", "curl", [
            "-s",
            "-m",
            "5",
            "http://127.0.0.1:19101/metrics",
          ]).stdout;
          expect(/^lvs_conntrack_entries (\d+)$/m.exec(metrics)?.[1]).toBe("18");
          expect(/^lvs_conntrack_entries_limit (\d+)$/m.exec(metrics)?.[1]).toBe(String(1 << 20));
          // one row per link and worker; every worker received frames from the clients' side
          const links = must("--links");
          const all = links
            .split("\n")
            .map((l) => /^(\S+):w(\d+) +\S+ +(\d+) +\d+ +(\d+) +(\d+)/.exec(l))
            .filter((x): x is RegExpExecArray => x !== null);
          const rows = all.filter((r) => r[1] !== "handoff");
          expect(rows.length).toBe(2 * workers);
          const clientSide = rows.filter((r) => r[1]!.endsWith("x0"));
          expect(clientSide.length).toBe(workers);
          for (const r of clientSide) expect(Number(r[3])).toBeGreaterThan(10);
          // AF_XDP with 2 workers: a frame's queue is the veth's flow hash, its worker lvsd's
          // steering; what arrived at the other worker's queue was handed over, none lost
          const handoff = all.filter((r) => r[1] === "handoff");
          if (backend === "xdp" && workers === 2) {
            expect(handoff.length).toBe(2);
            // columns: RxPkts (taken from the others), RxDrop (refused: ring full), TxPkts (handed
            // over); each worker publishes its own side (a late segment may be counted by one
            // before the other): read again until the two sides agree
            const rowsNow = () =>
              must("--links")
                .split("\n")
                .map((l) => /^handoff:w(\d+) +\S+ +(\d+) +\d+ +(\d+) +(\d+)/.exec(l))
                .filter((x): x is RegExpExecArray => x !== null);
            const sum = (rs: RegExpExecArray[], k: number) => rs.reduce((a, r) => a + Number(r[k]), 0);
            let h = rowsNow();
            await waitFor(
              "the handoff counts of both workers to agree",
              () => {
                h = rowsNow();
                return sum(h, 2) === sum(h, 4);
              },
              5000,
            );
            expect(sum(h, 4)).toBeGreaterThan(0);
            expect(sum(h, 2)).toBe(sum(h, 4));
            expect(sum(h, 3)).toBe(0);
          } else expect(handoff.length).toBe(0);
        }, 180_000);

        it("refuses connection sync and packet traces (their frames would be the workers')", () => {
          const sync = lab.lvsadm("--start-daemon", "master", "--mcast-interface", "x0");
          expect(sync.code).not.toBe(0);
          expect(sync.stderr).toMatch(/runs no connection sync/);
          const trace = lab.lvsadm("--trace", `/tmp/${prefix}.pcapng`, "--count", "1");
          expect(trace.code).not.toBe(0);
          expect(trace.stderr).toMatch(/cannot trace packets/);
        });
      });
    }
  }
