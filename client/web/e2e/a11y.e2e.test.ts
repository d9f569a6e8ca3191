// axe-core on every view, at desktop and phone width, with content in it:
// library rows (and upload rows, one of them failed), a file's detail, the
// System view. Screenshots of each when TRAUM_SCREENSHOTS=1.
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { FileState } from "../src/gen/traum/v1/audio_pb";
import {
  DESKTOP,
  PHONE,
  fixture,
  launchBrowser,
  openPage,
  payload,
  saveScreenshot,
  seriousA11yViolations,
  startServer,
  uploadNative,
  waitForTerminal,
  wav,
  type OpenedPage,
  type TraumServer,
  waitForUploadStatus,
} from "./harness";

let server: TraumServer;
let browser: Browser;
let detailId = "";
let duplicateId = "";
const pages: OpenedPage[] = [];

beforeAll(async () => {
  server = await startServer({ model: true });
  browser = await launchBrowser();
  // One at a time; the views are checked whatever state processing ends in
  // (library.e2e.test.ts is where processing must succeed).
  const seeded: [string, Buffer, string[]][] = [
    ["field recording.wav", wav(6, { rate: 44_100, freq: 196, seed: 3 }), ["field", "ambience"]],
    ["tone.flac", fixture("tone.flac"), ["tone"]],
    ["tone.ogg", fixture("tone.ogg"), []],
    // The same recording twice: the file page lists its near-duplicate.
    ["song.ogg", fixture("fingerprint/song0.ogg"), []],
    ["song (trimmed).m4a", fixture("fingerprint/song0_trim.m4a"), []],
  ];
  for (const [name, bytes, tags] of seeded) {
    const r = await uploadNative(server.audio, name, bytes, tags);
    const f = await waitForTerminal(server.audio, r.fileId, 90_000);
    if (f.state !== FileState.READY) console.log(`a11y seed: ${name} ended ${FileState[f.state]}: ${f.error}`);
    detailId ||= r.fileId;
    if (name.endsWith(".m4a")) duplicateId = r.fileId;
  }
});

afterAll(async () => {
  for (const p of pages) {
    if (p.errors.length) console.log(`browser errors:\n  ${p.errors.join("\n  ")}`);
    await p.close();
  }
  await browser?.close();
  await server?.stop();
});

async function settle(page: Page) {
  // Fonts, and a moment for the last renders (the live stream keeps a request
  // open for good, so "network idle" never comes).
  await page.evaluate(() => document.fonts?.ready);
  await page.waitForTimeout(400);
}

const viewports = [
  { label: "desktop", size: DESKTOP, suffix: "" },
  { label: "phone", size: PHONE, suffix: "-phone" },
] as const;

describe.each(viewports)("$label", ({ size, suffix }) => {
  let page: Page;
  beforeAll(async () => {
    const opened = await openPage(browser, server.webUrl, size);
    pages.push(opened);
    page = opened.page;
  });

  test("library, with rows and upload results", async () => {
    await page.goto("/");
    const input = page.getByLabel("Upload", { exact: true }).and(page.locator('input[type="file"]'));
    await input.setInputFiles([
      payload("tone.mp3", fixture("tone.mp3")),
      { name: "notes.wav", mimeType: "audio/wav", buffer: Buffer.from("not audio at all\n".repeat(10)) },
    ]);
    await waitForUploadStatus(page, "tone.mp3", /Ready$/);
    await expect.poll(() => page.getByRole("list", { name: "Failed uploads" }).count()).toBe(1);
    await expect
      .poll(() => page.getByRole("grid", { name: "Library" }).getByRole("row").count())
      .toBeGreaterThanOrEqual(5);
    await settle(page);
    await saveScreenshot(page, `library${suffix}.png`);
    const violations = await seriousA11yViolations(page);
    expect(violations, violations.join("\n")).toEqual([]);
  });

  test("file detail", async () => {
    await page.goto(`/files/${detailId}`);
    await expect.poll(() => page.getByRole("heading", { level: 1 }).textContent()).toBe("field recording.wav");
    await expect.poll(() => page.getByRole("slider", { name: "Seek" }).count()).toBe(1);
    await settle(page);
    await saveScreenshot(page, `detail${suffix}.png`);
    const violations = await seriousA11yViolations(page);
    expect(violations, violations.join("\n")).toEqual([]);
  });

  test("file detail with a near-duplicate", async () => {
    await page.goto(`/files/${duplicateId}`);
    const group = page.getByRole("list", { name: "Files that are the same recording" });
    await expect.poll(() => group.getByRole("listitem").count()).toBe(2);
    await expect.poll(() => group.getByRole("link", { name: "song.ogg" }).count()).toBe(1);
    await expect.poll(() => group.textContent()).toMatch(/song \(trimmed\)\.m4a \(this file\).*starts 2\.\d{3} s in/);
    await settle(page);
    await saveScreenshot(page, `duplicates${suffix}.png`);
    const violations = await seriousA11yViolations(page);
    expect(violations, violations.join("\n")).toEqual([]);
  });

  test("system", async () => {
    await page.goto("/system");
    await expect.poll(() => page.locator('dl[aria-label="Library figures"] dt').count(), { timeout: 20_000 }).toBeGreaterThan(0);
    await settle(page);
    await saveScreenshot(page, `system${suffix}.png`);
    const violations = await seriousA11yViolations(page);
    expect(violations, violations.join("\n")).toEqual([]);
  });
});
