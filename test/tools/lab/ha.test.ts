/**
 * The failover lab (src/tools/lab/ha.ts) in a short run: two lvsd directors sharing the VIP by
 * VRRP (LVS-NAT killed, LVS-DR killed with a persistent service, FULLNAT stopped with SIGTERM,
 * LVS-NAT with the SYN proxy killed: the sequence offsets travel by sync),
 * nginx real servers, a client with downloads, keep-alive loops and new
 * connections; the MASTER's lvsd is stopped in the middle, restarted, and preempts.
 *
 * Asserted: the BACKUP takes over within 3 × advert_int + Skew_Time + 100 ms of a SIGKILL
 * (Skew_Time + 100 ms of a SIGTERM: the priority-0 advert), the
 * VIP answers through it, the first director takes the VIP back; with connection sync from
 * keepalived's `lvs_sync_daemon` (lvsd logs sync.start and does not warn about the keyword), no
 * established connection was reset or broken and no byte was corrupted, across both switches.
 *
 * Needs root, ip, nginx, curl and the native addon (skipped with a note naming the Debian
 * package otherwise); runs the built lvsd and client (`npx tsc -p tsconfig.json` first).
 * Everything is inside namespaces named `ht<pid>-*`, removed afterwards, also on failure; the
 * client's load is bounded in count and time.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { nativeAvailable } from "../../../src/datapath/io/native.js";
import { type HaResult, runHaLab } from "../../../src/tools/lab/ha.js";
import { canUseNetns } from "../../../src/tools/lab/netns.js";
import { haveTools } from "../../support/tools.js";

const privileged = canUseNetns() && nativeAvailable();
if (!privileged)
  console.warn("skipping the failover lab test: needs root, the ip tool and the built native addon");
const ok = privileged && haveTools("the failover lab test", "ip", "ss", "nginx", "curl", "arping");

// NAT after a crash; DR after a crash with a persistent service; FULLNAT after a clean stop;
// NAT with the SYN proxy after a crash (every connection a splice with its own sequence offset).
describe.skipIf(!ok).each([
  ["nat", "SIGKILL", false, false],
  ["dr", "SIGKILL", true, false],
  ["fullnat", "SIGTERM", false, false],
  ["nat", "SIGKILL", false, true],
] as const)(
  "failover lab (lab ha, %s, %s, persistent %s, SYN proxy %s, short)",
  (mode, stopSignal, persistent, synProxy) => {
    const dir = mkdtempSync(join(tmpdir(), "lvs-ha-test-"));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const out: string[] = [];
    let r: HaResult | undefined;

    it("runs: kill the MASTER under load, takeover, failback", async () => {
      r = await runHaLab({
        prefix: `ht${process.pid % 10000}${mode[0]}${synProxy ? "s" : ""}`,
        mode,
        stopSignal,
        persistent,
        synProxy,
        withKeepalived: false,
        dir,
        downloads: 6,
        loops: 40,
        newPerSec: 10,
        loopIntervalMs: 50,
        fileBytes: 2 * 1024 * 1024,
        downloadSeconds: 18,
        beforeKillMs: 2000,
        afterTakeoverMs: 2000,
        afterFailbackMs: 1500,
        say: (s) => out.push(s),
      });
      const ctx = `\n${out.join("\n")}`;
      // the 6 downloads and 40 loops; a short "new" connection (10 a second) may be open too
      expect(r.establishedAtKill, ctx).toBeGreaterThanOrEqual(46);
      expect(r.establishedAtKill, ctx).toBeLessThanOrEqual(49);
      // takeover: the BACKUP's vrrp.transition to MASTER within 3 x advert_int + skew + 100 ms
      expect(r.takeoverMs, ctx).toBeDefined();
      expect(r.takeoverMs!, ctx).toBeGreaterThan(0);
      expect(r.takeoverMs!, ctx).toBeLessThanOrEqual(r.takeoverBoundMs);
      // the VIP answers through the new MASTER, whose MAC the client now has
      expect(r.vipAnswered, ctx).toBe(true);
      expect(r.vipAnswer, ctx).toMatch(/^rs[1-4]$/);
      expect(r.macBefore, ctx).toBe("02:00:00:00:01:01");
      expect(r.macAfter, ctx).toBe("02:00:00:00:02:01");
      // new connections opened after the kill are answered (by the new MASTER)
      expect(r.firstNewAfterKillMs, ctx).toBeDefined();
      // failback: director 1 preempts, director 2 is BACKUP again
      expect(r.failbackMs, ctx).toBeDefined();
      expect(r.backupAgain, ctx).toBe(true);
      // the client reported every connection it opened
      expect(r.opened.download, ctx).toBe(6);
      expect(r.opened.loop, ctx).toBe(40);
      expect(r.opened.new, ctx).toBeGreaterThan(50);
    }, 90_000);

    it("connection sync: loses no established connection and corrupts no byte", (tctx) => {
      if (r === undefined) tctx.skip("the lab did not run");
      const ctx = `\n${out.join("\n")}`;
      expect(r!.syncAccepted, ctx).toBe(true);
      // sync keeps up: the BACKUP's table has the MASTER's connections 200 ms later (at most one
      // caught between its SYN and the message that carries it)
      expect(r!.backupTable, ctx).toBeDefined();
      expect(r!.backupTable!.master, ctx).toBeGreaterThanOrEqual(46);
      expect(r!.backupTable!.missing, ctx).toBeLessThanOrEqual(1);
      expect(r!.resets, ctx).toEqual({ download: 0, loop: 0, new: 0 });
      expect(r!.broken.download, ctx).toBe(0);
      expect(r!.broken.loop, ctx).toBe(0);
      // a new connection can be lost only if the MASTER took it just before dying (not synced yet)
      expect(r!.broken.new, ctx).toBe(r!.brokenInSyncWindow);
      expect(r!.bytesCorrupted, ctx).toBe(0);
      expect(r!.checksumFailures, ctx).toBe(0);
      expect(r!.downloadedBytes, ctx).toBe(6 * 2 * 1024 * 1024);
      expect(r!.resumeMs, ctx).toBeDefined();
      if (persistent) expect(r!.servers, ctx).toHaveLength(1);
      if (synProxy) {
        // the connections were the SYN proxy's splices, and the BACKUP had their offsets by sync
        expect(r!.synProxy, ctx).toBeDefined();
        expect(r!.synProxy!.handshakesAtKill, ctx).toBeGreaterThanOrEqual(46);
        expect(r!.synProxy!.seqApplied, ctx).toBeGreaterThanOrEqual(46);
      }
      expect(r!.ok, ctx).toBe(true);
    });
  },
);
