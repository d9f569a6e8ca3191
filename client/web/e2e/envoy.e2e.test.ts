// The app opened through the real Envoy (envoy/render.sh): the page, the
// resumable upload RPCs and the live stream all pass through the proxy.
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, expect, test } from "vitest";
import { FileState } from "../src/gen/traum/v1/audio_pb";
import {
  launchBrowser,
  listAllFiles,
  openPage,
  payload,
  sha256Hex,
  startEnvoy,
  startServer,
  wav,
  type Envoy,
  type OpenedPage,
  type TraumServer,
  waitForUploadStatus,
} from "./harness";

let server: TraumServer;
let envoy: Envoy;
let browser: Browser;
let opened: OpenedPage;

beforeAll(async () => {
  server = await startServer({ model: true });
  envoy = await startEnvoy(server);
  browser = await launchBrowser();
  opened = await openPage(browser, envoy.url);
});

afterAll(async () => {
  if (opened?.errors.length) console.log(`browser errors:\n  ${opened.errors.join("\n  ")}`);
  await opened?.close();
  await browser?.close();
  await envoy?.stop();
  await server?.stop();
});

async function upstreamRequests(): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${envoy.adminPort}/stats?filter=upstream_rq_total`)).text();
  const out: Record<string, number> = {};
  for (const line of text.split("\n")) {
    const m = /^cluster\.([^.]+)\.upstream_rq_total: (\d+)$/.exec(line.trim());
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

test("an upload through Envoy reaches ready, with the live stream through Envoy too", async () => {
  const { page } = opened;
  const rpcs: string[] = [];
  page.on("request", (r) => {
    const u = new URL(r.url());
    if (u.pathname.startsWith("/traum.v1.")) rpcs.push(`${u.origin}${u.pathname}`);
  });
  const before = await upstreamRequests();
  await page.goto("/");
  expect(new URL(page.url()).port).toBe(String(envoy.port));
  const bytes = wav(3, { freq: 660, seed: 11 });
  const name = "through envoy.wav";
  await page.getByLabel("Upload", { exact: true }).and(page.locator('input[type="file"]')).setInputFiles([payload(name, bytes)]);
  // "Ready" comes from the job's events, which arrive over WatchLibrary.
  await waitForUploadStatus(page, name, /^Ready$/);

  const files = await listAllFiles(server.audio);
  expect(files.map((f) => f.filename)).toEqual([name]);
  expect(files[0].sha256).toBe(sha256Hex(bytes));
  expect(FileState[files[0].state]).toBe("READY");

  // Every RPC the page made went to the Envoy origin, and included the upload trio and the stream.
  const origins = new Set(rpcs.map((r) => new URL(r).origin));
  expect([...origins]).toEqual([envoy.url]);
  const methods = new Set(rpcs.map((r) => new URL(r).pathname.split("/").pop()));
  for (const m of ["StartUpload", "PutUploadChunk", "FinishUpload", "WatchLibrary"]) expect(methods, m).toContain(m);
  const after = await upstreamRequests();
  // RPCs went to the gRPC port (gRPC-Web translated by Envoy), the app to the web port.
  const grew = Object.keys(after).filter((k) => after[k] > (before[k] ?? 0));
  expect(grew.sort(), JSON.stringify({ before, after })).toEqual(["traum_grpc", "traum_web"]);
  console.log(`envoy: upstream requests per cluster ${JSON.stringify(after)}; RPCs seen: ${[...methods].join(", ")}`);
});
