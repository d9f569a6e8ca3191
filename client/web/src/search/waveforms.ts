// Overview waveforms of hits, fetched lazily (once per file per page load).
import type { WaveformLevel } from "../gen/traum/v1/audio_pb";
import type { Api } from "../api/client";

const cache = new Map<string, Promise<WaveformLevel | undefined>>();

export function overviewOf(api: Api, fileId: string): Promise<WaveformLevel | undefined> {
  let p = cache.get(fileId);
  if (!p) {
    p = api.audio.getWaveform({ fileId }).then(
      (w) => w.overview,
      () => {
        cache.delete(fileId);
        return undefined;
      },
    );
    cache.set(fileId, p);
  }
  return p;
}

/** One window's cosine with the query, at its start (as fractions of the file). */
export interface WindowScore {
  start: number;
  end: number;
  score: number;
}

/**
 * The windows of a hit as fractions of its duration, each ending where the
 * next starts (the last after its own length, at most the file's end).
 */
export function windowStrip(starts: number[], scores: number[], duration: number, windowSeconds = 10): WindowScore[] {
  if (!(duration > 0)) return [];
  return starts.map((start, i) => ({
    start: Math.min(1, start / duration),
    end: Math.min(1, (i + 1 < starts.length ? starts[i + 1] : start + windowSeconds) / duration),
    score: scores[i] ?? 0,
  }));
}

/** Peaks, the best segment shaded, a strip of window scores along the top, and a playhead (fraction or null). */
export function drawMini(
  canvas: HTMLCanvasElement,
  level: WaveformLevel | undefined,
  segment: [number, number],
  head: number | null,
  windows: WindowScore[] = [],
) {
  const ctx = canvas.getContext?.("2d");
  if (!ctx) return;
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(canvas.clientWidth * dpr));
  const h = Math.max(1, Math.round(canvas.clientHeight * dpr));
  if (canvas.width !== w) canvas.width = w;
  if (canvas.height !== h) canvas.height = h;
  const css = getComputedStyle(canvas);
  const wave = css.getPropertyValue("--wave").trim() || "#7aa2ff";
  const seg = css.getPropertyValue("--segment").trim() || "rgba(255,180,84,0.25)";
  const accent = css.getPropertyValue("--accent").trim() || "#ffb454";
  ctx.clearRect(0, 0, w, h);
  const [a, b] = segment;
  ctx.fillStyle = seg;
  ctx.fillRect(a * w, 0, Math.max(dpr, (b - a) * w), h);
  const mid = h / 2;
  const peaks = level?.peaks;
  const pairs = level ? Math.min(level.pairCount, Math.floor((peaks?.length ?? 0) / 2)) : 0;
  ctx.fillStyle = wave;
  if (peaks && pairs > 0) {
    const view = new Int8Array(peaks.buffer, peaks.byteOffset, peaks.byteLength);
    for (let x = 0; x < w; x++) {
      const i0 = Math.floor((x / w) * pairs);
      const i1 = Math.max(i0 + 1, Math.floor(((x + 1) / w) * pairs));
      let lo = 127;
      let hi = -128;
      for (let i = i0; i < i1 && i < pairs; i++) {
        lo = Math.min(lo, view[i * 2]);
        hi = Math.max(hi, view[i * 2 + 1]);
      }
      if (hi < lo) continue;
      const y1 = mid - (hi / 127) * mid;
      const y2 = mid - (lo / 127) * mid;
      ctx.fillRect(x, y1, 1, Math.max(1, y2 - y1));
    }
  } else ctx.fillRect(0, mid, w, Math.max(1, dpr));
  ctx.fillStyle = accent;
  ctx.fillRect(a * w, h - 2 * dpr, Math.max(dpr, (b - a) * w), 2 * dpr);
  // Where else the file matches: brighter is closer to its best window.
  if (windows.length > 1) {
    const lo = Math.min(...windows.map((x) => x.score));
    const hi = Math.max(...windows.map((x) => x.score));
    for (const win of windows) {
      ctx.globalAlpha = hi > lo ? 0.15 + 0.85 * ((win.score - lo) / (hi - lo)) : 1;
      ctx.fillRect(win.start * w, 0, Math.max(dpr, (win.end - win.start) * w), 4 * dpr);
    }
    ctx.globalAlpha = 1;
  }
  if (head != null) ctx.fillRect(Math.min(w - 2 * dpr, head * w), 0, 2 * dpr, h);
}
