/**
 * Huge-page advice for the connection table (issue 13 §6): the addon's adviseHugePages marks the
 * whole 2 MiB pages inside an array buffer MADV_HUGEPAGE (seen as "hg" mappings in
 * /proc/self/smaps), and a table's `buffers()` cover its lookup records and indexes.
 */
import { describe, expect, it } from "vitest";
import { ConnTable, type ConnTableOwner } from "../../../src/datapath/conntrack/table.js";
import { adviseHugePages, loadNative, nativeAvailable } from "../../../src/datapath/io/native.js";
import { hugeAdvisedMappings, thpSupported } from "../../support/hugepages.js";

const MiB = 1 << 20;
const owner: ConnTableOwner = { dests: [], services: [], releaseDestIfUnused: () => {} };
const ok = nativeAvailable() && thpSupported;
/** Buffers kept alive to the end: one freed by GC between two readings of smaps would skew them. */
const kept: ArrayBuffer[] = [];
if (!ok) console.warn("skipping huge-page advice tests: needs the native addon and a kernel with THP");

describe.skipIf(!ok)("huge-page advice", () => {
  it("advises exactly the whole 2 MiB pages inside a buffer", () => {
    const before = hugeAdvisedMappings();
    const buf = new ArrayBuffer(33 * MiB);
    kept.push(buf);
    const n = loadNative().adviseHugePages!(buf);
    // the buffer's ends share pages with other memory: 33 MiB holds 15 or 16 whole huge pages
    expect([30 * MiB, 32 * MiB]).toContain(n);
    const after = hugeAdvisedMappings();
    expect(after.reduce((a, b) => a + b, 0) - before.reduce((a, b) => a + b, 0)).toBe(n);
    // too small to hold a whole huge page: nothing advised
    expect(loadNative().adviseHugePages!(new ArrayBuffer(MiB))).toBe(0);
    expect(() => loadNative().adviseHugePages!(new Uint8Array(4) as unknown as ArrayBuffer)).toThrow(
      TypeError,
    );
  });

  it("covers a table's lookup records and indexes", () => {
    const t = new ConnTable(1 << 20, owner);
    const bufs = t.buffers();
    // every byte the table holds is in one of these buffers
    expect(bufs.reduce((a, b) => a + b.byteLength, 0)).toBe(t.byteSize());
    // records (64 MiB + 48 bytes), then the two 8 MiB indexes
    expect(bufs.slice(0, 3).map((b) => b.byteLength)).toEqual([64 * MiB + 48, 8 * MiB, 8 * MiB]);
    const before = hugeAdvisedMappings().reduce((a, b) => a + b, 0);
    const n = adviseHugePages(bufs);
    expect(n).toBeGreaterThanOrEqual(62 * MiB + 2 * 6 * MiB);
    expect(hugeAdvisedMappings().reduce((a, b) => a + b, 0) - before).toBe(n);
  });
});
