import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";

// The built app is embedded into the Rust server binary, so the output must be
// deterministic (no timestamps, content-hashed names) and small (no sourcemaps).
export default defineConfig({
  plugins: [react()],
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: false,
    target: "es2022",
    assetsDir: "assets",
    reportCompressedSize: false,
  },
  server: {
    // `npm run dev` proxies RPCs and audio to a locally running server.
    proxy: {
      "/traum.v1.": "http://127.0.0.1:8080",
      "/grpc.health.v1.": "http://127.0.0.1:8080",
      "/api": "http://127.0.0.1:8080",
    },
  },
  test: {
    environment: "happy-dom",
    include: ["src/**/*.test.{ts,tsx}"],
    exclude: ["e2e/**", "node_modules/**", "dist/**"],
    restoreMocks: true,
  },
});
