import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // once before any worker: install the Debian packages of missing test tools (as root), or say
    // which are missing; tests that need one skip naming it (test/support/tools.ts)
    globalSetup: ["test/setup/tools.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
