// The contract checks CI runs: `buf lint` with proto/buf.yaml's rules, and
// `buf breaking` against the committed image of the last released contract
// (proto/baseline/traum-v1.binpb). Before trusting them it proves, on a
// scratch copy of proto/, that each check fails on what it must catch: a
// lint violation and a wire-breaking change. A check that cannot fail would
// let exactly those through.
//
// Usage: node scripts/contract.mjs            (checks + self-test)
//        node scripts/contract.mjs --baseline (writes the baseline image; only on a release)
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const web = join(here, "..");
const proto = join(web, "..", "..", "proto");
const baseline = join(proto, "baseline", "traum-v1.binpb");
const buf = join(web, "node_modules", ".bin", "buf");

function run(args) {
  const r = spawnSync(buf, args, { encoding: "utf8" });
  if (r.error) throw r.error;
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}`.trim() };
}

function check(dir) {
  return {
    lint: run(["lint", dir]),
    breaking: run(["breaking", dir, "--against", baseline]),
  };
}

if (process.argv.includes("--baseline")) {
  execFileSync(buf, ["build", proto, "--exclude-source-info", "-o", baseline], { stdio: "inherit" });
  console.log(`wrote ${baseline}`);
  process.exit(0);
}

let failed = false;
const real = check(proto);
for (const [name, r] of Object.entries(real)) {
  if (r.ok) {
    console.log(`contract: buf ${name} passed`);
  } else {
    failed = true;
    console.error(`contract: buf ${name} failed:\n${r.out}`);
  }
}
if (!real.breaking.ok) {
  console.error(
    "A change that breaks existing clients needs a new package version (traum.v2) beside traum.v1; see proto/README.md.",
  );
}

// Self-test on scratch copies: each mutation must make its check fail.
const mutations = [
  {
    name: "a message not in PascalCase",
    check: "lint",
    file: "traum/v1/audio.proto",
    apply: (s) => `${s}\n// A message.\nmessage bad_name {}\n`,
    expect: /PascalCase/,
  },
  {
    name: "a field renumbered",
    check: "breaking",
    file: "traum/v1/audio.proto",
    apply: (s) => s.replace(/(message GetFileRequest \{[^}]*?string file_id = )1;/s, "$199;"),
    expect: /GetFileRequest|field/i,
  },
  {
    name: "an RPC removed",
    check: "breaking",
    file: "traum/v1/search.proto",
    apply: (s) => s.replace(/^\s*rpc Suggest\(SuggestRequest\) returns \(SuggestResponse\);$/m, ""),
    expect: /Suggest/,
  },
];
for (const m of mutations) {
  const scratch = mkdtempSync(join(tmpdir(), "traum-contract-"));
  try {
    cpSync(join(proto, "traum"), join(scratch, "traum"), { recursive: true });
    cpSync(join(proto, "buf.yaml"), join(scratch, "buf.yaml"));
    const path = join(scratch, m.file);
    const before = readFileSync(path, "utf8");
    const after = m.apply(before);
    if (after === before) throw new Error(`self-test "${m.name}" changed nothing: update its pattern`);
    writeFileSync(path, after);
    const r = check(scratch)[m.check];
    if (r.ok || !m.expect.test(r.out)) {
      failed = true;
      console.error(`contract self-test: buf ${m.check} did not catch ${m.name}:\n${r.out}`);
    } else {
      console.log(`contract self-test: buf ${m.check} catches ${m.name}`);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}
process.exit(failed ? 1 : 0);
