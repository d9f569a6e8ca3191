// Hits on files longer than one CLAP window (10 s in the tiny fixture model,
// as in the real one): the strip of per-window scores under the mini
// waveform, and looping a best segment that starts after 0. Each file is a
// sequence of different tones, one per window, so that its windows score
// differently; what the UI shows is compared with native SearchByText.
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { SearchService, type SearchHit, type SearchResponse } from "../src/gen/traum/v1/search_pb";
import {
  launchBrowser,
  openPage,
  saveScreenshot,
  seriousA11yViolations,
  startServer,
  toneSequence,
  uploadNative,
  waitForReady,
  wav,
  type OpenedPage,
  type TraumServer,
} from "./harness";

const WINDOW = 10;
/** 35 s: windows at 0, 10, 20 and 30 s, the last 5 s long. */
const LONG = 35;
const FILTER = { minDurationSeconds: 30 };

let server: TraumServer;
let browser: Browser;
let opened: OpenedPage;
let page: Page;
let search: Client<typeof SearchService>;
const figures: string[] = [];

beforeAll(async () => {
  server = await startServer({ model: true, workers: 2 });
  search = createClient(SearchService, createGrpcTransport({ baseUrl: server.nativeUrl }));
  const uploads = [
    ["long a.wav", [220, 880, 330, 1760]],
    ["long b.wav", [1320, 165, 660, 440]],
    ["long c.wav", [550, 990, 110, 2200]],
  ].map(([name, freqs]) =>
    uploadNative(
      server.audio,
      name as string,
      toneSequence((freqs as number[]).map((freq, i) => ({ seconds: i < 3 ? WINDOW : LONG - 3 * WINDOW, freq }))),
    ),
  );
  // Short files, which the duration filter leaves out.
  uploads.push(uploadNative(server.audio, "short.wav", wav(3, { freq: 440, seed: 3 })));
  for (const u of await Promise.all(uploads)) await waitForReady(server.audio, u.fileId, 120_000);
  browser = await launchBrowser();
  opened = await openPage(browser, server.webUrl);
  page = opened.page;
}, 300_000);

afterAll(async () => {
  if (figures.length) console.log(`\n== long-file figures ==\n${figures.join("\n")}\n`);
  if (opened?.errors.length) console.log(`browser errors:\n  ${opened.errors.slice(0, 20).join("\n  ")}`);
  await opened?.close();
  await browser?.close();
  await server?.stop();
});

function ids(res: SearchResponse): string[] {
  return res.hits.map((h) => h.file!.fileId);
}

async function expectHits(p: Page, want: string[]) {
  await expect.poll(() => p.locator("ol.hits > li").evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.fileId ?? ""))).toEqual(want);
}

function hitRow(p: Page, hit: SearchHit) {
  return p.locator(`ol.hits > li[data-file-id="${hit.file!.fileId}"]`);
}

async function audioState(p: Page) {
  return p.getByTestId("search-audio").evaluate((a: HTMLAudioElement) => ({ t: a.currentTime, paused: a.paused, src: a.getAttribute("src") }));
}

describe("long files", () => {
  test("the window strip has one cell per window, placed and shaded by the hit's windowScores from native SearchByText", async () => {
    const query = "where else does it match";
    const res = await search.searchByText({ query, filters: FILTER, options: { limit: 50 } });
    expect(res.hits).toHaveLength(3);
    await page.goto(`/search?q=${encodeURIComponent(query)}&dmin=30`);
    await expectHits(page, ids(res));
    for (const hit of res.hits) {
      expect(hit.windowStartSeconds).toEqual([0, 10, 20, 30]);
      expect(hit.windowScores).toHaveLength(4);
      const row = hitRow(page, hit);
      await row.scrollIntoViewIfNeeded();
      const strip = row.getByTestId("window-strip");
      await strip.waitFor();
      const cells = await strip.locator(".window-cell").evaluateAll((els) => {
        const box = els[0].parentElement!.getBoundingClientRect();
        return els.map((el) => {
          const r = el.getBoundingClientRect();
          return {
            start: Number((el as HTMLElement).dataset.start),
            score: Number((el as HTMLElement).dataset.score),
            x: (r.left - box.left) / box.width,
            w: r.width / box.width,
            opacity: Number(getComputedStyle(el).opacity),
          };
        });
      });
      expect(cells.map((c) => c.start)).toEqual(hit.windowStartSeconds);
      expect(cells.map((c) => c.score)).toEqual(hit.windowScores);
      const d = hit.file!.durationSeconds;
      cells.forEach((c, i) => {
        const end = i + 1 < cells.length ? hit.windowStartSeconds[i + 1] : d;
        expect(c.x).toBeCloseTo(hit.windowStartSeconds[i] / d, 2);
        expect(c.w).toBeCloseTo((end - hit.windowStartSeconds[i]) / d, 2);
      });
      // Brightest where the file matches best, faintest where worst.
      const best = hit.windowScores.indexOf(Math.max(...hit.windowScores));
      const worst = hit.windowScores.indexOf(Math.min(...hit.windowScores));
      expect(cells[best].opacity).toBe(1);
      expect(cells[worst].opacity).toBeCloseTo(0.15, 5);
      // The same in words for screen readers: the three best windows, best first.
      const words = await row.getByTestId("window-scores").textContent();
      const top3 = [...hit.windowScores].sort((a, b) => b - a).slice(0, 3);
      expect([...words!.matchAll(/\((-?\d+\.\d\d)\)/g)].map((m) => m[1])).toEqual(top3.map((x) => x.toFixed(2)));
      // The best segment is one of the windows.
      expect(hit.windowStartSeconds).toContain(hit.segmentStartSeconds);
    }
    figures.push(
      `window strip: ${res.hits.map((h) => `${h.file!.filename} [${h.windowScores.map((x) => x.toFixed(3)).join(", ")}]`).join("; ")}`,
    );
    await page.evaluate(() => window.scrollTo(0, 0));
    const v = await seriousA11yViolations(page);
    expect(v, v.join("\n")).toEqual([]);
    await saveScreenshot(page, "search-long-files.png");
  });

  test("loop on a segment that starts after 0 keeps playback within it over two loop periods", { timeout: 120_000 }, async () => {
    // The fixture model's rankings are arbitrary but deterministic: take a
    // query with a hit whose best window is not the first, preferring one
    // that also ends before the file does (so the wrap is the loop's, not
    // the end of the audio).
    let found: { query: string; res: SearchResponse; hit: SearchHit } | undefined;
    for (const query of ["loop me", "later", "pad", "kick", "bright", "dark", "noise", "tone", "warm", "bass"]) {
      const res = await search.searchByText({ query, filters: FILTER, options: { limit: 50 } });
      const later = res.hits.filter((h) => h.segmentStartSeconds >= WINDOW);
      const inside = later.find((h) => h.segmentEndSeconds < h.file!.durationSeconds - 1);
      if (inside) {
        found = { query, res, hit: inside };
        break;
      }
      if (later.length && !found) found = { query, res, hit: later[0] };
    }
    expect(found, "a hit whose best segment starts at 10 s or later").toBeDefined();
    const { query, res, hit } = found!;
    const [a, b] = [hit.segmentStartSeconds, hit.segmentEndSeconds];
    expect(b).toBeGreaterThan(a);
    await page.goto(`/search?q=${encodeURIComponent(query)}&dmin=30`);
    await expectHits(page, ids(res));
    const name = hit.file!.filename;
    await page.getByRole("button", { name: `Play ${name}`, exact: true }).click();
    await expect.poll(async () => {
      const s = await audioState(page);
      return !s.paused && s.t > 0;
    }).toBe(true);
    const s0 = await audioState(page);
    expect(s0.src).toBe(`/api/files/${hit.file!.fileId}/audio`);
    expect(Math.abs(s0.t - a)).toBeLessThan(0.3);

    const loop = page.getByRole("button", { name: "Loop segment" });
    await loop.click();
    expect(await loop.getAttribute("aria-pressed")).toBe("true");
    await expect.poll(() => page.getByTestId("now-playing").textContent()).toContain("looping");
    // Jump close to the segment's end, then let it wrap, play the whole
    // segment once more and wrap again.
    await page.getByTestId("search-audio").evaluate((el: HTMLAudioElement, t: number) => (el.currentTime = t), b - 0.8);
    const samples: number[] = [];
    let wraps = 0;
    const deadline = Date.now() + (2 * (b - a) + 10) * 1000;
    while (wraps < 2 && Date.now() < deadline) {
      const { t } = await audioState(page);
      if (samples.length && t < samples[samples.length - 1] - 0.2) wraps++;
      samples.push(t);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(wraps, `wrapped twice (samples ${samples[0]?.toFixed(2)}…${samples.at(-1)?.toFixed(2)})`).toBe(2);
    const lo = Math.min(...samples);
    const hi = Math.max(...samples);
    expect(lo).toBeGreaterThanOrEqual(a - 0.06);
    expect(hi).toBeLessThanOrEqual(b + 0.15);
    figures.push(
      `loop: "${query}" → ${name}, segment ${a.toFixed(2)}–${b.toFixed(2)} s; ${samples.length} samples over two wraps, ${lo.toFixed(3)}–${hi.toFixed(3)} s`,
    );
    await loop.click();
    await page.getByRole("button", { name: `Pause ${name}`, exact: true }).click();
  });
});
