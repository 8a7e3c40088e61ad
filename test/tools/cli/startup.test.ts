/**
 * What lvsd loads at start: the modules only some runs need stay out of the start-up path
 * (prom-client only with --http, pino-pretty only when stderr is a TTY), so every lvsd start and
 * `lvsd --config-test` skip their load time (0.1-0.3 s each on the test VM; bench/RESULTS.md).
 * Checked in a fresh Node process that imports lvsd's module (what bin/lvsd does) and lists the
 * CommonJS packages that came with it.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { ROOT } from "../../../src/tools/lab/labbase.js";

function packagesLoadedBy(module: string): string[] {
  const url = pathToFileURL(join(ROOT, module)).href;
  const script = `import(${JSON.stringify(url)}).then(() => {
    const names = Object.keys(require.cache)
      .filter((k) => k.includes("/node_modules/"))
      .map((k) => k.split("/node_modules/").pop().split("/")[0]);
    console.log(JSON.stringify([...new Set(names)]));
  });`;
  const r = spawnSync(process.execPath, ["-e", script], { encoding: "utf8", timeout: 30_000 });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as string[];
}

describe("lvsd start-up", () => {
  it("loads pino but neither prom-client nor pino-pretty until they are needed", () => {
    const loaded = packagesLoadedBy("dist/src/tools/cli/lvsd.js");
    expect(loaded).toContain("pino"); // the check sees CommonJS packages at all
    expect(loaded).not.toContain("prom-client");
    expect(loaded).not.toContain("pino-pretty");
  });
});
