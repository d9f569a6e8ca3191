// Overview waveforms of hits, fetched lazily (once per file per page load),
// and the pieces of a hit's mini waveform that are plain functions.
import type { WaveformLevel } from "../gen/traum/v1/audio_pb";
import type { Api } from "../api/client";

/**
 * GetWaveform calls in flight at once. A page of 50 hits would otherwise open
 * 50 requests together; the browser allows six connections per host, so the
 * player's audio request and the next search would queue behind them.
 */
export const MAX_WAVEFORM_REQUESTS = 4;

type Fetch = () => Promise<void>;

/** Runs at most `limit` fetches at a time, in the order they were asked for. */
export class FetchQueue {
  private running = 0;
  private readonly waiting: Fetch[] = [];

  constructor(private readonly limit: number) {}

  /** Fetches waiting for a free slot (not counting those in flight). */
  get queued(): number {
    return this.waiting.length;
  }

  get inFlight(): number {
    return this.running;
  }

  run<T>(fetch: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      // Through a promise, so that a fetch that throws still frees its slot.
      this.waiting.push(() => new Promise<T>((r) => r(fetch())).then(resolve, reject));
      this.next();
    });
  }

  private next() {
    while (this.running < this.limit && this.waiting.length) {
      const f = this.waiting.shift()!;
      this.running++;
      void f().finally(() => {
        this.running--;
        this.next();
      });
    }
  }
}

const queue = new FetchQueue(MAX_WAVEFORM_REQUESTS);
const cache = new Map<string, Promise<WaveformLevel | undefined>>();

export function overviewOf(api: Pick<Api, "audio">, fileId: string, q: FetchQueue = queue): Promise<WaveformLevel | undefined> {
  let p = cache.get(fileId);
  if (!p) {
    p = q.run(() => api.audio.getWaveform({ fileId })).then(
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

// One observer for every mini waveform rather than one each: a page of hits
// would otherwise create 50 observers in the same frame as its first render.
let observer: IntersectionObserver | null = null;
const pending = new Map<Element, () => void>();

/** Calls `fn` once, when `el` comes within 200 px of the viewport; returns a cancel function. */
export function whenNearViewport(el: Element, fn: () => void): () => void {
  if (typeof IntersectionObserver === "undefined") {
    fn();
    return () => undefined;
  }
  observer ??= new IntersectionObserver(
    (entries) => {
      for (const e of entries) {
        if (!e.isIntersecting) continue;
        const cb = pending.get(e.target);
        pending.delete(e.target);
        observer?.unobserve(e.target);
        cb?.();
      }
    },
    { rootMargin: "200px" },
  );
  pending.set(el, fn);
  observer.observe(el);
  return () => {
    pending.delete(el);
    observer?.unobserve(el);
  };
}

/** One window's cosine with the query, at its start (as fractions of the file). */
export interface WindowScore {
  start: number;
  end: number;
  score: number;
  /** Seconds, for the window's label. */
  startSeconds: number;
  endSeconds: number;
  /** 0.15 (the file's worst window) to 1 (its best), so the strip shows where the file matches best. */
  shade: number;
}

/**
 * The windows of a hit as fractions of its duration, each ending where the
 * next starts (the last after its own length, at most the file's end).
 */
export function windowStrip(starts: number[], scores: number[], duration: number, windowSeconds = 10): WindowScore[] {
  if (!(duration > 0)) return [];
  const sc = starts.map((_, i) => scores[i] ?? 0);
  let lo = Infinity;
  let hi = -Infinity;
  for (const s of sc) {
    lo = Math.min(lo, s);
    hi = Math.max(hi, s);
  }
  return starts.map((start, i) => {
    const endSeconds = Math.min(duration, i + 1 < starts.length ? starts[i + 1] : start + windowSeconds);
    return {
      start: Math.min(1, start / duration),
      end: Math.min(1, endSeconds / duration),
      score: sc[i],
      startSeconds: start,
      endSeconds,
      shade: hi > lo ? 0.15 + 0.85 * ((sc[i] - lo) / (hi - lo)) : 1,
    };
  });
}

/**
 * Peaks and a playhead (fraction or null) at `width`×`height` device pixels;
 * the best segment and a flat line are the element's CSS, so that they show
 * from the first paint, before any waveform arrives. The size comes from a
 * ResizeObserver so that drawing never forces a layout.
 */
export function drawMini(canvas: HTMLCanvasElement, width: number, height: number, level: WaveformLevel | undefined, head: number | null) {
  const ctx = canvas.getContext?.("2d");
  if (!ctx) return;
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(width));
  const h = Math.max(1, Math.round(height));
  if (canvas.width !== w) canvas.width = w;
  if (canvas.height !== h) canvas.height = h;
  ctx.clearRect(0, 0, w, h);
  const css = getComputedStyle(canvas);
  const mid = h / 2;
  const peaks = level?.peaks;
  const pairs = level ? Math.min(level.pairCount, Math.floor((peaks?.length ?? 0) / 2)) : 0;
  if (peaks && pairs > 0) {
    ctx.fillStyle = css.getPropertyValue("--wave").trim() || "#7aa2ff";
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
  }
  if (head != null) {
    ctx.fillStyle = css.getPropertyValue("--accent").trim() || "#ffb454";
    ctx.fillRect(Math.min(w - 2 * dpr, head * w), 0, 2 * dpr, h);
  }
}
