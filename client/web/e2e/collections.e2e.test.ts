// Collections in a real browser against a real server: create one in the UI,
// add files from the library and from a search hit, reorder, reload, export
// (CSV, JSON, M3U8, zip), remove a file, delete the collection; each step is
// checked against the server over native gRPC. Plus axe at desktop and phone
// width and (TRAUM_SCREENSHOTS=1) screenshots.
import { ConnectError } from "@connectrpc/connect";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  DESKTOP,
  PHONE,
  launchBrowser,
  openPage,
  saveScreenshot,
  seriousA11yViolations,
  startServer,
  uploadNative,
  waitForReady,
  wav,
  type OpenedPage,
  type TraumServer,
} from "./harness";

let server: TraumServer;
let browser: Browser;
let opened: OpenedPage;
let page: Page;

const NAMES = ["alpha.wav", "bravo.wav", "charlie.wav"];
/** filename → file id */
const ids = new Map<string, string>();
let collectionId = "";
const COLLECTION = "Evening set";
/** The name after the rename test. */
const RENAMED = "Evening set (final)";
let currentName = COLLECTION;

beforeAll(async () => {
  server = await startServer({ model: true });
  for (const [i, name] of NAMES.entries()) {
    const res = await uploadNative(server.audio, name, wav(1 + i * 0.5, { freq: 220 * (i + 1), seed: 100 + i }));
    ids.set(name, res.fileId);
  }
  for (const id of ids.values()) await waitForReady(server.audio, id);
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

async function nativeOrder(): Promise<string[]> {
  const c = await server.audio.getCollection({ collectionId });
  return c.files.map((f) => f.filename);
}

/** Filenames in the detail view's list, in order. */
async function shownOrder(p: Page): Promise<string[]> {
  return p.locator(".collection-files .collection-file-name").allTextContents();
}

async function fetchInPage(p: Page, href: string) {
  return p.evaluate(async (url) => {
    const res = await fetch(url);
    const bytes = new Uint8Array(await res.arrayBuffer());
    return {
      status: res.status,
      type: res.headers.get("content-type") ?? "",
      disposition: res.headers.get("content-disposition") ?? "",
      text: new TextDecoder().decode(bytes.slice(0, 200_000)),
      head: Array.from(bytes.slice(0, 4)),
      size: bytes.length,
    };
  }, href);
}

describe("collections", () => {
  test("a collection is created in the UI; a duplicate name shows the server's ALREADY_EXISTS message", async () => {
    await page.goto("/");
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Collections" }).click();
    await expect.poll(() => page.getByRole("heading", { level: 1 }).textContent()).toBe("Collections");
    expect(await page.getByRole("link", { name: "Collections" }).getAttribute("aria-current")).toBe("page");
    await page.getByLabel("Collection name").fill(COLLECTION);
    await page.getByRole("button", { name: "Create collection" }).click();
    await expect.poll(() => page.getByRole("list", { name: "Collections" }).getByRole("link", { name: COLLECTION }).count()).toBe(1);
    const listed = (await server.audio.listCollections({})).collections;
    expect(listed.map((c) => [c.name, c.fileCount])).toEqual([[COLLECTION, 0]]);
    collectionId = listed[0].collectionId;

    // The same name again: the server's own words.
    let expected = "";
    try {
      await server.audio.createCollection({ name: COLLECTION });
      throw new Error("the server accepted a duplicate collection name");
    } catch (err) {
      expected = ConnectError.from(err).rawMessage;
    }
    expect(expected).not.toBe("");
    await page.getByLabel("Collection name").fill(COLLECTION);
    await page.getByRole("button", { name: "Create collection" }).click();
    const alert = page.locator("#create-collection-error");
    await expect.poll(() => alert.textContent()).toBe(`Already exists: ${expected}`);
    expect((await server.audio.listCollections({})).collections).toHaveLength(1);
  });

  test("two files are added from the library's selection toolbar", async () => {
    await page.goto("/");
    for (const name of ["alpha.wav", "bravo.wav"]) await page.getByRole("checkbox", { name: `Select ${name}`, exact: true }).check();
    await expect.poll(() => page.getByTestId("selection-count").textContent()).toBe("2 selected");
    await page.getByRole("toolbar", { name: "File actions" }).getByRole("button", { name: "Add to collection" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByLabel("Collection", { exact: true }).selectOption(collectionId);
    await dialog.getByRole("button", { name: "Add", exact: true }).click();
    await expect.poll(() => dialog.count()).toBe(0);
    await expect.poll(() => page.getByTestId("toasts").textContent()).toContain(`to ${COLLECTION}`);
    const order = await nativeOrder();
    expect([...order].sort()).toEqual(["alpha.wav", "bravo.wav"]);
  });

  test("the file detail view lists the collections holding the file", async () => {
    await page.goto(`/files/${ids.get("alpha.wav")}`);
    const list = page.getByRole("list", { name: "Collections holding this file" });
    await expect.poll(() => list.getByRole("link", { name: COLLECTION }).getAttribute("href")).toBe(`/collections/${collectionId}`);
    await page.goto(`/files/${ids.get("charlie.wav")}`);
    await expect.poll(() => page.getByText("In no collection.").count()).toBe(1);
  });

  test("a search hit's “Add to collection” appends the file", async () => {
    await page.goto("/search?q=tone");
    const add = page.getByRole("button", { name: "Add to collection: charlie.wav", exact: true });
    await add.click();
    const dialog = page.getByRole("dialog");
    await dialog.getByLabel("Collection", { exact: true }).selectOption(collectionId);
    await dialog.getByRole("button", { name: "Add", exact: true }).click();
    await expect.poll(() => dialog.count()).toBe(0);
    await expect.poll(async () => (await nativeOrder())[2]).toBe("charlie.wav");
  });

  test("files are reordered with “Move … up” (keyboard), and the order survives a reload", async () => {
    await page.goto("/collections");
    await page.getByRole("list", { name: "Collections" }).getByRole("link", { name: COLLECTION }).click();
    await expect.poll(() => page.getByRole("heading", { level: 1 }).textContent()).toBe(COLLECTION);
    const before = await nativeOrder();
    expect(before).toHaveLength(3);
    await expect.poll(() => shownOrder(page)).toEqual(before);
    // The rows show format and duration; names link to the file.
    const first = page.locator(".collection-file").first();
    expect(await first.getByTestId("collection-file-format").textContent()).toBe("WAV");
    expect(await first.getByRole("link").getAttribute("href")).toBe(`/files/${ids.get(before[0])}`);
    expect(await page.getByRole("button", { name: `Move ${before[0]} up` }).isDisabled()).toBe(true);
    expect(await page.getByRole("button", { name: `Move ${before[2]} down` }).isDisabled()).toBe(true);

    // Move the second file up with the keyboard.
    await page.getByRole("button", { name: `Move ${before[1]} up` }).focus();
    await page.keyboard.press("Enter");
    const want = [before[1], before[0], before[2]];
    await expect.poll(() => nativeOrder()).toEqual(want);
    await expect.poll(() => shownOrder(page)).toEqual(want);
    // The focus stays with the moved file (its "up" is disabled now, so "down").
    await expect
      .poll(() => page.evaluate(() => document.activeElement?.getAttribute("aria-label")))
      .toBe(`Move ${before[1]} down`);
    // And the last one up by a click.
    await page.getByRole("button", { name: `Move ${before[2]} up` }).click();
    const want2 = [before[1], before[2], before[0]];
    await expect.poll(() => nativeOrder()).toEqual(want2);

    await page.reload();
    await expect.poll(() => shownOrder(page)).toEqual(want2);
    expect(await nativeOrder()).toEqual(want2);
    await page.goto("/collections");
    await expect
      .poll(() => page.locator(`[data-collection-id="${collectionId}"]`).getByTestId("collection-file-count").textContent())
      .toBe("3 files");
  });

  test("the library's Collection filter shows only the collection's files (as ListFiles with collection_id), kept in the URL", async () => {
    await page.goto("/");
    const grid = page.getByRole("grid", { name: "Library" });
    const names = () => grid.locator("[role=row][data-index] .c-name").allTextContents();
    await expect.poll(async () => (await names()).length).toBe(NAMES.length);
    const filter = page.getByLabel("Collection", { exact: true });
    expect(await filter.inputValue()).toBe("");
    const options = await filter.locator("option").allTextContents();
    expect(options).toEqual(["Any collection", ...(await server.audio.listCollections({})).collections.map((c) => c.name)]);

    // Take one file out first, so that "in the collection" differs from "everything".
    const members = await nativeOrder();
    const outside = members[members.length - 1];
    await server.audio.updateCollection({ collectionId, removeFileIds: [ids.get(outside)!] });
    await filter.selectOption({ label: COLLECTION });
    const native = (await server.audio.listFiles({ collectionId })).files.map((f) => f.filename);
    expect([...native].sort()).toEqual(members.filter((n) => n !== outside).sort());
    await expect.poll(names).toEqual(native);
    expect(new URL(page.url()).searchParams.get("collection")).toBe(collectionId);
    await expect.poll(() => page.getByTestId("file-count").textContent()).toBe(`${native.length} files`);

    // Reload and a fresh page with the link keep it; Back shows everything again.
    await page.reload();
    await expect.poll(names).toEqual(native);
    expect(await page.getByLabel("Collection", { exact: true }).inputValue()).toBe(collectionId);
    await page.goBack();
    await expect.poll(async () => (await names()).length).toBe(NAMES.length);
    expect(await page.getByLabel("Collection", { exact: true }).inputValue()).toBe("");

    // Combined with the filename filter, as the server combines them.
    await page.goto(`/?collection=${collectionId}&name=${encodeURIComponent(native[0].slice(0, 3).toUpperCase())}`);
    const both = (await server.audio.listFiles({ collectionId, filenameContains: native[0].slice(0, 3).toUpperCase() })).files.map((f) => f.filename);
    await expect.poll(names).toEqual(both);
    expect(await page.getByLabel("Filename", { exact: true }).inputValue()).toBe(native[0].slice(0, 3).toUpperCase());

    // Put the file back where it was for the tests after this one.
    await server.audio.updateCollection({ collectionId, addFileIds: [ids.get(outside)!] });
    expect(await nativeOrder()).toEqual(members);
  });

  test("CSV, JSON and M3U8 exports list exactly the collection's files in order; the zip is a zip", async () => {
    await page.goto(`/collections/${collectionId}`);
    await expect.poll(() => shownOrder(page)).toHaveLength(3);
    const order = await nativeOrder();
    const wantIds = order.map((n) => ids.get(n)!);
    const href = async (name: string) => (await page.getByRole("link", { name, exact: true }).getAttribute("href"))!;

    const csv = await fetchInPage(page, await href("Export CSV"));
    expect(csv.status).toBe(200);
    expect(csv.type).toMatch(/^text\/csv/);
    expect(csv.disposition).toMatch(/^attachment/);
    const lines = csv.text.trim().split("\n");
    expect(lines[0].split(",").slice(0, 3)).toEqual(["position", "file_id", "filename"]);
    expect(lines.slice(1).map((l) => l.split(",")[1])).toEqual(wantIds);
    expect(lines.slice(1).map((l) => l.split(",")[2])).toEqual(order);

    const json = await fetchInPage(page, await href("Export JSON"));
    expect(json.status).toBe(200);
    const body = JSON.parse(json.text) as { collection_id: string; name: string; files: { position: number; file_id: string; filename: string }[] };
    expect(body.collection_id).toBe(collectionId);
    expect(body.name).toBe(COLLECTION);
    expect(body.files.map((f) => f.file_id)).toEqual(wantIds);
    expect(body.files.map((f) => f.position)).toEqual([1, 2, 3]);

    const m3u = await fetchInPage(page, await href("Export M3U8"));
    expect(m3u.status).toBe(200);
    const mlines = m3u.text.trim().split("\n");
    expect(mlines[0]).toBe("#EXTM3U");
    expect(mlines.filter((l) => l.startsWith("#EXTINF:")).map((l) => l.split(",").slice(1).join(","))).toEqual(order);
    expect(mlines.filter((l) => !l.startsWith("#"))).toEqual(wantIds.map((id) => `${server.webUrl}/api/files/${id}/audio`));

    const zip = await fetchInPage(page, await href("Download zip"));
    expect(zip.status).toBe(200);
    expect(zip.type).toBe("application/zip");
    expect(zip.head).toEqual([0x50, 0x4b, 0x03, 0x04]);
    expect(zip.size).toBeGreaterThan(1000);
  });

  test("axe finds nothing serious on /collections and /collections/:id, desktop and phone", async () => {
    for (const [viewport, suffix] of [
      [DESKTOP, ""],
      [PHONE, "-phone"],
    ] as const) {
      const o = await openPage(browser, server.webUrl, viewport);
      try {
        await o.page.goto("/collections");
        await expect.poll(() => o.page.getByRole("list", { name: "Collections" }).getByRole("link").count()).toBe(1);
        expect(await seriousA11yViolations(o.page), `/collections ${viewport.width}px`).toEqual([]);
        await o.page.goto(`/collections/${collectionId}`);
        await expect.poll(() => shownOrder(o.page)).toHaveLength(3);
        expect(await seriousA11yViolations(o.page), `/collections/:id ${viewport.width}px`).toEqual([]);
        // Nothing wider than the viewport.
        const overflow = await o.page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
        expect(overflow, `horizontal overflow at ${viewport.width}px`).toBeLessThanOrEqual(0);
        await saveScreenshot(o.page, `collections${suffix}.png`);
        // The add dialog too.
        await o.page.goto("/");
        await o.page.getByRole("checkbox", { name: "Select alpha.wav", exact: true }).check();
        await o.page.getByRole("toolbar", { name: "File actions" }).getByRole("button", { name: "Add to collection" }).click();
        await expect.poll(() => o.page.getByRole("dialog").getByLabel("Collection", { exact: true }).count()).toBe(1);
        expect(await seriousA11yViolations(o.page), `add dialog ${viewport.width}px`).toEqual([]);
      } finally {
        await o.close();
      }
    }
  });

  test("a collection renamed in the UI keeps its new name across a reload, as GetCollection says", async () => {
    await page.goto("/collections");
    const list = page.getByRole("list", { name: "Collections" });
    await expect.poll(() => list.getByRole("link", { name: COLLECTION, exact: true }).count()).toBe(1);
    await page.getByRole("button", { name: `Rename ${COLLECTION}`, exact: true }).click();
    const dialog = page.getByRole("dialog", { name: `Rename “${COLLECTION}”` });
    const field = dialog.getByLabel("New name");
    expect(await field.inputValue()).toBe(COLLECTION);
    await field.fill(RENAMED);
    await field.press("Enter");
    await expect.poll(() => dialog.count()).toBe(0);
    await expect.poll(() => list.getByRole("link", { name: RENAMED, exact: true }).count()).toBe(1);
    currentName = RENAMED;
    expect((await server.audio.getCollection({ collectionId })).name).toBe(RENAMED);

    await page.reload();
    await expect.poll(() => list.getByRole("link", { name: RENAMED, exact: true }).count()).toBe(1);
    expect(await list.getByRole("link", { name: COLLECTION, exact: true }).count()).toBe(0);
    await list.getByRole("link", { name: RENAMED, exact: true }).click();
    await expect.poll(() => page.getByRole("heading", { level: 1 }).textContent()).toBe(RENAMED);
    expect((await server.audio.getCollection({ collectionId })).name).toBe(RENAMED);
  });

  test("a file is removed, then the collection is deleted after confirming", async () => {
    await page.goto(`/collections/${collectionId}`);
    await expect.poll(() => shownOrder(page)).toHaveLength(3);
    const order = await nativeOrder();
    await page.getByRole("button", { name: `Remove ${order[1]}`, exact: true }).click();
    await expect.poll(() => nativeOrder()).toEqual([order[0], order[2]]);
    await expect.poll(() => shownOrder(page)).toEqual([order[0], order[2]]);
    // The file stays in the library.
    expect((await server.audio.getFile({ fileId: ids.get(order[1])! })).filename).toBe(order[1]);

    await page.goto("/collections");
    await page.getByRole("button", { name: `Delete ${currentName}` }).click();
    const dialog = page.getByRole("dialog");
    // Cancel first: nothing happens.
    await dialog.getByRole("button", { name: "Cancel" }).click();
    expect((await server.audio.listCollections({})).collections).toHaveLength(1);
    await page.getByRole("button", { name: `Delete ${currentName}` }).click();
    await dialog.getByRole("button", { name: "Confirm delete" }).click();
    await expect.poll(async () => (await server.audio.listCollections({})).collections.length).toBe(0);
    await expect.poll(() => page.getByRole("list", { name: "Collections" }).count()).toBe(0);
    expect(await page.getByTestId("collection-count").textContent()).toBe("0 collections");
  });
});
