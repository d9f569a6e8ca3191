// The search view (`/search`): text search with suggestions, query by example
// (file or microphone), more-like-this, filters, relevance feedback, paging,
// a shared player with keyboard audition, and export of the displayed hits.
// Its state lives in the URL (see search/url-state.ts), except an example
// clip or recording, whose bytes cannot.
import { memo, useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState, type DragEvent, type MouseEvent } from "react";
import type { WaveformLevel } from "../gen/traum/v1/audio_pb";
import type { SearchHit, SearchResponse } from "../gen/traum/v1/search_pb";
import { audioUrl, useApi } from "../api/client";
import { useCan } from "../auth/context";
import { Dialog } from "../components/Dialog";
import { AddToCollectionDialog } from "../components/AddToCollection";
import { describeError, formatBpm, formatBytes, formatDuration, formatKey, formatName } from "../lib/format";
import { Link, navigate, useSearchString } from "../lib/router";
import { useToasts } from "../lib/toasts";
import { SearchBox } from "../search/SearchBox";
import { FilterChips, FiltersPanel } from "../search/FiltersPanel";
import { actionForKey, SHORTCUTS } from "../search/keymap";
import { audioUrlFor, EXPORT_TYPES, exportText, type ExportFormat } from "../search/export";
import { MAX_RECORD_SECONDS, PcmRecorder } from "../search/recorder";
import { drawMini, overviewOf, whenNearViewport, windowStrip } from "../search/waveforms";
import { formatSearch, parseSearch, toProtoFilters, toProtoOptions, type SearchState } from "../search/url-state";

export const PAGE_SIZE = 50;
/** Largest example clip sent in one SearchByAudioClip message. */
export const MAX_CLIP_BYTES = 20_000_000;

interface Example {
  kind: "clip" | "recording";
  name: string;
  bytes: Uint8Array;
  seconds?: number;
}

const MIME_BY_FORMAT: Record<number, string> = { 1: "audio/wav", 2: "audio/aiff", 3: "audio/flac", 4: "audio/mpeg", 5: "audio/ogg", 6: "audio/mp4" };

/** Seconds as m:ss.s (segments of short files need the tenths). */
function formatSeconds(t: number): string {
  if (!Number.isFinite(t) || t < 0) return "—";
  const tenths = Math.round(t * 10);
  const m = Math.floor(tenths / 600);
  const rest = (tenths % 600) / 10;
  return `${m}:${rest < 10 ? "0" : ""}${rest.toFixed(1)}`;
}

function go(st: SearchState, replace = false) {
  navigate(`/search${formatSearch(st)}`, replace, false);
}

// ------------------------------------------------------------------ mini waveform

function MiniWave({
  fileId,
  duration,
  start,
  end,
  head,
  windowStarts,
  windowScores,
  onSeek,
}: {
  fileId: string;
  duration: number;
  start: number;
  end: number;
  head: number | null;
  windowStarts: number[];
  windowScores: number[];
  onSeek: (seconds: number) => void;
}) {
  const api = useApi();
  const box = useRef<HTMLDivElement>(null);
  const ref = useRef<HTMLCanvasElement>(null);
  const [level, setLevel] = useState<WaveformLevel | undefined>(undefined);
  // Nothing is fetched, measured or drawn before the hit nears the viewport,
  // so the first render of a page of hits is DOM alone and stays cheap.
  const [visible, setVisible] = useState(false);
  const [size, setSize] = useState<[number, number] | null>(null);

  useEffect(() => {
    const el = box.current;
    return el ? whenNearViewport(el, () => setVisible(true)) : undefined;
  }, []);

  useEffect(() => {
    if (!visible) return;
    let live = true;
    void overviewOf(api, fileId).then((l) => live && setLevel(l));
    return () => {
      live = false;
    };
  }, [api, fileId, visible]);

  // The canvas size from a ResizeObserver, which reports it after layout;
  // reading clientWidth instead would force a layout per hit.
  useEffect(() => {
    const c = ref.current;
    if (!visible || !c) return;
    const dpr = window.devicePixelRatio || 1;
    if (typeof ResizeObserver === "undefined") {
      setSize([c.clientWidth * dpr, c.clientHeight * dpr]);
      return;
    }
    const ro = new ResizeObserver(([e]) => {
      const px = e.devicePixelContentBoxSize?.[0];
      setSize(px ? [px.inlineSize, px.blockSize] : [e.contentRect.width * dpr, e.contentRect.height * dpr]);
    });
    ro.observe(c);
    return () => ro.disconnect();
  }, [visible]);

  const d = duration > 0 ? duration : 1;
  const segA = Math.max(0, start / d);
  const segB = Math.min(1, end / d);
  const headFraction = head == null ? null : Math.max(0, Math.min(1, head / d));
  useEffect(() => {
    if (ref.current && size) drawMini(ref.current, size[0], size[1], level, headFraction);
  }, [size, level, headFraction]);

  const windows = useMemo(() => windowStrip(windowStarts, windowScores, duration), [windowStarts, windowScores, duration]);
  // The strip in words: the three best windows.
  const best = useMemo(() => [...windows].sort((x, y) => y.score - x.score).slice(0, 3), [windows]);

  const onClick = (e: MouseEvent<HTMLDivElement>) => {
    const r = e.currentTarget.getBoundingClientRect();
    if (r.width <= 0) return;
    onSeek(Math.max(0, Math.min(duration, ((e.clientX - r.left) / r.width) * duration)));
  };
  return (
    <div
      ref={box}
      className="mini-wave"
      onClick={onClick}
      data-testid="mini-waveform"
      data-loaded={level ? "true" : "false"}
      title="Click to play from here"
    >
      <div className="mini-segment" data-testid="mini-segment" style={{ left: `${segA * 100}%`, width: `${Math.max(0, segB - segA) * 100}%` }} />
      <canvas ref={ref} aria-hidden="true" />
      {visible && windows.length > 1 && (
        <div className="window-strip" aria-hidden="true" data-testid="window-strip">
          {windows.map((w) => (
            <span
              key={w.startSeconds}
              className="window-cell"
              data-start={w.startSeconds}
              data-score={w.score}
              style={{ left: `${w.start * 100}%`, width: `${(w.end - w.start) * 100}%`, opacity: w.shade }}
              title={`${formatSeconds(w.startSeconds)}–${formatSeconds(w.endSeconds)}: ${w.score.toFixed(2)}`}
            />
          ))}
        </div>
      )}
      {best.length > 1 && (
        <span className="visually-hidden" data-testid="window-scores">
          Best windows: {best.map((b) => `${formatSeconds(b.startSeconds)} (${b.score.toFixed(2)})`).join(", ")}
        </span>
      )}
    </div>
  );
}

// ------------------------------------------------------------------ one hit

interface HitActions {
  play(index: number, from?: number): void;
  toggle(index: number): void;
  similar(fileId: string): void;
  mark(fileId: string, mark: "good" | "bad"): void;
  copy(hit: SearchHit): void;
  collect(file: { fileId: string; filename: string }): void;
}

const HitRow = memo(function HitRow({
  hit,
  index,
  current,
  playing,
  head,
  mark,
  actions,
}: {
  hit: SearchHit;
  index: number;
  current: boolean;
  playing: boolean;
  head: number | null;
  mark: "good" | "bad" | undefined;
  actions: HitActions;
}) {
  const f = hit.file!;
  const name = f.filename;
  const canWrite = useCan("write");
  const onDragStart = (e: DragEvent<HTMLLIElement>) => {
    const url = audioUrlFor(window.location.origin, f.fileId);
    const mime = MIME_BY_FORMAT[f.format] ?? "application/octet-stream";
    e.dataTransfer.setData("DownloadURL", `${mime}:${name.replace(/:/g, "_")}:${url}`);
    e.dataTransfer.setData("text/uri-list", url);
    e.dataTransfer.setData("text/plain", url);
    e.dataTransfer.effectAllowed = "copy";
  };
  return (
    <li
      className={`hit${current ? " current" : ""}${playing ? " playing" : ""}`}
      data-file-id={f.fileId}
      data-index={index}
      aria-current={playing ? "true" : undefined}
      draggable
      onDragStart={onDragStart}
    >
      <div className="hit-head">
        <button
          type="button"
          className="primary play"
          aria-label={`${playing ? "Pause" : "Play"} ${name}`}
          onClick={() => (head != null ? actions.toggle(index) : actions.play(index))}
        >
          <span aria-hidden="true">{playing ? "❚❚" : "▶"}</span>
        </button>
        <div className="hit-title">
          <Link to={`/files/${encodeURIComponent(f.fileId)}`} className="hit-name" draggable={false}>
            {name}
          </Link>
          {playing && <span className="badge">Playing</span>}
          <p className="hit-meta">
            <span>
              Score <span data-testid="hit-score">{hit.score.toFixed(3)}</span>
            </span>
            <span>
              cosine <span data-testid="hit-cosine">{hit.cosine.toFixed(3)}</span>
            </span>
            <span data-testid="hit-segment">
              segment {formatSeconds(hit.segmentStartSeconds)}–{formatSeconds(hit.segmentEndSeconds)}
            </span>
            <span data-testid="hit-duration">{formatDuration(f.durationSeconds)}</span>
            <span>{formatBpm(f.bpm)}</span>
            <span>{formatKey(f.key)}</span>
            <span data-testid="hit-format">{formatName(f.format)}</span>
          </p>
          {f.tags.length > 0 && (
            <ul className="chips hit-tags" aria-label={`Tags of ${name}`}>
              {f.tags.map((t) => (
                <li key={t} className="tag">
                  {t}
                </li>
              ))}
            </ul>
          )}
        </div>
      </div>
      <MiniWave
        fileId={f.fileId}
        duration={f.durationSeconds}
        start={hit.segmentStartSeconds}
        end={hit.segmentEndSeconds}
        head={head}
        windowStarts={hit.windowStartSeconds}
        windowScores={hit.windowScores}
        onSeek={(s) => actions.play(index, s)}
      />
      <div className="hit-actions">
        <button type="button" className="small" onClick={() => actions.similar(f.fileId)} aria-label={`More like this: ${name}`}>
          More like this
        </button>
        <button type="button" className="small mark-good" aria-pressed={mark === "good"} aria-label={`Mark ${name} good`} onClick={() => actions.mark(f.fileId, "good")}>
          Good
        </button>
        <button type="button" className="small mark-bad" aria-pressed={mark === "bad"} aria-label={`Mark ${name} bad`} onClick={() => actions.mark(f.fileId, "bad")}>
          Bad
        </button>
        <button type="button" className="small" aria-label={`Copy link to ${name}`} onClick={() => actions.copy(hit)}>
          Copy link
        </button>
        {canWrite && (
          <button type="button" className="small" aria-label={`Add to collection: ${name}`} onClick={() => actions.collect(f)}>
            Add to collection
          </button>
        )}
      </div>
    </li>
  );
});

// ------------------------------------------------------------------ the view

export default function Search() {
  const api = useApi();
  const toasts = useToasts();
  const search = useSearchString();
  const state = useMemo(() => parseSearch(search), [search]);

  // Example clip or recording (bytes stay in memory, never in the URL).
  const [example, setExample] = useState<Example | null>(null);
  const [exampleError, setExampleError] = useState<string | null>(null);
  const [dragging, setDragging] = useState(false);
  const recorder = useRef<PcmRecorder | null>(null);
  const [recording, setRecording] = useState<number | null>(null); // seconds so far, null when not recording

  // Results.
  const [hits, setHits] = useState<SearchHit[]>([]);
  const [nextToken, setNextToken] = useState("");
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [tookMs, setTookMs] = useState<number | null>(null);
  const [searched, setSearched] = useState(false);
  const [similarName, setSimilarName] = useState<string | null>(null);
  const gen = useRef(0);
  const measurePending = useRef(false);

  // Marks for relevance feedback.
  const [marks, setMarks] = useState<Map<string, "good" | "bad">>(new Map());
  const refineKey = JSON.stringify([state.good, state.bad]);
  useEffect(() => {
    const m = new Map<string, "good" | "bad">();
    for (const id of state.good) m.set(id, "good");
    for (const id of state.bad) m.set(id, "bad");
    setMarks(m);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [refineKey]);

  // Player.
  const audioRef = useRef<HTMLAudioElement>(null);
  const [current, setCurrent] = useState(-1);
  const [playingId, setPlayingId] = useState<string | null>(null);
  const [paused, setPaused] = useState(true);
  const [time, setTime] = useState(0);
  const [loop, setLoop] = useState(false);
  const [announce, setAnnounce] = useState("");
  const [help, setHelp] = useState(false);
  const segRef = useRef<[number, number]>([0, 0]);
  const pendingSeek = useRef<number | null>(null);

  const [exportFormat, setExportFormat] = useState<ExportFormat>("csv");

  const run = useCallback(
    async (st: SearchState, ex: Example | null, pageToken: string): Promise<SearchResponse | null> => {
      const filters = toProtoFilters(st.filters);
      const options = toProtoOptions(st, PAGE_SIZE, pageToken);
      const s = st.source;
      if (s.kind === "text") return api.search.searchByText({ query: s.query, filters, options });
      if (s.kind === "similar")
        return api.search.searchSimilar({ fileId: s.fileId, startSeconds: s.start, endSeconds: s.end, filters, options });
      if ((s.kind === "clip" || s.kind === "recording") && ex) return api.search.searchByAudioClip({ audio: ex.bytes, filters, options });
      return null;
    },
    [api],
  );

  const receive = useCallback((res: SearchResponse, append: boolean) => {
    performance.mark("traum:hits-response");
    measurePending.current = true;
    setHits((h) => (append ? [...h, ...res.hits] : res.hits));
    setNextToken(res.nextPageToken);
    setTookMs(res.tookMs);
  }, []);

  // Run the first page whenever the URL (or the example) changes.
  useEffect(() => {
    const my = ++gen.current;
    setError(null);
    setNextToken("");
    const s = state.source;
    if (s.kind === "none" || ((s.kind === "clip" || s.kind === "recording") && !example)) {
      setHits([]);
      setSearched(false);
      setLoading(false);
      return;
    }
    setLoading(true);
    run(state, example, "")
      .then((res) => {
        if (my !== gen.current || !res) return;
        setSearched(true);
        setCurrent(-1);
        receive(res, false);
      })
      .catch((err) => {
        if (my !== gen.current) return;
        setHits([]);
        setSearched(true);
        setError(describeError(err));
        toasts.error("Search failed", err);
      })
      .finally(() => my === gen.current && setLoading(false));
  }, [state, example, run, receive, toasts]);

  // Name of the example file of "more like this".
  const similarId = state.source.kind === "similar" ? state.source.fileId : null;
  useEffect(() => {
    setSimilarName(null);
    if (!similarId) return;
    let live = true;
    api.audio.getFile({ fileId: similarId }).then(
      (f) => live && setSimilarName(f.filename),
      () => undefined,
    );
    return () => {
      live = false;
    };
  }, [api, similarId]);

  // From the response to the hits in the DOM ("traum:hits-commit") and to the
  // first frame that paints them ("traum:hits-render"): a message posted from
  // a requestAnimationFrame callback is handled after that frame's style,
  // layout and paint.
  useLayoutEffect(() => {
    if (!measurePending.current) return;
    measurePending.current = false;
    const measure = (name: string, end: string) => {
      performance.mark(end);
      try {
        performance.measure(name, "traum:hits-response", end);
      } catch {
        // Marks cleared by someone else.
      }
    };
    measure("traum:hits-commit", "traum:hits-committed");
    const raf = requestAnimationFrame(() => {
      const ch = new MessageChannel();
      ch.port1.onmessage = () => {
        ch.port1.close();
        measure("traum:hits-render", "traum:hits-painted");
      };
      ch.port2.postMessage(null);
    });
    return () => cancelAnimationFrame(raf);
  }, [hits]);

  const loadMore = async () => {
    const my = gen.current;
    setLoading(true);
    try {
      const res = await run(state, example, nextToken);
      if (my === gen.current && res) receive(res, true);
    } catch (err) {
      if (my === gen.current) {
        setError(describeError(err));
        toasts.error("Loading more results failed", err);
      }
    } finally {
      if (my === gen.current) setLoading(false);
    }
  };

  // ---------------------------------------------------------------- examples

  const searchExample = (ex: Example) => {
    setExampleError(null);
    setExample(ex);
    go({ ...state, source: { kind: ex.kind } });
  };

  const pickFile = async (file: File | undefined) => {
    if (!file) return;
    if (file.size > MAX_CLIP_BYTES) {
      setExampleError(
        `${file.name} is ${formatBytes(file.size)}; an example clip can be at most ${formatBytes(MAX_CLIP_BYTES)}. Use a shorter clip (cut it to the part you want to match).`,
      );
      return;
    }
    const bytes = new Uint8Array(await file.arrayBuffer());
    searchExample({ kind: "clip", name: file.name, bytes });
  };

  const stopRecording = useCallback(async () => {
    const r = recorder.current;
    if (!r) return;
    recorder.current = null;
    setRecording(null);
    const { wav, seconds } = await r.stop();
    if (seconds < 0.2) {
      setExampleError("The recording is too short; record at least a second.");
      return;
    }
    setExampleError(null);
    setExample({ kind: "recording", name: `Recording (${seconds.toFixed(1)} s)`, bytes: wav, seconds });
    navigate(`/search${formatSearch({ ...parseSearch(window.location.search), source: { kind: "recording" } })}`, false, false);
  }, []);

  const startRecording = async () => {
    if (recorder.current) return;
    setExampleError(null);
    if (!navigator.mediaDevices?.getUserMedia) {
      setExampleError("This browser cannot record from a microphone here (it needs a secure context: https or localhost).");
      return;
    }
    const r = new PcmRecorder();
    recorder.current = r;
    try {
      await r.start(() => void stopRecording());
      setRecording(0);
    } catch (err) {
      recorder.current = null;
      setRecording(null);
      setExampleError(`Recording failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  };

  useEffect(() => {
    if (recording === null) return;
    const t = setInterval(() => recorder.current && setRecording(recorder.current.seconds), 200);
    return () => clearInterval(t);
  }, [recording]);

  useEffect(
    () => () => {
      void recorder.current?.stop();
      recorder.current = null;
    },
    [],
  );

  // ---------------------------------------------------------------- player

  const hitsRef = useRef(hits);
  hitsRef.current = hits;
  const currentRef = useRef(current);
  currentRef.current = current;
  const playingRef = useRef(playingId);
  playingRef.current = playingId;

  // Before its metadata has loaded, an audio element may drop a seek;
  // onLoadedMetadata repeats the latest one, never an older one (a J or L
  // pressed while the file loads wins over the segment start).
  const seek = useCallback((a: HTMLAudioElement, t: number) => {
    a.currentTime = t;
    pendingSeek.current = a.readyState >= HTMLMediaElement.HAVE_METADATA ? null : t;
    setTime(t);
  }, []);

  const playHit = useCallback((index: number, from?: number) => {
    const hit = hitsRef.current[index];
    const a = audioRef.current;
    if (!hit?.file || !a) return;
    const f = hit.file;
    const url = audioUrl(f.fileId);
    const start = from ?? hit.segmentStartSeconds;
    segRef.current = [hit.segmentStartSeconds, hit.segmentEndSeconds];
    if (a.getAttribute("src") !== url) a.setAttribute("src", url);
    seek(a, start);
    setCurrent(index);
    setPlayingId(f.fileId);
    setAnnounce(`Playing ${f.filename} from ${formatDuration(start)}`);
    a.play().catch((err: unknown) => {
      if (err instanceof DOMException && err.name === "AbortError") return;
      toasts.fail(`Playback of ${f.filename} failed: ${err instanceof Error ? err.message : String(err)}`);
    });
    document.querySelector(`.hit[data-index="${index}"]`)?.scrollIntoView?.({ block: "nearest" });
  }, [toasts, seek]);

  const togglePlay = useCallback(
    (index: number) => {
      const a = audioRef.current;
      const hit = hitsRef.current[index];
      if (!a || !hit?.file) return;
      if (playingRef.current !== hit.file.fileId) return playHit(index);
      if (a.paused) {
        setAnnounce(`Playing ${hit.file.filename} from ${formatDuration(a.currentTime)}`);
        void a.play().catch(() => undefined);
      } else {
        a.pause();
        setAnnounce(`Paused ${hit.file.filename} at ${formatDuration(a.currentTime)}`);
      }
    },
    [playHit],
  );

  const markHit = useCallback((fileId: string, m: "good" | "bad") => {
    setMarks((old) => {
      const n = new Map(old);
      if (n.get(fileId) === m) n.delete(fileId);
      else n.set(fileId, m);
      return n;
    });
  }, []);

  const copyLink = useCallback(
    (hit: SearchHit) => {
      const url = audioUrlFor(window.location.origin, hit.file!.fileId);
      if (!navigator.clipboard?.writeText) {
        toasts.fail(`Copying needs clipboard access; the link is ${url}`);
        return;
      }
      navigator.clipboard.writeText(url).then(
        () => toasts.success(`Link to ${hit.file!.filename} copied`),
        (err: unknown) => toasts.fail(`Copying the link failed: ${err instanceof Error ? err.message : String(err)}`),
      );
    },
    [toasts],
  );

  const [collecting, setCollecting] = useState<{ fileId: string; filename: string } | null>(null);
  const stateRef = useRef(state);
  stateRef.current = state;
  const actions = useMemo<HitActions>(
    () => ({
      play: playHit,
      toggle: togglePlay,
      similar: (fileId) => go({ ...stateRef.current, source: { kind: "similar", fileId }, good: [], bad: [] }),
      mark: markHit,
      copy: copyLink,
      collect: (file) => setCollecting(file),
    }),
    [playHit, togglePlay, markHit, copyLink],
  );

  // Loop between segment start and end (checked every frame, not only on timeupdate).
  useEffect(() => {
    if (!loop || paused || !playingId) return;
    let raf = 0;
    const tick = () => {
      const a = audioRef.current;
      const [s, e] = segRef.current;
      if (a && e > s && (a.currentTime >= e - 0.01 || a.currentTime < s - 0.05)) a.currentTime = s;
      raf = requestAnimationFrame(tick);
    };
    raf = requestAnimationFrame(tick);
    return () => cancelAnimationFrame(raf);
  }, [loop, paused, playingId]);

  // Keyboard audition.
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.defaultPrevented) return;
      const action = actionForKey(e);
      if (!action || action === "focusSearch") return; // "/" is handled app-wide
      if (document.querySelector("dialog[open]")) return;
      const a = audioRef.current;
      const n = hitsRef.current.length;
      if (action === "help") {
        e.preventDefault();
        setHelp(true);
        return;
      }
      if (!n || !a) return;
      e.preventDefault();
      const cur = currentRef.current;
      switch (action) {
        case "next":
          playHit(cur < 0 ? 0 : Math.min(n - 1, cur + 1));
          break;
        case "previous":
          playHit(cur < 0 ? 0 : Math.max(0, cur - 1));
          break;
        case "toggle":
          togglePlay(cur < 0 ? 0 : cur);
          break;
        case "pause":
          if (!a.paused) {
            a.pause();
            setAnnounce("Paused");
          }
          break;
        case "back":
        case "forward":
          if (playingRef.current) {
            const d = action === "back" ? -5 : 5;
            seek(a, Math.max(0, Math.min(Number.isFinite(a.duration) ? a.duration : Infinity, a.currentTime + d)));
          }
          break;
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [playHit, togglePlay, seek]);

  // Stop the player when the results change under it.
  useEffect(() => {
    if (!playingId) return;
    if (!hits.some((h) => h.file?.fileId === playingId)) {
      audioRef.current?.pause();
      setPlayingId(null);
    }
  }, [hits, playingId]);

  // ---------------------------------------------------------------- export

  const doExport = () => {
    const text = exportText(exportFormat, hits, window.location.origin);
    const t = EXPORT_TYPES[exportFormat];
    const blob = new Blob([text], { type: t.mime });
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = `traum-search.${t.ext}`;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  };

  // ---------------------------------------------------------------- render

  const s = state.source;
  const good = [...marks].filter(([, m]) => m === "good").map(([id]) => id);
  const bad = [...marks].filter(([, m]) => m === "bad").map(([id]) => id);
  const refineChanged = JSON.stringify([good, bad]) !== refineKey;
  const playingHit = playingId ? hits.find((h) => h.file?.fileId === playingId) : undefined;

  let heading: string;
  if (s.kind === "text") heading = `Results for “${s.query}”`;
  else if (s.kind === "similar")
    heading = `More like ${similarName ?? s.fileId}${s.start !== undefined || s.end !== undefined ? ` (${formatDuration(s.start ?? 0)}–${s.end !== undefined ? formatDuration(s.end) : "end"})` : ""}`;
  else if (example && (s.kind === "clip" || s.kind === "recording")) heading = `Sounds like ${example.name}`;
  else heading = "Results";

  return (
    <>
      <h1>Search</h1>
      <SearchBox value={s.kind === "text" ? s.query : ""} onSubmit={(q) => q && go({ ...state, source: { kind: "text", query: q }, good: [], bad: [] })} />

      <section
        className={`panel example${dragging ? " dragging" : ""}`}
        aria-labelledby="example-heading"
        data-testid="example-dropzone"
        onDragOver={(e) => {
          if (e.dataTransfer.types.includes("Files")) {
            e.preventDefault();
            setDragging(true);
          }
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={(e) => {
          e.preventDefault();
          setDragging(false);
          void pickFile(e.dataTransfer.files[0]);
        }}
      >
        <h2 id="example-heading">Search by example</h2>
        <div className="example-row">
          <label className="button">
            Search by example file
            <input
              type="file"
              className="file-input"
              accept="audio/*,.wav,.aif,.aiff,.flac,.mp3,.ogg,.m4a"
              onChange={(e) => {
                void pickFile(e.target.files?.[0]);
                e.target.value = "";
              }}
            />
          </label>
          <span className="muted">or drop an audio file here (up to {formatBytes(MAX_CLIP_BYTES)}), or</span>
          {recording === null ? (
            <button type="button" onClick={() => void startRecording()}>
              <span aria-hidden="true">●</span> Record
            </button>
          ) : (
            <button type="button" className="danger" onClick={() => void stopRecording()}>
              Stop
            </button>
          )}
          {recording !== null && (
            <span role="status" data-testid="recording-status">
              Recording… {recording.toFixed(1)} s of at most {MAX_RECORD_SECONDS} s
            </span>
          )}
        </div>
        {exampleError && (
          <p className="error-text" role="alert">
            {exampleError}
          </p>
        )}
        {(s.kind === "clip" || s.kind === "recording") && (
          <p className="muted" data-testid="example-note">
            {example
              ? `Searching by ${example.kind === "clip" ? "the example clip" : "your recording"} “${example.name}”. `
              : `This link was made from ${s.kind === "clip" ? "an example clip" : "a recording"}. `}
            A clip or recording cannot live in a URL: a shared link or a reload keeps only the filters
            {example ? "" : "; pick the file or record again"}.
          </p>
        )}
      </section>

      <FiltersPanel state={state} onApply={(filters, keywordWeight) => go({ ...state, filters, keywordWeight })} />
      <FilterChips state={state} onChange={(next) => go(next)} />

      <section className="results" aria-labelledby="results-heading" aria-busy={loading}>
        <div className="list-head">
          <h2 id="results-heading">{heading}</h2>
          <p className="muted" role="status" data-testid="result-count">
            {loading
              ? "Searching…"
              : searched
                ? `${hits.length} ${hits.length === 1 ? "hit" : "hits"}${nextToken ? " (more available)" : ""}${tookMs != null ? ` in ${tookMs.toFixed(0)} ms` : ""}`
                : s.kind === "none"
                  ? "Type a description, pick an example, or record one."
                  : ""}
          </p>
        </div>
        {error && (
          <p className="error-text" role="alert" data-testid="search-error">
            {error}
          </p>
        )}

        {hits.length > 0 && (
          <div className="results-toolbar" role="toolbar" aria-label="Results actions">
            <button type="button" aria-pressed={loop} onClick={() => setLoop((l) => !l)}>
              Loop segment
            </button>
            <span className="refine">
              <button type="button" className="primary" disabled={!good.length && !bad.length && !refineChanged} onClick={() => go({ ...state, good, bad })}>
                Refine
              </button>
              <span className="muted" data-testid="mark-count">
                {good.length} good, {bad.length} bad
              </span>
            </span>
            <span className="export">
              <label htmlFor="export-format" className="visually-hidden">
                Export format
              </label>
              <select id="export-format" value={exportFormat} onChange={(e) => setExportFormat(e.target.value as ExportFormat)}>
                {(Object.keys(EXPORT_TYPES) as ExportFormat[]).map((k) => (
                  <option key={k} value={k}>
                    {EXPORT_TYPES[k].label}
                  </option>
                ))}
              </select>
              <button type="button" onClick={doExport}>
                Export
              </button>
            </span>
            <button type="button" onClick={() => setHelp(true)} aria-keyshortcuts="?">
              Keyboard shortcuts
            </button>
          </div>
        )}

        <audio
          ref={audioRef}
          preload="metadata"
          data-testid="search-audio"
          onPlay={() => setPaused(false)}
          onPause={() => setPaused(true)}
          onLoadedMetadata={(e) => {
            if (pendingSeek.current != null) {
              const a = e.currentTarget;
              if (Math.abs(a.currentTime - pendingSeek.current) > 0.05) a.currentTime = pendingSeek.current;
              pendingSeek.current = null;
            }
          }}
          onEnded={(e) => {
            if (loop) {
              e.currentTarget.currentTime = segRef.current[0];
              void e.currentTarget.play().catch(() => undefined);
            } else setPaused(true);
          }}
          onTimeUpdate={(e) => setTime(e.currentTarget.currentTime)}
        />
        <p className="visually-hidden" aria-live="polite" data-testid="player-announcer">
          {announce}
        </p>
        {playingHit?.file && (
          <p className="now-playing" data-testid="now-playing">
            {paused ? "Paused" : "Playing"}: {playingHit.file.filename} · {formatDuration(time)} / {formatDuration(playingHit.file.durationSeconds)}
            {loop && ` · looping ${formatDuration(playingHit.segmentStartSeconds)}–${formatDuration(playingHit.segmentEndSeconds)}`}
          </p>
        )}

        {hits.length > 0 && (
          <ol className="hits" aria-label="Results" data-testid="hits">
            {hits.map((h, i) => (
              <HitRow
                key={`${h.file?.fileId}:${i}`}
                hit={h}
                index={i}
                current={i === current}
                playing={!!playingId && h.file?.fileId === playingId && !paused}
                head={playingId && h.file?.fileId === playingId ? time : null}
                mark={h.file ? marks.get(h.file.fileId) : undefined}
                actions={actions}
              />
            ))}
          </ol>
        )}
        {searched && !loading && !error && hits.length === 0 && <p className="empty">No hits. Loosen the filters or try another description.</p>}
        {nextToken && (
          <p>
            <button type="button" onClick={() => void loadMore()} disabled={loading}>
              Load more
            </button>
          </p>
        )}
      </section>

      {collecting && <AddToCollectionDialog files={[collecting]} onClose={() => setCollecting(null)} />}
      {help && (
        <Dialog title="Keyboard shortcuts" onClose={() => setHelp(false)}>
          <p className="muted">On the search view, outside text fields:</p>
          <table className="table shortcuts">
            <thead>
              <tr>
                <th scope="col">Key</th>
                <th scope="col">Action</th>
              </tr>
            </thead>
            <tbody>
              {SHORTCUTS.map((k) => (
                <tr key={k.action}>
                  <td>
                    <kbd>{k.keys}</kbd>
                  </td>
                  <td>{k.description}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <div className="dialog-buttons">
            <button type="button" className="primary" autoFocus onClick={() => setHelp(false)}>
              Close
            </button>
          </div>
        </Dialog>
      )}
    </>
  );
}
