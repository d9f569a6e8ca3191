// The search view's state in the URL query string, so reload, back/forward and
// a shared link give the same results. Plain functions, no React.
//
//   ?q=<text>                        search by text
//   ?similar=<file id>[&start=s&end=s]  more like a stored file (or a range of it)
//   ?src=clip | ?src=recording       an example clip or recording: its bytes
//                                    cannot live in a URL, only the filters do
//   filters: dmin dmax bmin bmax (numbers), key=<pc>-<major|minor> (repeated),
//            all/any/none=<tag> (repeated), fmt=<wav|aiff|flac|mp3|ogg|m4a>
//            (repeated), kw=<keywords>, smin=<min score>
//   options: w=<keyword weight 0..1>, good=<id>, bad=<id> (repeated, refine)
import { AudioFormat, KeyMode } from "../gen/traum/v1/audio_pb";

export type SearchSource =
  | { kind: "none" }
  | { kind: "text"; query: string }
  | { kind: "similar"; fileId: string; start?: number; end?: number }
  | { kind: "clip" }
  | { kind: "recording" };

export interface KeyFilter {
  pitchClass: number;
  mode: KeyMode;
}

export interface Filters {
  minDuration?: number;
  maxDuration?: number;
  minBpm?: number;
  maxBpm?: number;
  keys: KeyFilter[];
  tagsAll: string[];
  tagsAny: string[];
  tagsNone: string[];
  formats: AudioFormat[];
  keywords: string;
  minScore?: number;
}

export interface SearchState {
  source: SearchSource;
  filters: Filters;
  keywordWeight: number;
  good: string[];
  bad: string[];
}

export function emptyFilters(): Filters {
  return { keys: [], tagsAll: [], tagsAny: [], tagsNone: [], formats: [], keywords: "" };
}

export function emptyState(): SearchState {
  return { source: { kind: "none" }, filters: emptyFilters(), keywordWeight: 0, good: [], bad: [] };
}

export const FORMAT_CODES: [AudioFormat, string][] = [
  [AudioFormat.WAV, "wav"],
  [AudioFormat.AIFF, "aiff"],
  [AudioFormat.FLAC, "flac"],
  [AudioFormat.MP3, "mp3"],
  [AudioFormat.OGG, "ogg"],
  [AudioFormat.M4A, "m4a"],
];

export function formatCode(f: AudioFormat): string | undefined {
  return FORMAT_CODES.find(([v]) => v === f)?.[1];
}

export function parseFormat(s: string): AudioFormat | undefined {
  return FORMAT_CODES.find(([, c]) => c === s.toLowerCase())?.[0];
}

export function keyCode(k: KeyFilter): string {
  return `${k.pitchClass}-${k.mode === KeyMode.MINOR ? "minor" : "major"}`;
}

function parseKey(s: string): KeyFilter | undefined {
  const m = /^(\d{1,2})-(major|minor)$/.exec(s);
  if (!m) return undefined;
  const pc = Number(m[1]);
  if (pc > 11) return undefined;
  return { pitchClass: pc, mode: m[2] === "minor" ? KeyMode.MINOR : KeyMode.MAJOR };
}

function num(s: string | null): number | undefined {
  if (s == null || s.trim() === "") return undefined;
  const n = Number(s);
  return Number.isFinite(n) ? n : undefined;
}

/** Shortest decimal form, so "1.5" stays "1.5" and 0.30000000000000004 becomes "0.3". */
function numText(n: number): string {
  return String(Math.round(n * 1e6) / 1e6);
}

function uniq<T>(xs: T[]): T[] {
  return [...new Set(xs)];
}

export function parseSearch(search: string): SearchState {
  const p = new URLSearchParams(search.startsWith("?") ? search.slice(1) : search);
  const st = emptyState();
  const q = p.get("q");
  const similar = p.get("similar");
  const src = p.get("src");
  if (similar) {
    const start = num(p.get("start"));
    const end = num(p.get("end"));
    st.source = { kind: "similar", fileId: similar, ...(start !== undefined ? { start } : {}), ...(end !== undefined ? { end } : {}) };
  } else if (q != null && q !== "") st.source = { kind: "text", query: q };
  else if (src === "clip" || src === "recording") st.source = { kind: src };
  const f = st.filters;
  f.minDuration = num(p.get("dmin"));
  f.maxDuration = num(p.get("dmax"));
  f.minBpm = num(p.get("bmin"));
  f.maxBpm = num(p.get("bmax"));
  f.minScore = num(p.get("smin"));
  for (const k of ["minDuration", "maxDuration", "minBpm", "maxBpm", "minScore"] as const) if (f[k] === undefined) delete f[k];
  f.keys = p.getAll("key").map(parseKey).filter((k): k is KeyFilter => !!k);
  f.keys = f.keys.filter((k, i) => f.keys.findIndex((x) => keyCode(x) === keyCode(k)) === i);
  f.tagsAll = uniq(p.getAll("all").filter(Boolean));
  f.tagsAny = uniq(p.getAll("any").filter(Boolean));
  f.tagsNone = uniq(p.getAll("none").filter(Boolean));
  f.formats = uniq(p.getAll("fmt").map(parseFormat).filter((x): x is AudioFormat => x !== undefined));
  f.keywords = p.get("kw") ?? "";
  st.keywordWeight = Math.min(1, Math.max(0, num(p.get("w")) ?? 0));
  st.good = uniq(p.getAll("good").filter(Boolean));
  st.bad = uniq(p.getAll("bad").filter(Boolean));
  return st;
}

/** The query string (with "?", or "" when empty) in a canonical order. */
export function formatSearch(st: SearchState): string {
  const p = new URLSearchParams();
  const s = st.source;
  if (s.kind === "text") p.set("q", s.query);
  else if (s.kind === "similar") {
    p.set("similar", s.fileId);
    if (s.start !== undefined) p.set("start", numText(s.start));
    if (s.end !== undefined) p.set("end", numText(s.end));
  } else if (s.kind === "clip" || s.kind === "recording") p.set("src", s.kind);
  const f = st.filters;
  if (f.minDuration !== undefined) p.set("dmin", numText(f.minDuration));
  if (f.maxDuration !== undefined) p.set("dmax", numText(f.maxDuration));
  if (f.minBpm !== undefined) p.set("bmin", numText(f.minBpm));
  if (f.maxBpm !== undefined) p.set("bmax", numText(f.maxBpm));
  for (const k of f.keys) p.append("key", keyCode(k));
  for (const t of f.tagsAll) p.append("all", t);
  for (const t of f.tagsAny) p.append("any", t);
  for (const t of f.tagsNone) p.append("none", t);
  for (const x of f.formats) {
    const c = formatCode(x);
    if (c) p.append("fmt", c);
  }
  if (f.keywords) p.set("kw", f.keywords);
  if (f.minScore !== undefined) p.set("smin", numText(f.minScore));
  if (st.keywordWeight > 0) p.set("w", numText(st.keywordWeight));
  for (const id of st.good) p.append("good", id);
  for (const id of st.bad) p.append("bad", id);
  const text = p.toString();
  return text ? `?${text}` : "";
}

/** The `filters` field of every search request. */
export function toProtoFilters(f: Filters) {
  return {
    minDurationSeconds: f.minDuration,
    maxDurationSeconds: f.maxDuration,
    minBpm: f.minBpm,
    maxBpm: f.maxBpm,
    keys: f.keys.map((k) => ({ pitchClass: k.pitchClass, mode: k.mode })),
    tagsAll: f.tagsAll,
    tagsAny: f.tagsAny,
    tagsNone: f.tagsNone,
    formats: f.formats,
    keywords: f.keywords,
    minScore: f.minScore,
  };
}

/** The `options` field: page size, page token, weight and refine (absent when no marks). */
export function toProtoOptions(st: SearchState, limit: number, pageToken = "") {
  return {
    limit,
    pageToken,
    keywordWeight: st.keywordWeight,
    refine: st.good.length || st.bad.length ? { goodFileIds: st.good, badFileIds: st.bad } : undefined,
  };
}

/** Validation messages for ranges the user typed (min above max); empty if fine. */
export function validateFilters(f: Filters): string[] {
  const out: string[] = [];
  if (f.minDuration !== undefined && f.maxDuration !== undefined && f.minDuration > f.maxDuration)
    out.push("Minimum duration must not be above the maximum duration.");
  if (f.minBpm !== undefined && f.maxBpm !== undefined && f.minBpm > f.maxBpm) out.push("Minimum BPM must not be above the maximum BPM.");
  for (const [k, label] of [
    ["minDuration", "Minimum duration"],
    ["maxDuration", "Maximum duration"],
    ["minBpm", "Minimum BPM"],
    ["maxBpm", "Maximum BPM"],
  ] as const) {
    const v = f[k];
    if (v !== undefined && v < 0) out.push(`${label} must not be negative.`);
  }
  if (f.minScore !== undefined && (f.minScore < -1 || f.minScore > 1)) out.push("Minimum score must be between −1 and 1.");
  return out;
}

/** True when a search can run from the URL alone. */
export function runnableFromUrl(s: SearchSource): boolean {
  return s.kind === "text" || s.kind === "similar";
}
