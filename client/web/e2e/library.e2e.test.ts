// The library view in a real browser against a real server: uploads of
// several formats, a refused file, tags, rename, delete, download, and the
// System view's figures, each checked against the server over native gRPC.
import { readFileSync } from "node:fs";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Browser, Locator, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { AudioFormat, FileOrder, FileState } from "../src/gen/traum/v1/audio_pb";
import { enumLabel, formatBytes, formatLongDuration, formatNumber } from "../src/lib/format";
import {
  fixture,
  launchBrowser,
  listAllFiles,
  openPage,
  payload,
  sha256Hex,
  startServer,
  uploadNative,
  wav,
  type OpenedPage,
  type TraumServer,
  uploadRow,
  waitForUploadStatus,
} from "./harness";

let server: TraumServer;
let browser: Browser;
let opened: OpenedPage;
let page: Page;

/** name → bytes of every file uploaded through the UI. */
const uploaded = new Map<string, Buffer>();

beforeAll(async () => {
  server = await startServer({ model: true });
  browser = await launchBrowser();
  opened = await openPage(browser, server.webUrl);
  page = opened.page;
});

afterAll(async () => {
  if (opened?.errors.length) console.log(`browser errors:\n  ${opened.errors.join("\n  ")}`);
  await opened?.close();
  await browser?.close();
  await server?.stop();
});

function fileInput(p: Page): Locator {
  return p.getByLabel("Upload", { exact: true }).and(p.locator('input[type="file"]'));
}

/** The library grid's row of a file, found by its selection checkbox. */
function libraryRow(p: Page, name: string): Locator {
  return p
    .getByRole("grid", { name: "Library" })
    .getByRole("row")
    .filter({ has: p.getByRole("checkbox", { name: `Select ${name}`, exact: true }) });
}

async function fileIdOf(name: string): Promise<string> {
  const files = await listAllFiles(server.audio);
  const f = files.find((x) => x.filename === name);
  if (!f) throw new Error(`no file named ${name} on the server (have: ${files.map((x) => x.filename).join(", ")})`);
  return f.fileId;
}

/** Drops files onto the drop zone the way a browser delivers a drop. */
async function dropFiles(p: Page, files: { name: string; mimeType: string; buffer: Buffer }[]) {
  const zone = p.getByTestId("dropzone");
  const dt = await p.evaluateHandle(
    (list) => {
      const d = new DataTransfer();
      for (const f of list) {
        const bin = atob(f.b64);
        const bytes = new Uint8Array(bin.length);
        for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
        d.items.add(new File([bytes], f.name, { type: f.mimeType }));
      }
      return d;
    },
    files.map((f) => ({ name: f.name, mimeType: f.mimeType, b64: f.buffer.toString("base64") })),
  );
  await zone.dispatchEvent("dragenter", { dataTransfer: dt });
  await zone.dispatchEvent("dragover", { dataTransfer: dt });
  await zone.dispatchEvent("drop", { dataTransfer: dt });
}

async function selectOnly(p: Page, name: string) {
  // Clear any selection, then tick this file.
  for (const box of await p.getByRole("grid", { name: "Library" }).getByRole("checkbox", { name: /^Select (?!all loaded files$)/ }).all()) {
    if (await box.isChecked()) await box.uncheck();
  }
  await p.getByRole("checkbox", { name: `Select ${name}`, exact: true }).check();
  await expect.poll(() => p.getByTestId("selection-count").textContent()).toBe("1 selected");
}

describe("library", () => {
  test("files of five formats, chosen and dropped, reach ready, and ListFiles agrees", async () => {
    await page.goto("/");
    const files: [string, Buffer][] = [
      ["sine.wav", wav(2, { freq: 330, seed: 1 })],
      ["tone.flac", fixture("tone.flac")],
      ["tone.mp3", fixture("tone.mp3")],
      ["tone.m4a", fixture("tone.m4a")],
    ];
    await fileInput(page).setInputFiles(files.map(([n, b]) => payload(n, b)));
    // The Ogg file arrives through the drop zone instead of the picker.
    const ogg = fixture("tone.ogg");
    await dropFiles(page, [payload("tone.ogg", ogg)]);
    files.push(["tone.ogg", ogg]);
    for (const [n, b] of files) uploaded.set(n, b);

    for (const [name] of files) {
      const row = uploadRow(page, name);
      await waitForUploadStatus(page, name, /^Ready$/);
      // The upload bar is full once the bytes are on the server.
      expect(await row.getByRole("progressbar", { name, exact: true }).getAttribute("aria-valuenow")).toBe("100");
    }

    const res = await server.audio.listFiles({ pageSize: 100 });
    expect(Number(res.totalCount)).toBe(files.length);
    expect(res.files.map((f) => f.filename).sort()).toEqual(files.map(([n]) => n).sort());
    for (const f of res.files) {
      expect(FileState[f.state], `${f.filename}: ${f.error}`).toBe("READY");
      expect(f.sha256, f.filename).toBe(sha256Hex(uploaded.get(f.filename)!));
    }
    const formats = Object.fromEntries(res.files.map((f) => [f.filename, AudioFormat[f.format]]));
    expect(formats).toEqual({
      "sine.wav": "WAV",
      "tone.flac": "FLAC",
      "tone.mp3": "MP3",
      "tone.m4a": "M4A",
      "tone.ogg": "OGG",
    });

    // The grid shows one row per file, each READY.
    for (const [name] of files) {
      await expect.poll(() => libraryRow(page, name).count()).toBe(1);
      await expect.poll(() => libraryRow(page, name).locator(".c-state").textContent()).toBe("Ready");
    }
    await expect.poll(() => page.getByTestId("file-count").textContent()).toBe(`${files.length} files`);
  });

  test("a refused file shows the server's INVALID_ARGUMENT message in the failures list", async () => {
    const notes = Buffer.from("These are my notes, not audio.\n".repeat(20));
    // What the server says about these bytes, asked natively.
    let expected = "";
    try {
      await uploadNative(server.audio, "notes.wav", notes);
      throw new Error("the server accepted a text file as audio");
    } catch (err) {
      const e = ConnectError.from(err);
      expect(Code[e.code]).toBe("InvalidArgument");
      expected = e.rawMessage;
    }
    expect(expected.length).toBeGreaterThan(0);

    await page.goto("/");
    await fileInput(page).setInputFiles([{ name: "notes.wav", mimeType: "audio/wav", buffer: notes }]);
    const failures = page.getByRole("list", { name: "Failed uploads" });
    const row = failures.getByRole("listitem").filter({ has: page.getByRole("progressbar", { name: "notes.wav", exact: true }) });
    await expect.poll(() => row.count(), { timeout: 30_000 }).toBe(1);
    const text = (await row.getByTestId("upload-status").textContent()) ?? "";
    expect(text).toContain("Failed");
    expect(text).toContain(expected);
    expect(await failures.isVisible()).toBe(true);
    // Nothing was stored.
    expect((await listAllFiles(server.audio)).some((f) => f.filename === "notes.wav")).toBe(false);
  });

  test("tag edits and a rename made in the UI persist on the server", async () => {
    await page.goto("/");
    const id = await fileIdOf("tone.mp3");
    await expect.poll(() => libraryRow(page, "tone.mp3").count()).toBe(1);
    await selectOnly(page, "tone.mp3");
    const actions = page.getByRole("toolbar", { name: "File actions" });

    // Add two tags.
    await actions.getByRole("button", { name: "Edit tags" }).click();
    let dialog = page.getByRole("dialog");
    const add = dialog.getByLabel("Tags to add", { exact: true });
    await add.fill("Drums");
    await add.press("Enter");
    await add.fill("loop");
    await add.press("Enter");
    await dialog.getByRole("button", { name: "Save tags" }).click();
    await expect.poll(() => dialog.count()).toBe(0);
    await expect.poll(async () => (await server.audio.getFile({ fileId: id })).tags).toEqual(["drums", "loop"]);

    // Remove one.
    await actions.getByRole("button", { name: "Edit tags" }).click();
    dialog = page.getByRole("dialog");
    const remove = dialog.getByLabel("Tags to remove", { exact: true });
    await remove.fill("loop");
    await remove.press("Enter");
    await dialog.getByRole("button", { name: "Save tags" }).click();
    await expect.poll(() => dialog.count()).toBe(0);
    await expect.poll(async () => (await server.audio.getFile({ fileId: id })).tags).toEqual(["drums"]);

    // Rename.
    await actions.getByRole("button", { name: "Rename" }).click();
    dialog = page.getByRole("dialog");
    await dialog.getByLabel("Filename", { exact: true }).fill("kick loop.mp3");
    await dialog.getByRole("button", { name: "Save name" }).click();
    await expect.poll(() => dialog.count()).toBe(0);
    await expect.poll(async () => (await server.audio.getFile({ fileId: id })).filename).toBe("kick loop.mp3");
    uploaded.set("kick loop.mp3", uploaded.get("tone.mp3")!);
    uploaded.delete("tone.mp3");

    // After a reload the grid shows what the server holds.
    await page.reload();
    const row = libraryRow(page, "kick loop.mp3");
    await expect.poll(() => row.count()).toBe(1);
    expect(await libraryRow(page, "tone.mp3").count()).toBe(0);
    expect((await row.locator(".c-tags .tag").allTextContents())).toEqual(["drums"]);

    // The tag filter finds it, and only it.
    const tagFilter = page.getByRole("search", { name: "Filter files" }).getByLabel("Tags", { exact: true });
    await tagFilter.fill("drums");
    await tagFilter.press("Enter");
    await expect.poll(() => page.getByTestId("file-count").textContent()).toMatch(/^1 files?$/);
    await expect.poll(() => page.getByRole("grid", { name: "Library" }).getByRole("row").count()).toBe(2);
    expect(await row.count()).toBe(1);
  });

  test("filters, search and sorting show what ListFiles returns for the same query", async () => {
    await page.goto("/");
    const grid = page.getByRole("grid", { name: "Library" });
    const names = () => grid.locator("[role=row][data-index] .c-name").allTextContents();
    await expect.poll(async () => (await names()).length).toBe(uploaded.size);

    // Format select.
    await page.getByLabel("Format", { exact: true }).selectOption({ label: "FLAC" });
    await expect.poll(names).toEqual(["tone.flac"]);
    await page.getByLabel("Format", { exact: true }).selectOption({ label: "Any format" });
    await expect.poll(async () => (await names()).length).toBe(uploaded.size);

    // Filename search (case-insensitive on the server).
    await page.getByLabel("Filename", { exact: true }).fill("TONE");
    const native = (await server.audio.listFiles({ filenameContains: "TONE" })).files.map((f) => f.filename);
    expect(native.length).toBeGreaterThan(1);
    await expect.poll(names).toEqual(native);
    await page.getByLabel("Filename", { exact: true }).fill("");
    await expect.poll(async () => (await names()).length).toBe(uploaded.size);

    // State select: everything is ready, nothing failed.
    await page.getByLabel("State", { exact: true }).selectOption({ label: "Failed" });
    await expect.poll(names).toEqual([]);
    await page.getByLabel("State", { exact: true }).selectOption({ label: "Ready" });
    await expect.poll(async () => (await names()).length).toBe(uploaded.size);

    // Sorting by the Name column header, ascending then descending.
    const nameHeader = grid.getByRole("columnheader", { name: /^Name/ });
    expect(await nameHeader.getAttribute("aria-sort")).toBe("none");
    await nameHeader.getByRole("button").click();
    await expect.poll(() => nameHeader.getAttribute("aria-sort")).toBe("ascending");
    const asc = (await server.audio.listFiles({ orderBy: FileOrder.FILENAME, ascending: true })).files.map((f) => f.filename);
    await expect.poll(names).toEqual(asc);
    await nameHeader.getByRole("button").click();
    await expect.poll(() => nameHeader.getAttribute("aria-sort")).toBe("descending");
    await expect.poll(names).toEqual([...asc].reverse());
  });

  test("delete asks for confirmation, removes the row, and the server forgets the file", async () => {
    await page.goto("/");
    const name = "tone.m4a";
    const id = await fileIdOf(name);
    await expect.poll(() => libraryRow(page, name).count()).toBe(1);
    await selectOnly(page, name);
    await page.getByRole("toolbar", { name: "File actions" }).getByRole("button", { name: "Delete" }).click();
    const dialog = page.getByRole("dialog");
    expect(await dialog.count()).toBe(1);
    // Cancel first: nothing happens.
    await dialog.getByRole("button", { name: "Cancel" }).click();
    await expect.poll(() => dialog.count()).toBe(0);
    expect((await server.audio.getFile({ fileId: id })).fileId).toBe(id);

    await page.getByRole("toolbar", { name: "File actions" }).getByRole("button", { name: "Delete" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Confirm delete" }).click();
    await expect.poll(() => libraryRow(page, name).count()).toBe(0);
    const err = await server.audio.getFile({ fileId: id }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err && Code[err.code]).toBe("NotFound");
    uploaded.delete(name);
    await page.reload();
    await expect.poll(() => page.getByTestId("file-count").textContent()).toBe(`${uploaded.size} files`);
    expect(await libraryRow(page, name).count()).toBe(0);
  });

  test("download links give back the uploaded bytes, byte for byte", async () => {
    for (const name of ["tone.flac", "sine.wav"]) {
      const id = await fileIdOf(name);
      await page.goto(`/files/${id}`);
      const link = page.getByRole("link", { name: "Download", exact: true });
      expect(await link.getAttribute("href")).toBe(`/api/files/${id}/audio`);
      expect(await link.getAttribute("download")).not.toBeNull();

      // A real click, saved by the browser.
      const [download] = await Promise.all([page.waitForEvent("download"), link.click()]);
      const path = await download.path();
      expect(download.suggestedFilename()).toBe(name);
      const saved = readFileSync(path);
      expect(saved.length).toBe(uploaded.get(name)!.length);
      expect(sha256Hex(saved)).toBe(sha256Hex(uploaded.get(name)!));

      // And the same href fetched by the page.
      const href = (await link.getAttribute("href"))!;
      const inPage = await page.evaluate(async (u) => {
        const r = await fetch(u);
        const digest = await crypto.subtle.digest("SHA-256", await r.arrayBuffer());
        return { status: r.status, sha: Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("") };
      }, href);
      expect(inPage).toEqual({ status: 200, sha: sha256Hex(uploaded.get(name)!) });
    }
  });

  test("the System view shows the figures of GetStats", async () => {
    const stats = await server.analytics.getStats({});
    expect(Number(stats.fileCount)).toBe(uploaded.size);
    await page.goto("/system");
    const figure = (list: string, label: string) =>
      page
        .locator(`dl[aria-label="${list}"] dt`)
        .filter({ hasText: new RegExp(`^${label}$`) })
        .locator("xpath=following-sibling::dd[1]");
    await expect.poll(() => figure("Library figures", "Files").count(), { timeout: 20_000 }).toBe(1);
    const shown = async (list: string, label: string) => ((await figure(list, label).textContent()) ?? "").trim();

    const files = await shown("Library figures", "Files");
    expect(Number(files.replace(/[^\d]/g, ""))).toBe(Number(stats.fileCount));
    expect(await shown("Library figures", "Blobs")).toBe(formatNumber(stats.blobCount));
    expect(await shown("Library figures", "Stored bytes")).toBe(formatBytes(stats.storedBytes));
    expect(await shown("Library figures", "Total duration")).toBe(formatLongDuration(stats.totalDurationSeconds));
    // The stored bytes are the sum of the distinct uploads.
    const distinct = new Map([...uploaded.values()].map((b) => [sha256Hex(b), b.length]));
    expect(Number(stats.storedBytes)).toBe([...distinct.values()].reduce((a, b) => a + b, 0));
    for (const c of stats.filesByFormat) {
      expect(await shown("Files per format", enumLabel(c.name))).toBe(formatNumber(c.count));
    }
    console.log(
      `system view: Files=${files}, Stored bytes=${await shown("Library figures", "Stored bytes")}, ` +
        `Total duration=${await shown("Library figures", "Total duration")}; GetStats file_count=${stats.fileCount}, ` +
        `stored_bytes=${stats.storedBytes}, total_duration_seconds=${stats.totalDurationSeconds.toFixed(3)}`,
    );
  });
});
