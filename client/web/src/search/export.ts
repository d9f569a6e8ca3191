// Export of the displayed hits as CSV, JSON or M3U8. Plain functions, no DOM.
import type { SearchHit } from "../gen/traum/v1/search_pb";
import { formatKey, formatName } from "../lib/format";

export type ExportFormat = "csv" | "json" | "m3u8";

export interface ExportRow {
  id: string;
  filename: string;
  score: number;
  cosine: number;
  segment_start_seconds: number;
  segment_end_seconds: number;
  duration_seconds: number;
  bpm: number | null;
  key: string | null;
  tags: string[];
  format: string;
  url: string;
}

export function audioUrlFor(origin: string, fileId: string): string {
  return `${origin}/api/files/${encodeURIComponent(fileId)}/audio`;
}

export function exportRows(hits: SearchHit[], origin: string): ExportRow[] {
  return hits.map((h) => {
    const f = h.file;
    const id = f?.fileId ?? "";
    return {
      id,
      filename: f?.filename ?? "",
      score: h.score,
      cosine: h.cosine,
      segment_start_seconds: h.segmentStartSeconds,
      segment_end_seconds: h.segmentEndSeconds,
      duration_seconds: f?.durationSeconds ?? 0,
      bpm: f?.bpm ?? null,
      key: f?.key ? formatKey(f.key) : null,
      tags: f?.tags ?? [],
      format: f ? formatName(f.format) : "",
      url: audioUrlFor(origin, id),
    };
  });
}

const CSV_COLUMNS: (keyof ExportRow)[] = [
  "id",
  "filename",
  "score",
  "cosine",
  "segment_start_seconds",
  "segment_end_seconds",
  "duration_seconds",
  "bpm",
  "key",
  "tags",
  "format",
  "url",
];

/** RFC 4180: quote fields with comma, quote, CR or LF; double the quotes. */
export function csvField(v: string): string {
  return /[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

export function toCsv(rows: ExportRow[]): string {
  const lines = [CSV_COLUMNS.join(",")];
  for (const r of rows) {
    lines.push(
      CSV_COLUMNS.map((c) => {
        const v = r[c];
        if (v == null) return "";
        if (Array.isArray(v)) return csvField(v.join(";"));
        return csvField(String(v));
      }).join(","),
    );
  }
  return lines.join("\r\n") + "\r\n";
}

export function toJson(rows: ExportRow[]): string {
  return JSON.stringify(rows, null, 2) + "\n";
}

/** Extended M3U: `#EXTINF:<whole seconds>,<filename>` then the absolute audio URL. */
export function toM3u8(rows: ExportRow[]): string {
  const lines = ["#EXTM3U"];
  for (const r of rows) {
    lines.push(`#EXTINF:${Math.round(r.duration_seconds)},${r.filename.replace(/[\r\n]+/g, " ")}`);
    lines.push(r.url);
  }
  return lines.join("\n") + "\n";
}

export const EXPORT_TYPES: Record<ExportFormat, { mime: string; ext: string; label: string }> = {
  csv: { mime: "text/csv;charset=utf-8", ext: "csv", label: "CSV" },
  json: { mime: "application/json", ext: "json", label: "JSON" },
  m3u8: { mime: "audio/x-mpegurl", ext: "m3u8", label: "M3U8 playlist" },
};

export function exportText(format: ExportFormat, hits: SearchHit[], origin: string): string {
  const rows = exportRows(hits, origin);
  return format === "csv" ? toCsv(rows) : format === "json" ? toJson(rows) : toM3u8(rows);
}
