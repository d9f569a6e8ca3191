import { useEffect, useRef, type KeyboardEvent, type MouseEvent, type PointerEvent } from "react";
import type { WaveformLevel } from "../gen/traum/v1/audio_pb";
import { formatDuration } from "../lib/format";

export type Selection = [number, number] | null;

/** Draws int8 min/max pairs (±127 = full scale), a selected range (fractions) and a playhead. */
function draw(canvas: HTMLCanvasElement, level: WaveformLevel | undefined, fraction: number, sel: Selection = null) {
  const ctx = canvas.getContext?.("2d");
  if (!ctx) return;
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(canvas.clientWidth * dpr));
  const h = Math.max(1, Math.round(canvas.clientHeight * dpr));
  if (canvas.width !== w) canvas.width = w;
  if (canvas.height !== h) canvas.height = h;
  const css = getComputedStyle(canvas);
  const wave = css.getPropertyValue("--wave").trim() || "#7aa2ff";
  const played = css.getPropertyValue("--wave-played").trim() || "#c3d3ff";
  const head = css.getPropertyValue("--accent").trim() || "#ffb454";
  ctx.clearRect(0, 0, w, h);
  if (sel) {
    ctx.fillStyle = css.getPropertyValue("--segment").trim() || "rgba(255,180,84,0.25)";
    ctx.fillRect(sel[0] * w, 0, Math.max(dpr, (sel[1] - sel[0]) * w), h);
  }
  const mid = h / 2;
  const peaks = level?.peaks;
  const pairs = level ? Math.min(level.pairCount, Math.floor((peaks?.length ?? 0) / 2)) : 0;
  if (peaks && pairs > 0) {
    const view = new Int8Array(peaks.buffer, peaks.byteOffset, peaks.byteLength);
    const headX = fraction * w;
    for (let x = 0; x < w; x++) {
      const a = Math.floor((x / w) * pairs);
      const b = Math.max(a + 1, Math.floor(((x + 1) / w) * pairs));
      let lo = 127;
      let hi = -128;
      for (let i = a; i < b && i < pairs; i++) {
        lo = Math.min(lo, view[i * 2]);
        hi = Math.max(hi, view[i * 2 + 1]);
      }
      if (hi < lo) continue;
      const y1 = mid - (hi / 127) * mid;
      const y2 = mid - (lo / 127) * mid;
      ctx.fillStyle = x < headX ? played : wave;
      ctx.fillRect(x, y1, 1, Math.max(1, y2 - y1));
    }
  } else {
    ctx.fillStyle = wave;
    ctx.fillRect(0, mid, w, Math.max(1, dpr));
  }
  ctx.fillStyle = head;
  ctx.fillRect(Math.min(w - 2 * dpr, fraction * w), 0, 2 * dpr, h);
}

export function WaveformSlider({
  level,
  duration,
  currentTime,
  onSeek,
  selection = null,
  onSelect,
}: {
  level: WaveformLevel | undefined;
  duration: number;
  currentTime: number;
  onSeek: (seconds: number) => void;
  /** Selected time range in seconds (shift-drag selects when `onSelect` is given). */
  selection?: Selection;
  onSelect?: (sel: Selection) => void;
}) {
  const ref = useRef<HTMLCanvasElement>(null);
  const fraction = duration > 0 ? Math.min(1, Math.max(0, currentTime / duration)) : 0;
  const selFractions: Selection =
    selection && duration > 0 ? [Math.max(0, selection[0] / duration), Math.min(1, selection[1] / duration)] : null;
  const selKey = selFractions ? selFractions.join(",") : "";
  const dragFrom = useRef<number | null>(null);
  const suppressClick = useRef(false);

  useEffect(() => {
    const c = ref.current;
    if (!c) return;
    draw(c, level, fraction, selFractions);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [level, fraction, selKey]);

  useEffect(() => {
    const c = ref.current;
    if (!c || typeof ResizeObserver === "undefined") return;
    const ro = new ResizeObserver(() => draw(c, level, fraction, selFractions));
    ro.observe(c);
    return () => ro.disconnect();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [level, fraction, selKey]);

  const seekTo = (s: number) => onSeek(Math.max(0, Math.min(duration, s)));
  const timeAt = (e: { clientX: number; currentTarget: HTMLElement }) => {
    const r = e.currentTarget.getBoundingClientRect();
    return r.width > 0 ? Math.max(0, Math.min(duration, ((e.clientX - r.left) / r.width) * duration)) : 0;
  };
  const onPointerDown = (e: PointerEvent<HTMLDivElement>) => {
    if (!onSelect || !e.shiftKey) return;
    e.preventDefault();
    e.currentTarget.setPointerCapture?.(e.pointerId);
    dragFrom.current = timeAt(e);
    suppressClick.current = true;
  };
  const onPointerMove = (e: PointerEvent<HTMLDivElement>) => {
    if (dragFrom.current == null || !onSelect) return;
    const t = timeAt(e);
    onSelect([Math.min(dragFrom.current, t), Math.max(dragFrom.current, t)]);
  };
  const onPointerUp = (e: PointerEvent<HTMLDivElement>) => {
    if (dragFrom.current == null || !onSelect) return;
    const t = timeAt(e);
    const a = Math.min(dragFrom.current, t);
    const b = Math.max(dragFrom.current, t);
    dragFrom.current = null;
    onSelect(b - a > 0.05 ? [a, b] : null);
  };

  const onClick = (e: MouseEvent<HTMLDivElement>) => {
    if (suppressClick.current) {
      suppressClick.current = false;
      return;
    }
    const r = e.currentTarget.getBoundingClientRect();
    if (r.width <= 0) return;
    seekTo(((e.clientX - r.left) / r.width) * duration);
  };

  const onKey = (e: KeyboardEvent<HTMLDivElement>) => {
    const step: Record<string, number> = { ArrowRight: 5, ArrowUp: 5, ArrowLeft: -5, ArrowDown: -5, PageUp: 30, PageDown: -30 };
    if (e.key in step) seekTo(currentTime + step[e.key]);
    else if (e.key === "Home") seekTo(0);
    else if (e.key === "End") seekTo(duration);
    else return;
    e.preventDefault();
  };

  return (
    <div
      className="waveform"
      role="slider"
      tabIndex={0}
      aria-label="Seek"
      aria-valuemin={0}
      aria-valuemax={Math.round(duration * 10) / 10}
      aria-valuenow={Math.round(currentTime * 10) / 10}
      aria-valuetext={`${formatDuration(currentTime)} of ${formatDuration(duration)}`}
      onClick={onClick}
      onKeyDown={onKey}
      onPointerDown={onPointerDown}
      onPointerMove={onPointerMove}
      onPointerUp={onPointerUp}
    >
      <canvas ref={ref} aria-hidden="true" data-testid="waveform-canvas" />
    </div>
  );
}
