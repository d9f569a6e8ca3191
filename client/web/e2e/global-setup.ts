// TRAUM_WEB_DIST=build: build the app once into e2e/.dist and serve that in
// front of the server (for a server binary built without client/web/dist).
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { resolve } from "node:path";

export default function setup() {
  if (process.env.TRAUM_WEB_DIST !== "build") return;
  const web = resolve(fileURLToPath(new URL(".", import.meta.url)), "..");
  execFileSync("npx", ["vite", "build", "--outDir", "e2e/.dist", "--emptyOutDir", "--logLevel", "warn"], {
    cwd: web,
    stdio: "inherit",
  });
}
