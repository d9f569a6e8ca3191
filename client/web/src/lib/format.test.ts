import { describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { KeyMode, MusicalKeySchema } from "../gen/traum/v1/audio_pb";
import {
  codeToWords,
  describeError,
  enumLabel,
  formatBpm,
  formatBytes,
  formatDuration,
  formatKey,
  formatLevel,
  formatLongDuration,
  formatRelative,
  formatSuggestions,
  formatTempoReadings,
  formatDuplicateMatch,
} from "./format";

describe("format", () => {
  it("formats durations", () => {
    expect(formatDuration(0)).toBe("0:00");
    expect(formatDuration(5.9)).toBe("0:05");
    expect(formatDuration(65)).toBe("1:05");
    expect(formatDuration(3600)).toBe("1:00:00");
    expect(formatDuration(3725)).toBe("1:02:05");
    expect(formatDuration(undefined)).toBe("—");
    expect(formatDuration(Number.NaN)).toBe("—");
    expect(formatLongDuration(7500)).toBe("2 h 5 min");
    expect(formatLongDuration(42)).toBe("42 s");
  });

  it("formats bytes in SI units", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(999)).toBe("999 B");
    expect(formatBytes(1000)).toBe("1.00 kB");
    expect(formatBytes(1_500_000n)).toBe("1.50 MB");
    expect(formatBytes(12_345_678_901)).toBe("12.3 GB");
    expect(formatBytes(250_000_000)).toBe("250 MB");
  });

  it("names keys", () => {
    expect(formatKey(create(MusicalKeySchema, { pitchClass: 9, mode: KeyMode.MINOR }))).toBe("A minor");
    expect(formatKey(create(MusicalKeySchema, { pitchClass: 1, mode: KeyMode.MINOR }))).toBe("C♯ minor");
    expect(formatKey(create(MusicalKeySchema, { pitchClass: 0, mode: KeyMode.MAJOR }))).toBe("C major");
    expect(formatKey(undefined)).toBe("—");
    expect(formatKey(create(MusicalKeySchema, { pitchClass: 12 }))).toBe("—");
  });

  it("formats levels and tempo with one decimal", () => {
    expect(formatLevel(-14.234, "LUFS")).toBe("−14.2 LUFS");
    expect(formatLevel(0, "dBFS")).toBe("0.0 dBFS");
    expect(formatLevel(undefined, "LUFS")).toBe("—");
    expect(formatBpm(120)).toBe("120.0 BPM");
  });

  it("groups suggestions by vocabulary and lists tempo readings", () => {
    expect(
      formatSuggestions([
        { vocabulary: "genre", label: "techno", probability: 0.614 },
        { vocabulary: "genre", label: "house", probability: 0.22 },
        { vocabulary: "kind", label: "loop", probability: 0.9 },
      ]),
    ).toEqual([
      ["genre", "techno 61 %, house 22 %"],
      ["kind", "loop 90 %"],
    ]);
    expect(formatSuggestions([])).toEqual([]);
    expect(formatTempoReadings([{ bpm: 60, score: 0.414 }, { bpm: 240, score: 0.8 }])).toBe(
      "also 60.0 BPM (score 0.41), 240.0 BPM (score 0.80)",
    );
    expect(formatTempoReadings([])).toBe("");
  });

  it("formats near-duplicate matches", () => {
    expect(formatDuplicateMatch({ score: 0.934, offsetSeconds: 2.4, sameBytes: false })).toBe(
      "score 0.93, starts 2.400 s in (trimmed start)",
    );
    expect(formatDuplicateMatch({ score: 0.8, offsetSeconds: -0.25, sameBytes: false })).toBe(
      "score 0.80, starts 0.250 s before (longer start)",
    );
    expect(formatDuplicateMatch({ score: 0.9, offsetSeconds: 0.0001, sameBytes: false })).toBe("score 0.90, aligned");
    expect(formatDuplicateMatch({ score: 1, offsetSeconds: 0, sameBytes: true })).toBe("score 1.00, same bytes");
  });

  it("formats relative times", () => {
    const now = new Date("2024-01-01T12:00:00Z");
    expect(formatRelative(new Date("2024-01-01T11:55:00Z"), now)).toBe("5 minutes ago");
    expect(formatRelative(new Date("2024-01-01T14:00:00Z"), now)).toBe("in 2 hours");
    expect(formatRelative(new Date("2024-01-01T12:00:01Z"), now)).toBe("now");
    expect(formatRelative(new Date("2023-12-31T12:00:00Z"), now)).toBe("yesterday");
  });

  it("puts gRPC codes into words", () => {
    expect(codeToWords(Code.NotFound)).toBe("Not found");
    expect(codeToWords(Code.ResourceExhausted)).toBe("Resource exhausted");
    expect(describeError(new ConnectError("file 123 does not exist", Code.NotFound))).toBe(
      "Not found: file 123 does not exist",
    );
    expect(describeError(new Error("boom"))).toBe("Unknown error: boom");
  });

  it("labels server enum names", () => {
    expect(enumLabel("AUDIO_FORMAT_FLAC")).toBe("FLAC");
    expect(enumLabel("JOB_STATE_SUCCEEDED")).toBe("Succeeded");
  });
});
