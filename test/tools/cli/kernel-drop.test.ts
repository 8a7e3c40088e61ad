/**
 * `--link raw=IF,...,kernel=drop` on an interface that does not exist: lvsd refuses to start
 * with a clear message, and the ingress table it added first (kernels since 6.x let a netdev
 * chain name a device that is not there; older ones make nft refuse) is gone again. Runs lvsd in a namespace of its own; needs root and nft (skipped otherwise).
 */
import { afterAll, describe, expect, it } from "vitest";
import { kernelDropTable, nftPath } from "../../../src/control/kernel-ingress.js";
import { nativeAvailable } from "../../../src/datapath/io/native.js";
import { LVSD } from "../../../src/tools/lab/labbase.js";
import { canUseNetns, Topology } from "../../../src/tools/lab/netns.js";

const ok = canUseNetns() && nativeAvailable() && nftPath() !== undefined;
if (!ok)
  console.warn("skipping kernel=drop tests: needs root, the native addon and nft (Debian package nftables)");

describe("kernel=drop table names", () => {
  it("are nft identifiers for any interface name", () => {
    expect(kernelDropTable("eth0")).toBe("lvsd_kernel_drop_eth0");
    expect(kernelDropTable("br-out.10")).toBe("lvsd_kernel_drop_br_out_10");
  });
});

describe.skipIf(!ok)("lvsd --link raw=...,kernel=drop", () => {
  const t = new Topology(`kd${process.pid % 100000}`);
  afterAll(() => t.destroy());

  it("refuses a missing interface, naming it, and leaves no table behind", () => {
    t.addNs("d");
    const r = t.exec(
      "d",
      process.execPath,
      [LVSD, "--link", "raw=kdnosuch0,addr=10.0.0.1/24,kernel=drop", "--control", `/tmp/${t.prefix}.sock`],
      undefined,
      20_000,
    );
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/kdnosuch0: (nft refused|.*No such device)/);
    expect(t.exec("d", "nft", ["list", "tables"]).stdout).not.toContain("lvsd_kernel_drop");
  });
});
