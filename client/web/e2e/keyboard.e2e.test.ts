// Keyboard alone: reach the upload input, move through the library, select
// a row, edit its tags in the dialog, open it and play it. And a server
// without a model: the upload says its job waits for the model, and why.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, expect, test } from "vitest";
import {
  launchBrowser,
  openPage,
  payload,
  startServer,
  uploadNative,
  waitFor,
  waitForReady,
  waitForUploadStatus,
  wav,
  type OpenedPage,
  type TraumServer,
} from "./harness";

let server: TraumServer;
let modelless: TraumServer;
let emptyModelDir: string;
let browser: Browser;
let opened: OpenedPage;

beforeAll(async () => {
  // A model directory without a checkpoint: the model cannot load, as on an offline first start.
  emptyModelDir = await mkdtemp(join(tmpdir(), "traum-e2e-no-model-"));
  [server, modelless] = await Promise.all([startServer({ model: true }), startServer({ modelDir: emptyModelDir, workers: 1 })]);
  browser = await launchBrowser();
  opened = await openPage(browser, server.webUrl);
});

afterAll(async () => {
  if (opened?.errors.length) console.log(`browser errors:\n  ${opened.errors.join("\n  ")}`);
  await opened?.close();
  await browser?.close();
  await Promise.all([server?.stop(), modelless?.stop()]);
  if (emptyModelDir) await rm(emptyModelDir, { recursive: true, force: true });
});

/** Presses Tab until the focused element matches `selector` (and has the text `text`, if given). */
async function tabTo(page: OpenedPage["page"], selector: string, text?: string, limit = 80): Promise<void> {
  for (let presses = 1; presses <= limit; presses++) {
    await page.keyboard.press("Tab");
    const reached = await page.evaluate(
      ([sel, txt]) => {
        const el = document.activeElement;
        return !!el && el.matches(sel) && (txt === "" || (el.getAttribute("aria-label") ?? el.textContent?.trim()) === txt);
      },
      [selector, text ?? ""] as const,
    );
    if (reached) return;
  }
  throw new Error(`Tab never reached ${selector} ${text ?? ""} in ${limit} presses`);
}

test("keyboard alone reaches Upload, selects a row, edits its tags and plays the file", async () => {
  const first = await uploadNative(server.audio, "first.wav", wav(8, { seed: 21 }));
  const second = await uploadNative(server.audio, "second.wav", wav(6, { freq: 330, seed: 22 }));
  await Promise.all([waitForReady(server.audio, first.fileId), waitForReady(server.audio, second.fileId)]);
  const { page } = opened;
  await page.goto("/");
  await page.getByRole("grid", { name: "Library" }).locator("[data-index='1']").waitFor();

  // The file input is reachable by Tab (a person then presses Space to choose files).
  await tabTo(page, 'input[type="file"]');
  expect(await page.evaluate(() => (document.activeElement as HTMLInputElement).labels?.[0]?.textContent?.trim())).toBe("Upload");

  // Into the grid, down to the second row (newest first: first.wav), select it.
  await tabTo(page, '[role="grid"] [role="row"][data-index]');
  await page.keyboard.press("ArrowDown");
  const focusedName = () => page.evaluate(() => document.activeElement?.querySelector(".c-name")?.textContent ?? "");
  expect(await focusedName()).toBe("first.wav");
  await page.keyboard.press("Space");
  await expect.poll(() => page.getByTestId("selection-count").textContent()).toMatch(/1/);

  // Edit tags: Tab to the toolbar button, Enter, type, Enter to add the chip, then Save.
  await tabTo(page, "button", "Edit tags");
  await page.keyboard.press("Enter");
  const dialog = page.getByRole("dialog");
  await dialog.waitFor();
  expect(await page.evaluate(() => document.activeElement?.closest("dialog") != null)).toBe(true);
  // Opening the dialog put focus on its first field.
  expect(await page.evaluate(() => (document.activeElement as HTMLInputElement).labels?.[0]?.textContent?.trim())).toBe("Tags to add");
  await page.keyboard.type("keys");
  await page.keyboard.press("Enter");
  await tabTo(page, "button", "Save tags");
  await page.keyboard.press("Enter");
  await waitFor(
    "the tag to reach the server",
    async () => ((await server.audio.getFile({ fileId: first.fileId })).tags.includes("keys") ? true : undefined),
    15_000,
    100,
  );

  // Back in the grid (the dialog returned focus, or Tab finds the row): Enter opens the file.
  await dialog.waitFor({ state: "detached" });
  if (!(await page.evaluate((id) => document.activeElement?.getAttribute("data-file-id") === id, first.fileId))) {
    await tabTo(page, `[role="row"][data-file-id="${first.fileId}"]`);
  }
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "first.wav", level: 1 }).waitFor();
  await tabTo(page, "button", "Play");
  await page.keyboard.press("Space");
  await waitFor(
    "playback to advance",
    async () => ((await page.evaluate(() => document.querySelector("audio")?.currentTime ?? 0)) > 0.2 ? true : undefined),
    15_000,
    100,
  );
  // The same button pauses; the seek slider after it takes arrow keys.
  await page.keyboard.press("Space");
  await tabTo(page, '[role="slider"][aria-label="Seek"]');
  await page.keyboard.press("Home");
  await page.keyboard.press("ArrowRight");
  await waitFor(
    "ArrowRight to seek 5 s",
    async () => {
      const t = await page.evaluate(() => document.querySelector("audio")?.currentTime ?? -1);
      return Math.abs(t - 5) < 0.25 ? t : undefined;
    },
    10_000,
    100,
  );
});

test("without a model, an upload says that its job waits for the model and why", async () => {
  const page = await browser.newPage();
  try {
    await page.goto(`${modelless.webUrl}/`);
    const name = "parked.wav";
    await page.getByLabel("Upload", { exact: true }).and(page.locator('input[type="file"]')).setInputFiles([payload(name, wav(1, { seed: 31 }))]);
    const status = await waitForUploadStatus(page, name, /waiting for the embedding model/, 60_000);
    expect(status).toMatch(/^Queued, waiting for the embedding model: /);
  } finally {
    await page.close();
  }
});
