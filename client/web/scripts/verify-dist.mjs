// Rebuilds the app into a temporary folder and fails when it differs from the
// committed dist/ (which the Rust server embeds at compile time).
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const committed = join(root, "dist");
const out = mkdtempSync(join(tmpdir(), "traum-dist-"));

function list(dir) {
  const files = [];
  const walk = (d) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else files.push(relative(dir, p));
    }
  };
  walk(dir);
  return files.sort();
}

try {
  execFileSync(process.execPath, [join(root, "node_modules/vite/bin/vite.js"), "build", "--outDir", out, "--emptyOutDir"], {
    cwd: root,
    stdio: ["ignore", "ignore", "inherit"],
  });
  const a = list(committed);
  const b = list(out);
  const problems = [];
  for (const f of a) if (!b.includes(f)) problems.push(`only in dist/: ${f}`);
  for (const f of b) if (!a.includes(f)) problems.push(`missing from dist/: ${f}`);
  for (const f of a) if (b.includes(f) && !readFileSync(join(committed, f)).equals(readFileSync(join(out, f)))) problems.push(`differs: ${f}`);
  if (problems.length) {
    console.error(`dist/ is out of date (run npm run build and commit dist/):\n  ${problems.join("\n  ")}`);
    process.exitCode = 1;
  } else {
    console.log(`dist/ is up to date (${a.length} files)`);
  }
} finally {
  rmSync(out, { recursive: true, force: true });
}
