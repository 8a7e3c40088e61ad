/**
 * Runs every fixture table (README.md beside this file) through the Director with in-memory
 * links and a fake clock: each row is one test, in order, against the table's engine.
 *
 * LVS_FIXTURE_PCAP=<dir> writes each table's frames (inputs and outputs, in the order the links
 * saw them) to <dir>/<table>.pcap for tcpdump or Wireshark.
 */

import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parsePcap } from "../../../src/tools/schedbench/pcap.js";
import { drTable } from "./dr.fixtures.js";
import { dropsTable } from "./drops.fixtures.js";
import type { FixtureTable } from "./fixture.js";
import { fullnatTable } from "./fullnat.fixtures.js";
import { icmpTable } from "./icmp.fixtures.js";
import { natTable } from "./nat.fixtures.js";
import { asArray, assertRow, FixtureRun } from "./runner.js";
import { tunTable } from "./tun.fixtures.js";
import { vrrpTable } from "./vrrp.fixtures.js";

const TABLES: FixtureTable[] = [natTable, drTable, tunTable, fullnatTable, icmpTable, dropsTable, vrrpTable];
const PCAP_DIR = process.env.LVS_FIXTURE_PCAP;

for (const table of TABLES) {
  describe(`${table.name}: ${table.description}`, () => {
    let run: FixtureRun;
    beforeAll(() => {
      run = new FixtureRun(table);
    });
    afterAll(() => {
      if (PCAP_DIR === undefined || PCAP_DIR === "" || run === undefined) return;
      mkdirSync(PCAP_DIR, { recursive: true });
      run.pcap.writeFile(join(PCAP_DIR, `${table.name}.pcap`));
    });
    for (const row of table.rows) {
      // A known bug: the row states the right behaviour and must fail until the bug is fixed.
      const test = row.known !== undefined ? it.fails : it;
      const title =
        row.known !== undefined ? `${row.description} [known bug: ${row.known}]` : row.description;
      test(title, () => {
        assertRow(run, row, run.runRow(row));
      });
    }
  });
}

describe("fixture tables", () => {
  it("hold 40+ rows with unique descriptions per table", () => {
    let n = 0;
    for (const t of TABLES) {
      const seen = new Set<string>();
      for (const r of t.rows) {
        expect(seen.has(r.description), `${t.name}: duplicate row "${r.description}"`).toBe(false);
        seen.add(r.description);
      }
      n += t.rows.length;
    }
    expect(n).toBeGreaterThanOrEqual(40);
  });
});

describe("fixture tables as pcap", () => {
  it("writes the NAT table as a capture that tcpdump and our reader both read back", () => {
    const run = new FixtureRun(natTable);
    let expected = 0;
    for (const row of natTable.rows) {
      const got = run.runRow(row);
      if (row.known === undefined) assertRow(run, row, got);
      expected += asArray(row.input).length + got.sent.reduce((n, l) => n + l.length, 0);
    }
    expect(run.pcap.packets).toBe(expected);
    const dir = mkdtempSync(join(tmpdir(), "lvs-fixture-pcap-"));
    try {
      const file = join(dir, "nat.pcap");
      run.pcap.writeFile(file);
      const parsed = parsePcap(readFileSync(file), file);
      expect(parsed.stats.packets).toBe(expected);
      expect(parsed.stats.linkType).toBe(1);
      const probe = spawnSync("tcpdump", ["--version"], { encoding: "utf8" });
      if (probe.error !== undefined) {
        console.warn(
          "fixture pcap: tcpdump is not on PATH, skipping the tcpdump read-back (Debian package: tcpdump)",
        );
        return;
      }
      const text = execFileSync("tcpdump", ["-nn", "-r", file], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
      });
      const lines = text.split("\n").filter((l) => l.trim() !== "");
      expect(lines).toHaveLength(expected);
      // the first row: the client's SYN to the VIP, then the same SYN towards rs1:8080
      expect(lines[0]).toMatch(/IP 10\.0\.0\.7\.40001 > 10\.0\.0\.100\.80: Flags \[S\]/);
      expect(lines[1]).toMatch(/IP 10\.0\.0\.7\.40001 > 192\.168\.10\.1\.8080: Flags \[S\]/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
