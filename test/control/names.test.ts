/**
 * Host names in listings without -n (src/control/names.ts): lvsd looks up the addresses a
 * listing prints (getnameinfo: /etc/hosts here, where 127.0.0.1 is localhost) before sending it,
 * with its event loop free and for at most a second; -n prints numbers, an address without a name
 * prints as a number, and a resolver that never answers delays the listing by the budget only.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { EngineControl } from "../../src/control/adapter.js";
import { run } from "../../src/control/commands.js";
import { HostNames, LOOKUP_BUDGET_MS } from "../../src/control/names.js";
import { type ControlServer, startControlServer } from "../../src/control/server.js";
import { Engine } from "../../src/datapath/engine.js";
import { ipToU32 } from "../../src/lib/addr.js";
import { IPPROTO_TCP } from "../../src/lib/proto.js";
import { FwdMethod } from "../../src/tables/model.js";
import { sendRequest } from "../../src/tools/cli/lvsadm.js";

function target(): EngineControl {
  const e = new Engine({ maxConns: 1024 });
  const key = { proto: IPPROTO_TCP, addr: ipToU32("127.0.0.1"), port: 80 };
  e.table.addService(key, { sched: "rr", flags: 0, timeout: 0, netmask: 0xffffffff });
  for (const a of ["127.0.0.1", "192.0.2.1"])
    e.table.addDest(key, {
      addr: ipToU32(a),
      port: 80,
      weight: 1,
      fwd: FwdMethod.MASQ,
      uThreshold: 0,
      lThreshold: 0,
    });
  return new EngineControl(e);
}

describe("host names in listings", () => {
  let dir: string;
  let server: ControlServer | undefined;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "lvs-names-"));
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it("-L prints the names the system resolver gives; -Ln and unnamed addresses print numbers", async () => {
    const path = join(dir, "c.sock");
    const t = target();
    server = await startControlServer(path, t, { hostNames: new HostNames() });
    const named = await sendRequest(path, { argv: ["-L"], stream: true });
    expect(named.code).toBe(0);
    expect(named.stdout).toContain("TCP  localhost:http rr\n");
    expect(named.stdout).toMatch(/ {2}-> localhost:http +Masq/);
    expect(named.stdout).toMatch(/ {2}-> 192\.0\.2\.1:http +Masq/);
    const numeric = await sendRequest(path, { argv: ["-Ln"], stream: true });
    expect(numeric.stdout).toContain("TCP  127.0.0.1:80 rr\n");
    expect(numeric.stdout).not.toContain("localhost");
    // the same listing without a resolver (run() in process) prints numbers, as before
    expect(run(["-L"], t).stdout).toContain("TCP  127.0.0.1:http rr\n");
  });

  it("a resolver that does not answer delays a listing by the budget, not more; numbers are printed", async () => {
    const path = join(dir, "c.sock");
    const stuck = new HostNames(() => new Promise<string | undefined>(() => {}));
    server = await startControlServer(path, target(), { hostNames: stuck });
    const t0 = Date.now();
    const r = await sendRequest(path, { argv: ["-L"], stream: true });
    const took = Date.now() - t0;
    expect(r.stdout).toContain("TCP  127.0.0.1:http rr\n");
    expect(took).toBeGreaterThanOrEqual(LOOKUP_BUDGET_MS - 50);
    expect(took).toBeLessThan(LOOKUP_BUDGET_MS * 10); // a bound, not a timing: it ends
  });

  it("keeps answers: a second listing needs no lookup", async () => {
    let lookups = 0;
    const names = new HostNames(async (a) => {
      lookups++;
      return a === "127.0.0.1" ? "lo.example.test" : undefined;
    });
    await names.resolve([ipToU32("127.0.0.1"), ipToU32("192.0.2.1"), ipToU32("127.0.0.1")]);
    expect(lookups).toBe(2);
    await names.resolve([ipToU32("127.0.0.1"), ipToU32("192.0.2.1")]);
    expect(lookups).toBe(2);
    expect(names.hostOf(ipToU32("127.0.0.1"))).toBe("lo.example.test");
    expect(names.hostOf(ipToU32("192.0.2.1"))).toBeUndefined();
  });
});
