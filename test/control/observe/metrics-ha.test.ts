/**
 * The HA families of GET /metrics (src/control/observe/metrics.ts): lvs_vrrp_* read from a VRRP
 * manager that took part in a real election on a simulated wire (test/control/vrrp/harness.ts),
 * and lvs_sync_* read from sync daemons that exchanged a message through two engines; values
 * asserted against what happened, and promtool's lint when the tool is there.
 */
import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ObservedDaemon } from "../../../src/control/observe/daemon.js";
import type { EventLog } from "../../../src/control/observe/log.js";
import { metricsRegistry } from "../../../src/control/observe/metrics.js";
import { SyncDaemon } from "../../../src/control/sync/daemon.js";
import type { Engine } from "../../../src/datapath/engine.js";
import { eth } from "../../../src/datapath/packet/build.js";
import {
  addNatDest,
  addService,
  IP,
  MAC,
  natEngine,
  OUT,
  run,
  udpKey,
} from "../../datapath/engine/helpers.js";
import { haveTools } from "../../support/tools.js";
import { Node, Wire } from "../vrrp/harness.js";
import { parseExposition, sampleValue } from "./exposition.js";
import { type Rig, trafficRig } from "./metrics-rig.js";

const quiet = { info() {}, warn() {}, error() {}, debug() {} } as unknown as EventLog;

const conf = (prio: number): string => `vrrp_instance VI_1 {
  interface eth0
  virtual_router_id 51
  priority ${prio}
  advert_int 1
  virtual_ipaddress {
    10.0.0.100/24
  }
}
`;

function syncSide(): { e: Engine; d: SyncDaemon; sent: Uint8Array[] } {
  const e = natEngine();
  addService(e, udpKey(), "rr");
  addNatDest(e, udpKey(), IP.rs1, 53);
  const sent: Uint8Array[] = [];
  const d = new SyncDaemon({
    engine: e,
    linkNames: ["out0", "in0"],
    flush: () => {
      for (let j = 0; j < e.tx.count; j++) sent.push(e.tx.frame(j));
      e.tx.reset();
    },
    now: () => 0,
    log: quiet,
    timers: { every: () => 0, cancel: () => {} },
    defer: (fn) => fn(),
  });
  return { e, d, sent };
}

describe("GET /metrics: VRRP and connection sync", () => {
  let rig: Rig;
  let text: string;
  let masterText: string;

  beforeAll(async () => {
    rig = await trafficRig();
    const wire = new Wire();
    const a = new Node(wire, "a", 1, conf(150));
    const b = new Node(wire, "b", 2, conf(100));
    a.vrrp.start();
    b.vrrp.start();
    await wire.advance(6000);
    expect([a.state("VI_1"), b.state("VI_1")]).toEqual(["MASTER", "BACKUP"]);

    const m = syncSide();
    const bk = syncSide();
    m.d.start("master", { mcastIfn: "out0", syncid: 3 });
    bk.d.start("backup", { mcastIfn: "out0", syncid: 3 });
    for (let k = 0; k < 3; k++) {
      const f = eth({ src: MAC.client, dst: MAC.dirOut })
        .ipv4({ src: IP.client, dst: IP.vip })
        .udp({ sport: 5000, dport: 53 })
        .payload("q")
        .build();
      run(m.e, f, OUT);
    }
    m.d.sendReady(true);
    for (const f of m.sent) run(bk.e, f, OUT);
    // a forged message with a bad UDP checksum: counted as a drop
    const bad = m.sent[0]!.slice();
    bad[bad.length - 1]! ^= 1;
    run(bk.e, bad, OUT);

    const observed = (vrrp: Node, sync: SyncDaemon): ObservedDaemon => ({
      ...rig.observed,
      vrrp: vrrp.vrrp,
      sync,
    });
    text = await metricsRegistry(observed(b, bk.d)).metrics();
    masterText = await metricsRegistry(observed(a, m.d)).metrics();
  });
  afterAll(() => rig.observed.health.stop());

  it("lvs_vrrp_state is 1 for the instance's state only; priority, adverts and transitions", () => {
    const fb = parseExposition(text);
    const fa = parseExposition(masterText);
    const l = { instance: "VI_1", vrid: "51", interface: "eth0" };
    for (const s of ["INIT", "BACKUP", "MASTER", "FAULT"]) {
      expect(sampleValue(fa, "lvs_vrrp_state", { ...l, state: s })).toBe(s === "MASTER" ? 1 : 0);
      expect(sampleValue(fb, "lvs_vrrp_state", { ...l, state: s })).toBe(s === "BACKUP" ? 1 : 0);
    }
    expect(fa.get("lvs_vrrp_state")?.type).toBe("gauge");
    expect(sampleValue(fa, "lvs_vrrp_priority", l)).toBe(150);
    expect(sampleValue(fb, "lvs_vrrp_priority", l)).toBe(100);
    expect(sampleValue(fa, "lvs_vrrp_become_master_total", l)).toBe(1);
    expect(sampleValue(fb, "lvs_vrrp_become_master_total", l)).toBe(0);
    const sent = sampleValue(fa, "lvs_vrrp_adverts_sent_total", l);
    expect(sent).toBeGreaterThanOrEqual(2);
    // every advert the master sent reached the backup (one simulated wire)
    expect(sampleValue(fb, "lvs_vrrp_adverts_received_total", l)).toBe(sent);
    expect(fa.get("lvs_vrrp_adverts_sent_total")?.type).toBe("counter");
  });

  it("lvs_sync_*: what the master sent and the backup applied, drops by reason", () => {
    const fm = parseExposition(masterText);
    const fb = parseExposition(text);
    expect(sampleValue(fm, "lvs_sync_daemon_running", { state: "master" })).toBe(1);
    expect(sampleValue(fm, "lvs_sync_daemon_running", { state: "backup" })).toBe(0);
    expect(sampleValue(fb, "lvs_sync_daemon_running", { state: "backup" })).toBe(1);
    expect(sampleValue(fm, "lvs_sync_sent_messages_total")).toBe(1);
    expect(sampleValue(fm, "lvs_sync_sent_entries_total")).toBe(1);
    expect(sampleValue(fb, "lvs_sync_received_messages_total")).toBe(1);
    expect(sampleValue(fb, "lvs_sync_received_entries_total", { result: "created" })).toBe(1);
    expect(sampleValue(fb, "lvs_sync_received_entries_total", { result: "no_dest" })).toBe(0);
    expect(sampleValue(fb, "lvs_sync_drops_total", { reason: "bad_checksum" })).toBe(1);
  });

  it.skipIf(!haveTools("the promtool lint of the HA metrics", "promtool"))(
    "passes promtool check metrics (but for prom-client's own nodejs_active_* names)",
    () => {
      for (const t of [text, masterText]) {
        const check = spawnSync("promtool", ["check", "metrics"], { input: t, encoding: "utf8" });
        const problems = `${check.stdout}${check.stderr}`
          .split("\n")
          .filter(
            (l) => l !== "" && !/^nodejs_active_(handles|requests|resources)_total non-counter/.test(l),
          );
        expect(problems).toEqual([]);
        expect([0, 3]).toContain(check.status);
      }
    },
  );
});
