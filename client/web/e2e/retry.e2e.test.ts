// A chunk lost on the way (the browser's request fails) is retried by the
// app's upload queue, and the file arrives intact.
import type { Browser, Request } from "playwright-core";
import { afterAll, beforeAll, expect, test } from "vitest";
import { FileState } from "../src/gen/traum/v1/audio_pb";
import {
  launchBrowser,
  listAllFiles,
  openPage,
  payload,
  sha256Hex,
  startServer,
  waitFor,
  waitForReady,
  wav,
  type OpenedPage,
  type TraumServer,
  waitForUploadStatus,
} from "./harness";

let server: TraumServer;
let browser: Browser;
let opened: OpenedPage;

beforeAll(async () => {
  server = await startServer({ model: true });
  browser = await launchBrowser();
  opened = await openPage(browser, server.webUrl);
});

afterAll(async () => {
  if (opened?.errors.length) console.log(`browser errors:\n  ${opened.errors.join("\n  ")}`);
  await opened?.close();
  await browser?.close();
  await server?.stop();
});

test("the second PutUploadChunk fails once; the upload is retried and the bytes arrive intact", async () => {
  const { page } = opened;
  // 24 s of 44.1 kHz stereo 16-bit: 4 233 644 bytes, five chunks of at most 1 MiB
  // (and more than one of the server's 4 MiB chunks, whatever the app picks).
  const bytes = wav(24, { rate: 44_100, channels: 2, freq: 523.25, seed: 99 });
  expect(bytes.length).toBeGreaterThan(4 * 1024 * 1024);
  const name = "long take.wav";

  let chunkRequests = 0;
  let aborted = 0;
  const offsets: number[] = [];
  await page.route("**/traum.v1.AudioService/PutUploadChunk", async (route) => {
    chunkRequests++;
    offsets.push(route.request().postDataBuffer()?.length ?? 0);
    if (chunkRequests === 2) {
      aborted++;
      await route.abort("failed");
    } else {
      await route.continue();
    }
  });
  const getUploads: Request[] = [];
  page.on("request", (r) => {
    if (r.url().endsWith("/traum.v1.AudioService/GetUpload")) getUploads.push(r);
  });

  await page.goto("/");
  await page.getByLabel("Upload", { exact: true }).and(page.locator('input[type="file"]')).setInputFiles([payload(name, bytes)]);
  await waitForUploadStatus(page, name, /^Ready$/);

  expect(aborted).toBe(1);
  // At least three chunks got through besides the failed one.
  expect(chunkRequests).toBeGreaterThanOrEqual(4);
  // After the failure the app asked the server where to resume.
  expect(getUploads.length).toBeGreaterThanOrEqual(1);

  const file = await waitFor("the uploaded file on the server", async () =>
    (await listAllFiles(server.audio)).find((f) => f.filename === name),
  );
  expect(Number(file.sizeBytes)).toBe(bytes.length);
  expect(file.sha256).toBe(sha256Hex(bytes));
  const ready = await waitForReady(server.audio, file.fileId);
  expect(FileState[ready.state]).toBe("READY");
  console.log(
    `chunk retry: ${chunkRequests} PutUploadChunk requests (1 aborted), ${getUploads.length} GetUpload, ` +
      `request bodies ${offsets.map((n) => n.toLocaleString("en-US")).join(", ")} bytes`,
  );
});
