// The search view against a real server with the tiny CLAP fixture. Its
// rankings are arbitrary but deterministic, so the UI is compared with the
// native RPCs (same query, filters and options), never with expectations
// about meaning.
import { readFileSync } from "node:fs";
import { cpus } from "node:os";
import { fromBinary } from "@bufbuild/protobuf";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { AudioFormat } from "../src/gen/traum/v1/audio_pb";
import { SearchByAudioClipRequestSchema, SearchService, type SearchResponse } from "../src/gen/traum/v1/search_pb";
import { MAX_WAVEFORM_REQUESTS } from "../src/search/waveforms";
import { MAX_RECORD_SECONDS } from "../src/search/recorder";
import {
  DESKTOP,
  PHONE,
  fixture,
  grpcWebMessages,
  launchBrowser,
  openPage,
  saveScreenshot,
  seriousA11yViolations,
  startServer,
  uploadNative,
  waitForReady,
  wav,
  wavInfo,
  type OpenedPage,
  type TraumServer,
} from "./harness";

const PAGE = 50;

let server: TraumServer;
let browser: Browser;
let opened: OpenedPage;
let search: Client<typeof SearchService>;
const names = new Map<string, string>();

/** Runs the tasks, at most `limit` at once; the results in the tasks' order. */
async function allLimited<T>(tasks: (() => Promise<T>)[], limit: number): Promise<T[]> {
  const out: T[] = new Array(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const i = next++;
      out[i] = await tasks[i]();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return out;
}
const figures: string[] = [];

beforeAll(async () => {
  server = await startServer({ model: true, workers: 4 });
  search = createClient(SearchService, createGrpcTransport({ baseUrl: server.nativeUrl }));
  // 56 files: 52 generated WAVs (1 to 12 s, tagged drums / bass / pad), and
  // the FLAC, MP3, Ogg and AIFF fixtures (tagged drums).
  const uploads: (() => Promise<{ fileId: string; name: string }>)[] = [];
  for (let i = 0; i < 52; i++) {
    const name = `tone ${String(i).padStart(2, "0")}.wav`;
    const tags = [i % 3 === 0 ? "drums" : i % 3 === 1 ? "bass" : "pad", ...(i % 4 === 0 ? ["loop"] : [])];
    const seconds = i < 4 ? 12 : 1 + (i % 5);
    uploads.push(() =>
      uploadNative(server.audio, name, wav(seconds, { rate: 22_050, freq: 110 + i * 37, seed: i + 1 }), tags).then((r) => ({ fileId: r.fileId, name })),
    );
  }
  for (const f of ["tone.flac", "tone.mp3", "tone.ogg", "tone.aiff"]) {
    uploads.push(() => uploadNative(server.audio, f, fixture(f), ["drums"]).then((r) => ({ fileId: r.fileId, name: f })));
  }
  // At most 8 at a time: the server caps a caller's uploads in flight
  // (--max-concurrent-uploads, 16 by default) and refuses the rest.
  for (const u of await allLimited(uploads, 8)) {
    names.set(u.fileId, u.name);
    await waitForReady(server.audio, u.fileId, 120_000);
  }
  browser = await launchBrowser();
  opened = await openPage(browser, server.webUrl);
}, 300_000);

afterAll(async () => {
  if (figures.length) console.log(`\n== search figures ==\n${figures.join("\n")}\n`);
  if (opened?.errors.length) console.log(`browser errors:\n  ${opened.errors.slice(0, 20).join("\n  ")}`);
  await opened?.close();
  await browser?.close();
  await server?.stop();
});

function ids(res: SearchResponse): string[] {
  return res.hits.map((h) => h.file!.fileId);
}

async function uiIds(page: Page): Promise<string[]> {
  return page.locator("ol.hits > li").evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.fileId ?? ""));
}

/** Waits until the UI lists exactly `want` (ids in order). */
async function expectHits(page: Page, want: string[], timeout = 20_000) {
  await expect.poll(() => uiIds(page), { timeout, interval: 100 }).toEqual(want);
}

async function textSearch(page: Page, query: string) {
  const box = page.getByRole("searchbox", { name: "Search" });
  await box.fill(query);
  await box.press("Enter");
  await expect.poll(() => new URL(page.url()).searchParams.get("q")).toBe(query);
}

async function blur(page: Page) {
  await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur?.());
}

async function audioState(page: Page) {
  return page.getByTestId("search-audio").evaluate((a: HTMLAudioElement) => ({ t: a.currentTime, paused: a.paused, src: a.getAttribute("src") }));
}

describe("search view", () => {
  test("text search and tag + format chips match native SearchByText; the URL round-trips", async () => {
    const { page } = opened;
    await page.goto("/");
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Search" }).click();
    await expect.poll(() => page.getByRole("heading", { level: 1 }).textContent()).toBe("Search");
    // The nav order: Library, Search, Collections, System.
    expect(await page.getByRole("navigation", { name: "Main" }).getByRole("link").allTextContents()).toEqual(["Library", "Search", "Collections", "System"]);

    await textSearch(page, "bright tone");
    const plain = await search.searchByText({ query: "bright tone", options: { limit: PAGE } });
    expect(plain.hits.length).toBe(PAGE);
    await expectHits(page, ids(plain));

    // Tag chip.
    const tagBox = page.getByRole("textbox", { name: "All of these tags" });
    await tagBox.fill("drums");
    await tagBox.press("Enter");
    await page.getByRole("button", { name: "Apply filters" }).click();
    const tagged = await search.searchByText({ query: "bright tone", filters: { tagsAll: ["drums"] }, options: { limit: PAGE } });
    expect(tagged.hits.length).toBeGreaterThan(0);
    await expectHits(page, ids(tagged));
    expect(await page.getByRole("list", { name: "Active filters" }).getByText("Tag: drums").count()).toBe(1);

    // Format chip, on top of the tag.
    await page.getByRole("group", { name: "Formats" }).getByLabel("WAV").check();
    await page.getByRole("button", { name: "Apply filters" }).click();
    const both = await search.searchByText({
      query: "bright tone",
      filters: { tagsAll: ["drums"], formats: [AudioFormat.WAV] },
      options: { limit: PAGE },
    });
    await expectHits(page, ids(both));
    expect(ids(both)).not.toEqual(ids(tagged));
    for (const id of ids(both)) expect(names.get(id)).toMatch(/\.wav$/);

    // Reload gives the same hits; so does a fresh page with the shared link.
    const url = page.url();
    expect(url).toContain("all=drums");
    expect(url).toContain("fmt=wav");
    await page.reload();
    await expectHits(page, ids(both));
    const other = await openPage(browser, server.webUrl);
    try {
      await other.page.goto(url);
      await expectHits(other.page, ids(both));
    } finally {
      await other.close();
    }

    // Removing the tag chip leaves the format filter (checked against the RPC).
    await page.getByRole("button", { name: "Remove filter Tag: drums" }).click();
    const wavOnly = await search.searchByText({ query: "bright tone", filters: { formats: [AudioFormat.WAV] }, options: { limit: PAGE } });
    await expectHits(page, ids(wavOnly));
    // Back and forward.
    await page.goBack();
    await expectHits(page, ids(both));
    await page.goForward();
    await expectHits(page, ids(wavOnly));
  });

  test("suggestions and recent searches are keyboard-selectable", async () => {
    const { page } = opened;
    await page.goto("/search");
    const box = page.getByRole("searchbox", { name: "Search" });
    await blur(page);
    await page.keyboard.press("/");
    await expect.poll(() => box.evaluate((el) => el === document.activeElement)).toBe(true);
    await page.keyboard.type("dru");
    const list = page.getByRole("listbox", { name: "Suggestions" });
    await expect.poll(() => list.getByRole("option").allTextContents(), { timeout: 10_000 }).toContainEqual(expect.stringContaining("drums"));
    const options = await list.getByRole("option").allTextContents();
    const idx = options.findIndex((o) => o.startsWith("drums"));
    for (let i = 0; i <= idx; i++) await page.keyboard.press("ArrowDown");
    expect(await box.getAttribute("aria-activedescendant")).toBeTruthy();
    await page.keyboard.press("Enter");
    await expect.poll(() => new URL(page.url()).searchParams.get("q")).toBe("drums");
    const res = await search.searchByText({ query: "drums", options: { limit: PAGE } });
    await expectHits(page, ids(res));
    // Recent searches: "bright tone" from the first test is offered for "bri".
    await box.fill("bri");
    await expect.poll(() => list.getByRole("option").allTextContents()).toContainEqual(expect.stringContaining("bright tone"));
    await page.keyboard.press("Escape");
    expect(await list.isHidden()).toBe(true);
  });

  test("min above max is refused in the UI; sent anyway, the server's INVALID_ARGUMENT is shown", async () => {
    const { page } = opened;
    await page.goto("/search?q=tone");
    await page.getByLabel("Minimum BPM").fill("130");
    await page.getByLabel("Maximum BPM").fill("120");
    await page.getByRole("button", { name: "Apply filters" }).click();
    await expect.poll(() => page.getByTestId("filter-validation").textContent()).toContain("Minimum BPM must not be above the maximum BPM.");
    expect(new URL(page.url()).searchParams.get("bmin")).toBeNull();
    await page.goto("/search?q=tone&bmin=130&bmax=120");
    const err = page.getByTestId("search-error");
    await expect.poll(() => err.textContent()).toMatch(/^Invalid argument: /);
    console.log(`search: server says "${await err.textContent()}"`);
  });

  test("an example file searches like native SearchByAudioClip; big files get a message", async () => {
    const { page } = opened;
    await page.goto("/search?fmt=wav");
    const clip = wav(3, { rate: 22_050, freq: 523, seed: 999 });
    await page.getByLabel("Search by example file").setInputFiles({ name: "example.wav", mimeType: "audio/wav", buffer: clip });
    const res = await search.searchByAudioClip({ audio: clip, filters: { formats: [AudioFormat.WAV] }, options: { limit: PAGE } });
    expect(res.hits.length).toBeGreaterThan(0);
    await expectHits(page, ids(res));
    expect(new URL(page.url()).searchParams.get("src")).toBe("clip");
    expect(await page.getByTestId("example-note").textContent()).toContain("cannot live in a URL");

    await page.getByLabel("Search by example file").setInputFiles({ name: "huge.wav", mimeType: "audio/wav", buffer: Buffer.alloc(20_000_001) });
    await expect.poll(() => page.getByRole("alert").filter({ hasText: "huge.wav" }).textContent()).toContain("Use a shorter clip");
  });

  test("more like this on a hit equals native SearchSimilar; the file view links to it", async () => {
    const { page } = opened;
    await page.goto("/search?q=warm");
    const first = await search.searchByText({ query: "warm", options: { limit: PAGE } });
    await expectHits(page, ids(first));
    const target = first.hits[2].file!;
    await page.getByRole("button", { name: `More like this: ${target.filename}` }).click();
    await expect.poll(() => new URL(page.url()).searchParams.get("similar")).toBe(target.fileId);
    const sim = await search.searchSimilar({ fileId: target.fileId, options: { limit: PAGE } });
    await expectHits(page, ids(sim));

    await page.goto(`/files/${target.fileId}`);
    await page.getByRole("button", { name: "More like this", exact: true }).click();
    await expect.poll(() => new URL(page.url()).pathname).toBe("/search");
    await expectHits(page, ids(sim));
  });

  test("a range shift-dragged on the file's waveform searches like native SearchSimilar with start/end", async () => {
    const { page } = opened;
    const id = [...names].find(([, n]) => n === "tone 00.wav")![0];
    await page.goto(`/files/${id}`);
    const slider = page.getByRole("slider", { name: "Seek" });
    await expect.poll(async () => Number(await slider.getAttribute("aria-valuemax"))).toBeGreaterThan(11);
    const box = (await slider.boundingBox())!;
    await page.keyboard.down("Shift");
    await page.mouse.move(box.x + box.width * 0.25, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.4, box.y + box.height / 2, { steps: 4 });
    await page.mouse.move(box.x + box.width * 0.5, box.y + box.height / 2, { steps: 4 });
    await page.mouse.up();
    await page.keyboard.up("Shift");
    await expect.poll(() => page.getByTestId("selection-range").textContent()).toMatch(/^Selected 0:0[23]–0:0[56]$/);
    await page.getByRole("button", { name: "More like the selection" }).click();
    await expect.poll(() => new URL(page.url()).searchParams.get("similar")).toBe(id);
    const q = new URL(page.url()).searchParams;
    const start = Number(q.get("start"));
    const end = Number(q.get("end"));
    expect(start).toBeGreaterThan(2.5);
    expect(end).toBeLessThan(6.5);
    const res = await search.searchSimilar({ fileId: id, startSeconds: start, endSeconds: end, options: { limit: PAGE } });
    expect(res.hits.length).toBeGreaterThan(0);
    await expectHits(page, ids(res));
    figures.push(`similar range: ${start}–${end} s of tone 00.wav, ${res.hits.length} hits`);
  });

  test("Play starts at the segment; loop stays in it; one player, announced", async () => {
    const { page } = opened;
    await page.goto("/search?q=long+tones&dmin=10");
    const res = await search.searchByText({ query: "long tones", filters: { minDurationSeconds: 10 }, options: { limit: PAGE } });
    expect(res.hits.length).toBeGreaterThan(1);
    await expectHits(page, ids(res));
    const hit = res.hits[0];
    const name = hit.file!.filename;
    await page.getByRole("button", { name: `Play ${name}`, exact: true }).click();
    const started = await expect
      .poll(async () => {
        const s = await audioState(page);
        return !s.paused && s.t > 0 ? s : undefined;
      }, { timeout: 10_000, interval: 20 })
      .toBeDefined();
    void started;
    const s0 = await audioState(page);
    expect(s0.src).toBe(`/api/files/${hit.file!.fileId}/audio`);
    expect(Math.abs(s0.t - hit.segmentStartSeconds)).toBeLessThan(0.3);
    const li = page.locator(`ol.hits > li[data-file-id="${hit.file!.fileId}"]`);
    expect(await li.getAttribute("aria-current")).toBe("true");
    expect(await li.getByText("Playing", { exact: true }).count()).toBe(1);
    expect(await page.getByTestId("player-announcer").textContent()).toMatch(new RegExp(`^Playing ${name.replace(/[.]/g, "\\.")} from \\d+:\\d\\d$`));
    figures.push(`play: segment ${hit.segmentStartSeconds.toFixed(2)}–${hit.segmentEndSeconds.toFixed(2)} s, first currentTime ${s0.t.toFixed(3)} s`);

    // Only one player: starting the second hit stops the first.
    const second = res.hits[1];
    await page.getByRole("button", { name: `Play ${second.file!.filename}`, exact: true }).click();
    await expect.poll(async () => (await audioState(page)).src).toBe(`/api/files/${second.file!.fileId}/audio`);
    expect(await page.locator("audio").count()).toBe(1);
    expect(await li.getAttribute("aria-current")).toBeNull();

    // Loop the first hit's segment: jump close to its end and watch.
    await page.getByRole("button", { name: `Play ${name}`, exact: true }).click();
    const loop = page.getByRole("button", { name: "Loop segment" });
    await loop.click();
    expect(await loop.getAttribute("aria-pressed")).toBe("true");
    const [a, b] = [hit.segmentStartSeconds, hit.segmentEndSeconds];
    await page.getByTestId("search-audio").evaluate((el: HTMLAudioElement, t: number) => (el.currentTime = t), Math.max(a, b - 0.6));
    const samples: number[] = [];
    for (let i = 0; i < 40; i++) {
      samples.push((await audioState(page)).t);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(Math.min(...samples)).toBeGreaterThanOrEqual(a - 0.06);
    expect(Math.max(...samples)).toBeLessThanOrEqual(b + 0.15);
    // It wrapped around to the start at least once.
    expect(samples.some((t, i) => i > 0 && t < samples[i - 1] - 0.2)).toBe(true);
    figures.push(`loop: segment ${a.toFixed(2)}–${b.toFixed(2)} s, sampled ${Math.min(...samples).toFixed(3)}–${Math.max(...samples).toFixed(3)} s`);
    await loop.click();

    // A click on the mini waveform seeks within that hit.
    const wave = li.getByTestId("mini-waveform");
    const box = await wave.boundingBox();
    await wave.click({ position: { x: box!.width * 0.75, y: box!.height / 2 } });
    await expect.poll(async () => Math.abs((await audioState(page)).t - hit.file!.durationSeconds * 0.75)).toBeLessThan(0.5);
    await page.getByRole("button", { name: `Pause ${name}`, exact: true }).click();
  });

  test("keyboard audition without a mouse", async () => {
    const { page } = opened;
    await page.goto("/search?q=keys&dmin=10");
    const res = await search.searchByText({ query: "keys", filters: { minDurationSeconds: 10 }, options: { limit: PAGE } });
    await expectHits(page, ids(res));
    await blur(page);
    const current = () => page.locator("ol.hits > li[aria-current='true']").getAttribute("data-index");
    await page.keyboard.press("ArrowDown");
    await expect.poll(current).toBe("0");
    await expect.poll(async () => (await audioState(page)).paused).toBe(false);
    await page.keyboard.press("ArrowDown");
    await expect.poll(current).toBe("1");
    expect((await audioState(page)).src).toBe(`/api/files/${res.hits[1].file!.fileId}/audio`);
    await page.keyboard.press("ArrowUp");
    await expect.poll(current).toBe("0");
    await page.keyboard.press("k");
    await expect.poll(async () => (await audioState(page)).paused).toBe(true);
    // J three times reaches the start (12 s files), L goes 5 s on, J back.
    for (let i = 0; i < 3; i++) await page.keyboard.press("j");
    await expect.poll(async () => (await audioState(page)).t).toBeLessThan(0.05);
    await page.keyboard.press("l");
    await expect.poll(async () => Math.abs((await audioState(page)).t - 5)).toBeLessThan(0.05);
    await page.keyboard.press("j");
    await expect.poll(async () => (await audioState(page)).t).toBeLessThan(0.05);
    await page.keyboard.press(" ");
    await expect.poll(async () => (await audioState(page)).paused).toBe(false);
    await page.keyboard.press(" ");
    await expect.poll(async () => (await audioState(page)).paused).toBe(true);
    // "?" lists every shortcut; Escape closes it.
    await page.keyboard.press("?");
    const dialog = page.getByRole("dialog", { name: "Keyboard shortcuts" });
    await dialog.waitFor();
    const rows = await dialog.locator("tbody tr").allTextContents();
    expect(rows.length).toBe(8);
    await page.keyboard.press("Escape");
    await expect.poll(() => dialog.count()).toBe(0);
    // Typing in the search box does not audition.
    await page.getByRole("searchbox", { name: "Search" }).focus();
    await page.keyboard.type("jkl ");
    expect((await audioState(page)).paused).toBe(true);
  });

  test("50 hits render (response to first paint, reported for 5 fresh loads); waveforms wait for the viewport, 4 at a time; Load more appends the next page", async () => {
    const { page } = opened;
    const RUNS = 5;
    const runs: { commit: number; paint: number }[] = [];
    let p1: SearchResponse | undefined;
    for (let run = 0; run < RUNS; run++) {
      // A fresh document each time, as after following a shared link.
      await page.goto("about:blank");
      await page.goto("/search?q=many");
      p1 ??= await search.searchByText({ query: "many", options: { limit: PAGE } });
      await expectHits(page, ids(p1));
      const m = await page.waitForFunction(() => {
        const get = (name: string) => performance.getEntriesByName(name, "measure").at(-1);
        const paint = get("traum:hits-render");
        const commit = get("traum:hits-commit");
        if (!paint || !commit) return undefined;
        // GetWaveform calls that started before the hits were painted.
        const early = performance
          .getEntriesByType("resource")
          .filter((e) => e.name.endsWith("/traum.v1.AudioService/GetWaveform") && e.startTime < paint.startTime + paint.duration).length;
        return { commit: commit.duration, paint: paint.duration, early };
      });
      const r = (await m.jsonValue())!;
      expect(r.early, "no waveform is fetched before the hits are on screen").toBe(0);
      expect(r.paint).toBeGreaterThanOrEqual(r.commit);
      runs.push({ commit: r.commit, paint: r.paint });
    }
    expect(p1!.hits.length).toBe(PAGE);
    expect(p1!.nextPageToken).not.toBe("");
    const sorted = runs.map((r) => r.paint).sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)];
    const line =
      `render: response to ${PAGE} hits painted, ${RUNS} fresh loads: ${runs.map((r) => r.paint.toFixed(1)).join(", ")} ms ` +
      `(median ${median.toFixed(1)}, spread ${sorted[0].toFixed(1)}–${sorted[sorted.length - 1].toFixed(1)}); ` +
      `in the DOM after ${runs.map((r) => r.commit.toFixed(1)).join(", ")} ms; ${cpus().length} cores, headless Chromium`;
    figures.push(line);
    console.log(`search: ${line}`);

    // Only the hits near the viewport fetched a waveform; scrolling to the
    // last one fetches its own, and never more than MAX_WAVEFORM_REQUESTS at once.
    const loaded = page.locator("[data-testid='mini-waveform'][data-loaded='true']");
    await expect.poll(() => loaded.count()).toBeGreaterThan(0);
    expect(await loaded.count()).toBeLessThan(PAGE);
    const last = page.locator("ol.hits > li").last();
    await last.scrollIntoViewIfNeeded();
    await expect.poll(() => last.getByTestId("mini-waveform").getAttribute("data-loaded")).toBe("true");
    const overlap = await page.evaluate(() => {
      const xs = performance
        .getEntriesByType("resource")
        .filter((e) => e.name.endsWith("/traum.v1.AudioService/GetWaveform"))
        .map((e) => [e.startTime, (e as PerformanceResourceTiming).responseEnd] as const);
      return { n: xs.length, most: Math.max(...xs.map(([s]) => xs.filter(([s2, e2]) => s2 <= s && s < e2).length)) };
    });
    expect(overlap.n).toBeGreaterThan(1);
    expect(overlap.most).toBeLessThanOrEqual(MAX_WAVEFORM_REQUESTS);
    figures.push(`waveforms: ${overlap.n} GetWaveform calls after scrolling to the last hit, at most ${overlap.most} at once`);

    const p2 = await search.searchByText({ query: "many", options: { limit: PAGE, pageToken: p1!.nextPageToken } });
    await page.getByRole("button", { name: "Load more" }).click();
    await expectHits(page, [...ids(p1!), ...ids(p2)]);
  });

  test("each export format parses and lists exactly the displayed hits", async () => {
    const { page } = opened;
    await page.goto("/search?q=export&all=drums");
    const res = await search.searchByText({ query: "export", filters: { tagsAll: ["drums"] }, options: { limit: PAGE } });
    await expectHits(page, ids(res));
    const want = ids(res);
    const origin = server.webUrl;
    const grab = async (format: string) => {
      await page.getByLabel("Export format").selectOption(format);
      const [dl] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Export", exact: true }).click()]);
      return { name: dl.suggestedFilename(), text: readFileSync((await dl.path())!, "utf8") };
    };
    const csv = await grab("csv");
    expect(csv.name).toBe("traum-search.csv");
    const lines = csv.text.trimEnd().split("\r\n");
    expect(lines[0].split(",").slice(0, 6)).toEqual(["id", "filename", "score", "cosine", "segment_start_seconds", "segment_end_seconds"]);
    expect(lines.slice(1).map((l) => l.split(",")[0])).toEqual(want);
    const json = await grab("json");
    const rows = JSON.parse(json.text) as { id: string; filename: string; score: number; segment_start_seconds: number }[];
    expect(rows.map((r) => r.id)).toEqual(want);
    rows.forEach((r, i) => {
      expect(r.filename).toBe(res.hits[i].file!.filename);
      expect(r.score).toBe(res.hits[i].score);
      expect(r.segment_start_seconds).toBe(res.hits[i].segmentStartSeconds);
    });
    const m3u = await grab("m3u8");
    const ml = m3u.text.trimEnd().split("\n");
    expect(ml[0]).toBe("#EXTM3U");
    const urls = ml.filter((l) => !l.startsWith("#"));
    expect(urls).toEqual(want.map((id) => `${origin}/api/files/${id}/audio`));
    const inf = ml.filter((l) => l.startsWith("#EXTINF:"));
    expect(inf).toEqual(res.hits.map((h) => `#EXTINF:${Math.round(h.file!.durationSeconds)},${h.file!.filename}`));
    // The URLs serve the audio.
    const r = await fetch(urls[0], { headers: { range: "bytes=0-3" } });
    expect(r.status).toBe(206);
  });

  test("copy link puts the hit's absolute audio URL on the clipboard; dragging a hit offers DownloadURL", async () => {
    const { page, context } = opened;
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: server.webUrl });
    await page.goto("/search?q=copy");
    const res = await search.searchByText({ query: "copy", options: { limit: PAGE } });
    await expectHits(page, ids(res));
    const f = res.hits[0].file!;
    const url = `${server.webUrl}/api/files/${f.fileId}/audio`;
    await page.getByRole("button", { name: `Copy link to ${f.filename}` }).click();
    await expect.poll(() => page.getByTestId("toasts").textContent()).toContain(`Link to ${f.filename} copied`);
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(url);
    const data = await page.locator(`ol.hits > li[data-file-id="${f.fileId}"]`).evaluate((li) => {
      const dt = new DataTransfer();
      li.dispatchEvent(new DragEvent("dragstart", { bubbles: true, cancelable: true, dataTransfer: dt }));
      return { download: dt.getData("DownloadURL"), uri: dt.getData("text/uri-list") };
    });
    const mime = ({ 1: "audio/wav", 2: "audio/aiff", 3: "audio/flac", 4: "audio/mpeg", 5: "audio/ogg", 6: "audio/mp4" } as Record<number, string>)[f.format];
    expect(data.download).toBe(`${mime}:${f.filename}:${url}`);
    expect(data.uri).toBe(url);
  });

  test("no serious a11y violations on the search view (desktop and phone); screenshots", async () => {
    for (const [viewport, shot] of [
      [DESKTOP, "search.png"],
      [PHONE, "search-phone.png"],
    ] as const) {
      const o = await openPage(browser, server.webUrl, viewport);
      try {
        await o.page.goto("/search?q=tone&all=drums");
        await o.page.locator("ol.hits > li").first().waitFor();
        // Waveforms load when a hit comes near the viewport (on a phone the
        // hits start below it; its header is not sticky, so scrolling back
        // leaves the full-page screenshot intact).
        if (viewport === PHONE) await o.page.locator("ol.hits > li").first().scrollIntoViewIfNeeded();
        await o.page.locator("[data-testid='mini-waveform'][data-loaded='true']").first().waitFor();
        await o.page.locator("ol.hits > li").nth(0).getByRole("button", { name: /^Mark .* good$/ }).click();
        await o.page.evaluate(() => window.scrollTo(0, 0));
        await o.page.waitForFunction(() => window.scrollY === 0);
        const v = await seriousA11yViolations(o.page);
        expect(v, v.join("\n")).toEqual([]);
        await saveScreenshot(o.page, shot);
      } finally {
        await o.close();
      }
    }
  });

  test("refine equals native SearchByText with the same refine (filters kept)", async () => {
    const { page } = opened;
    await page.goto("/search?q=refine+me&fmt=wav");
    const res = await search.searchByText({ query: "refine me", filters: { formats: [AudioFormat.WAV] }, options: { limit: PAGE } });
    await expectHits(page, ids(res));
    const good = res.hits[3].file!;
    const bad = res.hits[0].file!;
    await page.getByRole("button", { name: `Mark ${good.filename} good` }).click();
    await page.getByRole("button", { name: `Mark ${bad.filename} bad` }).click();
    expect(await page.getByRole("button", { name: `Mark ${good.filename} good` }).getAttribute("aria-pressed")).toBe("true");
    await page.getByRole("button", { name: "Refine", exact: true }).click();
    await expect.poll(() => new URL(page.url()).searchParams.getAll("good")).toEqual([good.fileId]);
    expect(new URL(page.url()).searchParams.getAll("bad")).toEqual([bad.fileId]);
    expect(new URL(page.url()).searchParams.getAll("fmt")).toEqual(["wav"]);
    const refined = await search.searchByText({
      query: "refine me",
      filters: { formats: [AudioFormat.WAV] },
      options: { limit: PAGE, refine: { goodFileIds: [good.fileId], badFileIds: [bad.fileId] } },
    });
    await expectHits(page, ids(refined));
    // The server leaves the bad file out (when it supports refine).
    expect(ids(refined)).not.toContain(bad.fileId);
    await page.reload();
    await expectHits(page, ids(refined));
  });
});

describe("microphone", () => {
  let mic: Browser | undefined;
  afterAll(async () => {
    await mic?.close();
  });
  test("Record with the fake capture device sends a WAV the server accepts and shows hits", async () => {
    mic = await launchBrowser(["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]);
    const o = await openPage(mic, server.webUrl);
    try {
      await o.context.grantPermissions(["microphone"], { origin: server.webUrl });
      await o.page.goto("/search");
      await o.page.getByRole("button", { name: "Record" }).click();
      await expect.poll(() => o.page.getByTestId("recording-status").textContent(), { timeout: 10_000 }).toMatch(/Recording… [1-9]/);
      await o.page.getByRole("button", { name: "Stop" }).click();
      await o.page.locator("ol.hits > li").first().waitFor({ timeout: 30_000 });
      expect(await o.page.getByTestId("search-error").count()).toBe(0);
      expect(new URL(o.page.url()).searchParams.get("src")).toBe("recording");
      const n = await o.page.locator("ol.hits > li").count();
      expect(n).toBeGreaterThan(0);
      const heading = await o.page.getByRole("heading", { level: 2, name: /Sounds like Recording/ }).textContent();
      figures.push(`microphone: ${heading}, ${n} hits`);
      expect(o.errors.filter((e) => !e.includes("favicon"))).toEqual([]);
    } finally {
      await o.close();
    }
  });

  test(`a recording stops by itself at ${MAX_RECORD_SECONDS} s and sends at most ${MAX_RECORD_SECONDS} s of WAV`, { timeout: 90_000 }, async () => {
    mic ??= await launchBrowser(["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]);
    const o = await openPage(mic, server.webUrl);
    try {
      await o.context.grantPermissions(["microphone"], { origin: server.webUrl });
      const bodies: Buffer[] = [];
      o.page.on("request", (r) => {
        if (r.url().endsWith("/traum.v1.SearchService/SearchByAudioClip")) bodies.push(r.postDataBuffer()!);
      });
      await o.page.goto("/search");
      const t0 = Date.now();
      await o.page.getByRole("button", { name: "Record" }).click();
      await o.page.getByRole("button", { name: "Stop" }).waitFor();
      // Nobody presses Stop: the Record button comes back on its own.
      await o.page.getByRole("button", { name: "Record" }).waitFor({ timeout: MAX_RECORD_SECONDS * 1000 + 15_000 });
      const took = (Date.now() - t0) / 1000;
      expect(await o.page.getByTestId("recording-status").count()).toBe(0);
      await o.page.locator("ol.hits > li").first().waitFor({ timeout: 30_000 });
      expect(await o.page.getByTestId("search-error").count()).toBe(0);

      expect(bodies).toHaveLength(1);
      const [msg] = grpcWebMessages(bodies[0]);
      const req = fromBinary(SearchByAudioClipRequestSchema, msg);
      const info = wavInfo(req.audio);
      expect([info.channels, info.bits]).toEqual([1, 16]);
      expect(info.seconds).toBeLessThanOrEqual(MAX_RECORD_SECONDS);
      // It ran to the limit rather than stopping early.
      expect(info.seconds).toBeGreaterThan(MAX_RECORD_SECONDS - 0.5);
      const heading = await o.page.getByRole("heading", { level: 2, name: /Sounds like Recording/ }).textContent();
      expect(heading).toBe(`Sounds like Recording (${info.seconds.toFixed(1)} s)`);
      figures.push(`microphone limit: stopped by itself after ${took.toFixed(1)} s of wall time; sent ${info.seconds.toFixed(3)} s at ${info.rate} Hz (${req.audio.length} bytes)`);
      expect(o.errors.filter((e) => !e.includes("favicon"))).toEqual([]);
    } finally {
      await o.close();
    }
  });
});
