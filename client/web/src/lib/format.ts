// Display formatting shared by all views. Plain functions, no React.
import { Code, ConnectError } from "@connectrpc/connect";
import { AudioFormat, FileState, JobStage, JobState, KeyMode, type MusicalKey } from "../gen/traum/v1/audio_pb";

const DASH = "—";

/** Seconds as m:ss, or h:mm:ss from one hour on. Fractions are truncated. */
export function formatDuration(seconds: number | undefined | null): string {
  if (seconds == null || !Number.isFinite(seconds) || seconds < 0) return DASH;
  const total = Math.floor(seconds);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const ss = String(s).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/** Long durations (library totals): "3 h 12 min", "12 min 5 s", "42 s". */
export function formatLongDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return DASH;
  const total = Math.round(seconds);
  const d = Math.floor(total / 86400);
  const h = Math.floor((total % 86400) / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (d > 0) return `${d} d ${h} h`;
  if (h > 0) return `${h} h ${m} min`;
  if (m > 0) return `${m} min ${s} s`;
  return `${s} s`;
}

const BYTE_UNITS = ["B", "kB", "MB", "GB", "TB", "PB"];

/** Bytes in SI units (1 kB = 1000 B). */
export function formatBytes(bytes: number | bigint | undefined | null): string {
  if (bytes == null) return DASH;
  let n = Number(bytes);
  if (!Number.isFinite(n) || n < 0) return DASH;
  let i = 0;
  while (n >= 1000 && i < BYTE_UNITS.length - 1) {
    n /= 1000;
    i++;
  }
  if (i === 0) return `${n} B`;
  return `${n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2)} ${BYTE_UNITS[i]}`;
}

const PITCH_NAMES = ["C", "C♯", "D", "D♯", "E", "F", "F♯", "G", "G♯", "A", "A♯", "B"];

/** "A minor", "C♯ major"; an em dash when unknown. */
export function formatKey(key: Pick<MusicalKey, "pitchClass" | "mode"> | undefined | null): string {
  if (!key) return DASH;
  const name = PITCH_NAMES[key.pitchClass];
  if (name === undefined) return DASH;
  const mode = key.mode === KeyMode.MAJOR ? " major" : key.mode === KeyMode.MINOR ? " minor" : "";
  return name + mode;
}

/** A level with one decimal and its unit, e.g. "−14.2 LUFS". */
export function formatLevel(value: number | undefined | null, unit: string): string {
  if (value == null || !Number.isFinite(value)) return DASH;
  return `${value.toFixed(1).replace("-", "−")} ${unit}`;
}

export function formatBpm(bpm: number | undefined | null): string {
  if (bpm == null || !Number.isFinite(bpm)) return DASH;
  return `${bpm.toFixed(1)} BPM`;
}

/** Pending zero-shot suggestions, one entry per vocabulary in the order
 * given: ["genre", "techno 61 %, house 22 %"]. */
export function formatSuggestions(tags: readonly { vocabulary: string; label: string; probability: number }[]): [string, string][] {
  const lines: [string, string][] = [];
  for (const tag of tags) {
    const item = `${tag.label} ${Math.round(tag.probability * 100)} %`;
    const line = lines.find(([vocabulary]) => vocabulary === tag.vocabulary);
    if (line) line[1] = `${line[1]}, ${item}`;
    else lines.push([tag.vocabulary, item]);
  }
  return lines;
}

/** The half- and double-time readings of a tempo: "also 60.0 BPM (score 0.41), 240.0 BPM (score 0.80)". */
export function formatTempoReadings(readings: readonly { bpm: number; score: number }[]): string {
  if (!readings.length) return "";
  return `also ${readings.map((r) => `${formatBpm(r.bpm)} (score ${r.score.toFixed(2)})`).join(", ")}`;
}

/** How a near-duplicate lines up with its group's first file:
 * "score 0.93, starts 2.400 s in", "score 1.00, same bytes". */
export function formatDuplicateMatch(member: { score: number; offsetSeconds: number; sameBytes: boolean }): string {
  const score = `score ${member.score.toFixed(2)}`;
  if (member.sameBytes) return `${score}, same bytes`;
  const offset = Math.abs(member.offsetSeconds);
  if (offset < 0.0005) return `${score}, aligned`;
  const where = member.offsetSeconds > 0 ? "in (trimmed start)" : "before (longer start)";
  return `${score}, starts ${offset.toFixed(3)} s ${where}`;
}

export function formatPercent(fraction: number | undefined | null, digits = 0): string {
  if (fraction == null || !Number.isFinite(fraction)) return DASH;
  return `${(fraction * 100).toFixed(digits)} %`;
}

export function formatNumber(n: number | bigint | undefined | null): string {
  if (n == null) return DASH;
  return Number(n).toLocaleString("en-US");
}

export function formatHz(hz: number | undefined | null, digits = 0): string {
  if (hz == null || !Number.isFinite(hz)) return DASH;
  return `${hz.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits })} Hz`;
}

export function formatMs(ms: number | undefined | null): string {
  if (ms == null || !Number.isFinite(ms)) return DASH;
  return `${ms < 10 ? ms.toFixed(1) : ms.toFixed(0)} ms`;
}

const RELATIVE_STEPS: [number, Intl.RelativeTimeFormatUnit][] = [
  [60, "second"],
  [60, "minute"],
  [24, "hour"],
  [7, "day"],
  [4.35, "week"],
  [12, "month"],
  [Number.POSITIVE_INFINITY, "year"],
];

const relativeFormat = new Intl.RelativeTimeFormat("en", { numeric: "auto" });

/** "5 minutes ago", "in 2 hours", "now". */
export function formatRelative(date: Date | undefined | null, now: Date = new Date()): string {
  if (!date) return DASH;
  let diff = (date.getTime() - now.getTime()) / 1000;
  if (Math.abs(diff) < 5) return "now";
  for (const [step, unit] of RELATIVE_STEPS) {
    if (Math.abs(diff) < step) return relativeFormat.format(Math.round(diff), unit);
    diff /= step;
  }
  return DASH;
}

/** Absolute time in ISO-like local form, "2024-05-01 13:04:05". */
export function formatDateTime(date: Date | undefined | null): string {
  if (!date) return DASH;
  const p = (n: number) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${p(date.getMonth() + 1)}-${p(date.getDate())} ${p(date.getHours())}:${p(date.getMinutes())}:${p(date.getSeconds())}`;
}

const CODE_WORDS: Record<Code, string> = {
  [Code.Canceled]: "Canceled",
  [Code.Unknown]: "Unknown error",
  [Code.InvalidArgument]: "Invalid argument",
  [Code.DeadlineExceeded]: "Deadline exceeded",
  [Code.NotFound]: "Not found",
  [Code.AlreadyExists]: "Already exists",
  [Code.PermissionDenied]: "Permission denied",
  [Code.ResourceExhausted]: "Resource exhausted",
  [Code.FailedPrecondition]: "Failed precondition",
  [Code.Aborted]: "Aborted",
  [Code.OutOfRange]: "Out of range",
  [Code.Unimplemented]: "Unimplemented",
  [Code.Internal]: "Internal error",
  [Code.Unavailable]: "Unavailable",
  [Code.DataLoss]: "Data loss",
  [Code.Unauthenticated]: "Unauthenticated",
};

export function codeToWords(code: Code): string {
  return CODE_WORDS[code] ?? `Code ${code}`;
}

/** "Not found: file 123 does not exist" from any thrown value. */
export function describeError(err: unknown): string {
  const e = ConnectError.from(err);
  const msg = e.rawMessage || "no details";
  return `${codeToWords(e.code)}: ${msg}`;
}

const FORMAT_NAMES: Record<AudioFormat, string> = {
  [AudioFormat.UNSPECIFIED]: "—",
  [AudioFormat.WAV]: "WAV",
  [AudioFormat.AIFF]: "AIFF",
  [AudioFormat.FLAC]: "FLAC",
  [AudioFormat.MP3]: "MP3",
  [AudioFormat.OGG]: "Ogg Vorbis",
  [AudioFormat.M4A]: "M4A",
};

export function formatName(f: AudioFormat): string {
  return FORMAT_NAMES[f] ?? String(f);
}

/** Names as the server reports them in NamedCount, e.g. "AUDIO_FORMAT_FLAC". */
export function enumLabel(name: string): string {
  const stripped = name.replace(/^(AUDIO_FORMAT|JOB_STATE|FILE_STATE|JOB_STAGE)_/, "");
  const fmt = (AudioFormat as unknown as Record<string, AudioFormat>)[stripped];
  if (name.startsWith("AUDIO_FORMAT_") && fmt !== undefined) return formatName(fmt);
  return stripped.charAt(0) + stripped.slice(1).toLowerCase();
}

export function fileStateName(s: FileState): string {
  switch (s) {
    case FileState.PROCESSING:
      return "Processing";
    case FileState.READY:
      return "Ready";
    case FileState.FAILED:
      return "Failed";
    default:
      return "Unknown";
  }
}

export function jobStateName(s: JobState): string {
  switch (s) {
    case JobState.QUEUED:
      return "Queued";
    case JobState.RUNNING:
      return "Running";
    case JobState.SUCCEEDED:
      return "Succeeded";
    case JobState.FAILED:
      return "Failed";
    default:
      return "Unknown";
  }
}

export function jobStageName(s: JobStage): string {
  switch (s) {
    case JobStage.STORE:
      return "store";
    case JobStage.PROBE:
      return "probe";
    case JobStage.DECODE:
      return "decode";
    case JobStage.ANALYSE:
      return "analyse";
    case JobStage.EMBED:
      return "embed";
    default:
      return "";
  }
}
