import { defineConfig } from "vitest/config";

// Node smoke tests of the standalone client (src/client) against a real
// traum-server; they import it by the package's export path, as a program
// outside this repository's app would.
export default defineConfig({
  test: {
    environment: "node",
    include: ["node/**/*.node.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    fileParallelism: false,
  },
});
