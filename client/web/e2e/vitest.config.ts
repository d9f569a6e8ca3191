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
    globalSetup: ["e2e/global-setup.ts"],
    // Figures printed by the performance test must reach the terminal.
    silent: false,
  },
});
