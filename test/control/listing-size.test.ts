/**
 * The `size=` of the listing header is the connection hash table's bucket count, as the kernel
 * prints IP_VS_CONN_TAB_SIZE (1 << conn_tab_bits): lvsd's table has --max-conns buckets rounded up
 * to a power of two, unless the engine was given a bucket count.
 */
import { describe, expect, it } from "vitest";
import { EngineControl } from "../../src/control/adapter.js";
import { run } from "../../src/control/commands.js";
import { Engine } from "../../src/datapath/engine.js";

function header(engine: Engine): string {
  return run(["-Ln"], new EngineControl(engine)).stdout.split("\n")[0]!;
}

describe("listing header size=", () => {
  it("is the connection table's bucket count", () => {
    expect(header(new Engine({ maxConns: 1000 }))).toBe("IP Virtual Server version 1.2.1 (size=1024)");
    expect(header(new Engine({ maxConns: 5000 }))).toBe("IP Virtual Server version 1.2.1 (size=8192)");
    // the kernel's default table (conn_tab_bits 12)
    expect(header(new Engine({ maxConns: 1024, buckets: 4096 }))).toBe(
      "IP Virtual Server version 1.2.1 (size=4096)",
    );
  });
});
