// The detail view's player: Play advances the audio element, and a click on
// the waveform seeks to the matching time (the audio endpoint serves ranges).
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, expect, test } from "vitest";
import {
  launchBrowser,
  openPage,
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

test("Play advances the audio; a click at half the waveform seeks to half the duration", async () => {
  const seconds = 8;
  const res = await uploadNative(server.audio, "eight seconds.wav", wav(seconds, { rate: 44_100, channels: 2, freq: 220, seed: 7 }));
  await waitForReady(server.audio, res.fileId, 90_000);

  const { page } = opened;
  await page.goto(`/files/${res.fileId}`);
  await expect.poll(() => page.getByRole("heading", { level: 1 }).textContent()).toBe("eight seconds.wav");
  const audio = page.locator("audio");
  expect(await audio.getAttribute("src")).toBe(`/api/files/${res.fileId}/audio`);

  const play = page.getByRole("button", { name: "Play", exact: true });
  await play.click();
  await expect
    .poll(() => audio.evaluate((a: HTMLAudioElement) => a.currentTime), { timeout: 20_000, interval: 100 })
    .toBeGreaterThan(0.2);
  // The button now pauses.
  await expect.poll(() => page.getByRole("button", { name: "Pause", exact: true }).count()).toBe(1);
  const duration = await audio.evaluate((a: HTMLAudioElement) => a.duration);
  expect(duration).toBeGreaterThan(seconds - 0.1);
  expect(duration).toBeLessThan(seconds + 0.1);

  const slider = page.getByRole("slider", { name: "Seek" });
  expect(await slider.locator("canvas").count()).toBe(1);
  const box = await slider.boundingBox();
  expect(box && box.width).toBeGreaterThan(0);
  // Seek while playing, then read the time at once.
  await slider.click({ position: { x: box!.width / 2, y: box!.height / 2 } });
  const afterSeek = await audio.evaluate((a: HTMLAudioElement) => a.currentTime);
  expect(Math.abs(afterSeek - duration / 2)).toBeLessThan(0.05 * duration);

  // Pause; the time stays where it is, and the slider reports it.
  await page.getByRole("button", { name: "Pause", exact: true }).click();
  await expect.poll(() => page.getByRole("button", { name: "Play", exact: true }).count()).toBe(1);
  const paused = await audio.evaluate((a: HTMLAudioElement) => a.currentTime);
  expect(Math.abs(paused - duration / 2)).toBeLessThan(0.05 * duration);
  const valueNow = Number(await slider.getAttribute("aria-valuenow"));
  expect(Math.abs(valueNow - paused)).toBeLessThan(0.2);
  console.log(`playback: duration ${duration.toFixed(3)} s, after seek ${afterSeek.toFixed(3)} s, paused at ${paused.toFixed(3)} s`);
});
