/**
 * `lvsd --workers N` with `xdp=` links binds queue i in worker i (docs/workers.md): an interface
 * with fewer than N receive queues is refused at start with its name and how to give it more,
 * and no XDP program is left on it. Runs lvsd in a namespace of its own; needs root and the
 * native addon (skipped otherwise).
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { defaultWorkerUrl } from "../../../src/control/workers.js";
import { nativeAvailable } from "../../../src/datapath/io/native.js";
import { LVSD } from "../../../src/tools/lab/labbase.js";
import { canUseNetns, Topology } from "../../../src/tools/lab/netns.js";

const ok = canUseNetns() && nativeAvailable() && existsSync(fileURLToPath(defaultWorkerUrl()));
if (!ok)
  console.warn(
    "skipping lvsd --workers on xdp= tests: needs root, the native addon and dist/ (npm run build)",
  );

describe.skipIf(!ok)("lvsd --workers 2 --link xdp=...", () => {
  const t = new Topology(`wq${process.pid % 100000}`);
  afterAll(() => t.destroy());

  it("refuses an interface with one receive queue, naming it, and leaves no XDP program on it", () => {
    t.addNs("d");
    const a = t.dev("a");
    const b = t.dev("b");
    t.exec("d", "ip", ["link", "add", a, "type", "veth", "peer", "name", b]);
    t.exec("d", "ip", ["link", "set", a, "up"]);
    t.exec("d", "ip", ["link", "set", b, "up"]);
    const r = t.exec(
      "d",
      process.execPath,
      [LVSD, "--workers", "2", "--link", `xdp=${a},addr=10.0.0.1/24`, "--control", `/tmp/${t.prefix}.sock`],
      undefined,
      20_000,
    );
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`${a} has 1 receive queue(s) and each worker binds one`);
    expect(r.stderr).toContain("numrxqueues/numtxqueues 2");
    expect(t.exec("d", "ip", ["link", "show", a]).stdout).not.toMatch(/xdp/);
  });
});
