import { defineConfig } from "vitest/config";

// Browser end-to-end tests: a real traum-server (and Envoy), a real Chromium.
// Each test file starts its own server; files run one after another.
export default defineConfig({
  test: {
    environment: "node",
    include: ["e2e/**/*.e2e.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    // A 2-core CI machine running the server, Chromium and the tests can take
    // seconds to show what a laptop shows at once; polls wait, never sleep.
    expect: { poll: { timeout: 15_000, interval: 100 } },
    // Figures printed by the performance test must reach the terminal.
    silent: false,
  },
});
