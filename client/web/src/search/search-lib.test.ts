import { describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { AudioFormat, KeyMode, WaveformSchema } from "../gen/traum/v1/audio_pb";
import { SearchHitSchema } from "../gen/traum/v1/search_pb";
import { emptyState, formatSearch, parseSearch, toProtoOptions, validateFilters, type SearchState } from "./url-state";
import { csvField, exportText, toCsv, exportRows } from "./export";
import { encodeWav, floatToInt16, concatBlocks } from "./wav";
import { actionForKey, isTypingTarget, SHORTCUTS } from "./keymap";
import { FetchQueue, MAX_WAVEFORM_REQUESTS, overviewOf, windowStrip } from "./waveforms";
import type { Api } from "../api/client";

describe("URL state", () => {
  it("round-trips every field", () => {
    const st: SearchState = {
      source: { kind: "text", query: "warm pad, 120 bpm & more" },
      filters: {
        minDuration: 1.5,
        maxDuration: 30,
        minBpm: 90,
        maxBpm: 128,
        keys: [
          { pitchClass: 9, mode: KeyMode.MINOR },
          { pitchClass: 0, mode: KeyMode.MAJOR },
        ],
        tagsAll: ["drums", "lo fi"],
        tagsAny: ["a"],
        tagsNone: ["vocals"],
        formats: [AudioFormat.WAV, AudioFormat.FLAC],
        keywords: "kick snare",
        minScore: 0.25,
      },
      keywordWeight: 0.3,
      good: ["g1", "g2"],
      bad: ["b1"],
    };
    const text = formatSearch(st);
    expect(parseSearch(text)).toEqual(st);
    expect(formatSearch(parseSearch(text))).toBe(text);
  });
  it("round-trips similar with a range, and clip/recording keep only the kind", () => {
    const sim = { ...emptyState(), source: { kind: "similar" as const, fileId: "abc", start: 1.25, end: 4 } };
    expect(formatSearch(sim)).toBe("?similar=abc&start=1.25&end=4");
    expect(parseSearch(formatSearch(sim))).toEqual(sim);
    const clip = { ...emptyState(), source: { kind: "clip" as const } };
    expect(parseSearch(formatSearch(clip))).toEqual(clip);
    expect(formatSearch(emptyState())).toBe("");
    expect(parseSearch("")).toEqual(emptyState());
  });
  it("ignores malformed values", () => {
    const st = parseSearch("?q=x&dmin=abc&key=13-major&key=2-dorian&fmt=xyz&w=7");
    expect(st.filters.minDuration).toBeUndefined();
    expect(st.filters.keys).toEqual([]);
    expect(st.filters.formats).toEqual([]);
    expect(st.keywordWeight).toBe(1);
  });
  it("refine is absent without marks", () => {
    expect(toProtoOptions(emptyState(), 50).refine).toBeUndefined();
    expect(toProtoOptions({ ...emptyState(), good: ["a"] }, 50).refine).toEqual({ goodFileIds: ["a"], badFileIds: [] });
  });
  it("validates min above max", () => {
    expect(validateFilters({ ...emptyState().filters, minBpm: 130, maxBpm: 120 })).toEqual(["Minimum BPM must not be above the maximum BPM."]);
    expect(validateFilters({ ...emptyState().filters, minDuration: 1, maxDuration: 2 })).toEqual([]);
  });
});

function hit(id: string, filename: string, extra: Partial<{ bpm: number; tags: string[] }> = {}) {
  return create(SearchHitSchema, {
    file: { fileId: id, filename, durationSeconds: 12.6, bpm: extra.bpm, tags: extra.tags ?? [], format: AudioFormat.WAV, key: { pitchClass: 9, mode: KeyMode.MINOR } },
    score: 0.5,
    cosine: 0.4,
    segmentStartSeconds: 2,
    segmentEndSeconds: 7,
  });
}

describe("export", () => {
  const hits = [hit("id-1", 'a "quoted", name.wav', { bpm: 120, tags: ["x", "y"] }), hit("id-2", "b.wav")];
  it("CSV quotes and lists every hit", () => {
    expect(csvField('a"b')).toBe('"a""b"');
    const csv = toCsv(exportRows(hits, "http://h"));
    const lines = csv.trimEnd().split("\r\n");
    expect(lines).toHaveLength(3);
    expect(lines[0]).toBe("id,filename,score,cosine,segment_start_seconds,segment_end_seconds,duration_seconds,bpm,key,tags,format,url");
    expect(lines[1]).toBe('id-1,"a ""quoted"", name.wav",0.5,0.4,2,7,12.6,120,A minor,x;y,WAV,http://h/api/files/id-1/audio');
    expect(lines[2]).toContain("id-2,b.wav,0.5,0.4,2,7,12.6,,A minor,,WAV,");
  });
  it("JSON parses back", () => {
    const rows = JSON.parse(exportText("json", hits, "http://h"));
    expect(rows.map((r: { id: string }) => r.id)).toEqual(["id-1", "id-2"]);
    expect(rows[0].tags).toEqual(["x", "y"]);
    expect(rows[1].bpm).toBeNull();
  });
  it("M3U8 has EXTINF and absolute URLs", () => {
    expect(exportText("m3u8", hits, "http://h:1")).toBe(
      '#EXTM3U\n#EXTINF:13,a "quoted", name.wav\nhttp://h:1/api/files/id-1/audio\n#EXTINF:13,b.wav\nhttp://h:1/api/files/id-2/audio\n',
    );
  });
});

describe("WAV", () => {
  it("writes a 16-bit mono PCM header and samples", () => {
    const bytes = encodeWav(concatBlocks([new Float32Array([0, 1]), new Float32Array([-1, 0.5, 2])]), 48000);
    const v = new DataView(bytes.buffer);
    const ascii = (o: number, n: number) => String.fromCharCode(...bytes.slice(o, o + n));
    expect(bytes.length).toBe(44 + 10);
    expect(ascii(0, 4)).toBe("RIFF");
    expect(v.getUint32(4, true)).toBe(36 + 10);
    expect(ascii(8, 8)).toBe("WAVEfmt ");
    expect(v.getUint16(20, true)).toBe(1);
    expect(v.getUint16(22, true)).toBe(1);
    expect(v.getUint32(24, true)).toBe(48000);
    expect(v.getUint32(28, true)).toBe(96000);
    expect(v.getUint16(32, true)).toBe(2);
    expect(v.getUint16(34, true)).toBe(16);
    expect(ascii(36, 4)).toBe("data");
    expect(v.getUint32(40, true)).toBe(10);
    expect([0, 1, 2, 3, 4].map((i) => v.getInt16(44 + i * 2, true))).toEqual([0, 32767, -32768, 16384, 32767]);
    expect(floatToInt16(Number.NaN)).toBe(0);
  });
});

describe("keyboard map", () => {
  const el = (html: string) => {
    const d = document.createElement("div");
    d.innerHTML = html;
    return d.firstElementChild as HTMLElement;
  };
  it("maps the audition keys", () => {
    const body = document.body;
    expect(actionForKey({ key: " ", target: body })).toBe("toggle");
    expect(actionForKey({ key: "ArrowDown", target: body })).toBe("next");
    expect(actionForKey({ key: "ArrowUp", target: body })).toBe("previous");
    expect(actionForKey({ key: "j", target: body })).toBe("back");
    expect(actionForKey({ key: "K", target: body })).toBe("pause");
    expect(actionForKey({ key: "l", target: body })).toBe("forward");
    expect(actionForKey({ key: "?", target: body })).toBe("help");
    expect(actionForKey({ key: "/", target: body })).toBe("focusSearch");
    expect(actionForKey({ key: "x", target: body })).toBeNull();
    expect(actionForKey({ key: "j", ctrlKey: true, target: body })).toBeNull();
  });
  it("ignores keys while typing, and Space on buttons", () => {
    expect(isTypingTarget(el('<input type="search">'))).toBe(true);
    expect(isTypingTarget(el('<input type="range">'))).toBe(true);
    expect(isTypingTarget(el("<textarea></textarea>"))).toBe(true);
    expect(isTypingTarget(el('<input type="checkbox">'))).toBe(false);
    expect(actionForKey({ key: "j", target: el('<input type="text">') })).toBeNull();
    expect(actionForKey({ key: "/", target: el("<select></select>") })).toBeNull();
    expect(actionForKey({ key: " ", target: el("<button>x</button>") })).toBeNull();
    expect(actionForKey({ key: "ArrowDown", target: el("<button>x</button>") })).toBe("next");
  });
  it("lists every action in the help", () => {
    expect(new Set(SHORTCUTS.map((s) => s.action)).size).toBe(8);
  });
});

describe("window strip", () => {
  it("places each window between its start and the next, the last at most at the file's end", () => {
    expect(windowStrip([0, 10, 20], [0.1, 0.3, 0.2], 25)).toEqual([
      { start: 0, end: 0.4, score: 0.1, startSeconds: 0, endSeconds: 10, shade: 0.15 },
      { start: 0.4, end: 0.8, score: 0.3, startSeconds: 10, endSeconds: 20, shade: 1 },
      { start: 0.8, end: 1, score: 0.2, startSeconds: 20, endSeconds: 25, shade: expect.closeTo(0.575, 9) },
    ]);
    expect(windowStrip([0], [0.5], 0)).toEqual([]);
  });
  it("shades equal windows alike and treats a missing score as 0", () => {
    expect(windowStrip([0, 10], [0.4, 0.4], 20).map((w) => w.shade)).toEqual([1, 1]);
    expect(windowStrip([0, 10], [0.4], 20).map((w) => w.score)).toEqual([0.4, 0]);
  });
});

describe("waveform fetches", () => {
  function deferred() {
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    return { promise, resolve };
  }
  const flush = () => new Promise((r) => setTimeout(r, 0));

  it("runs at most `limit` at once, in order, and a failure frees its slot", async () => {
    const q = new FetchQueue(2);
    const started: number[] = [];
    const gates = [0, 1, 2, 3].map(() => deferred());
    const results = gates.map((g, i) =>
      q.run(async () => {
        started.push(i);
        await g.promise;
        if (i === 0) throw new Error("boom");
        return i;
      }),
    );
    await flush();
    expect(started).toEqual([0, 1]);
    expect([q.inFlight, q.queued]).toEqual([2, 2]);
    gates[0].resolve();
    await expect(results[0]).rejects.toThrow("boom");
    await flush();
    expect(started).toEqual([0, 1, 2]);
    gates[1].resolve();
    gates[2].resolve();
    await flush();
    expect(started).toEqual([0, 1, 2, 3]);
    gates[3].resolve();
    expect(await Promise.all(results.slice(1))).toEqual([1, 2, 3]);
    expect([q.inFlight, q.queued]).toEqual([0, 0]);
  });

  it("a fetch that throws at once still frees its slot", async () => {
    const q = new FetchQueue(1);
    await expect(
      q.run(() => {
        throw new Error("sync");
      }),
    ).rejects.toThrow("sync");
    expect(await q.run(async () => 7)).toBe(7);
  });

  it("asks the server once per file, through the queue, and again after a failure", async () => {
    const q = new FetchQueue(MAX_WAVEFORM_REQUESTS);
    const asked: string[] = [];
    let fail = true;
    const api = {
      audio: {
        getWaveform: async ({ fileId }: { fileId: string }) => {
          asked.push(fileId);
          if (fileId === "bad" && fail) throw new Error("unavailable");
          return create(WaveformSchema, { fileId, overview: { pairCount: 1, samplesPerPair: 1, peaks: new Uint8Array([0x81, 0x7f]) } });
        },
      },
    } as unknown as Pick<Api, "audio">;
    const [a, b] = await Promise.all([overviewOf(api, "a", q), overviewOf(api, "a", q)]);
    expect(a?.pairCount).toBe(1);
    expect(b).toBe(a);
    expect(await overviewOf(api, "bad", q)).toBeUndefined();
    fail = false;
    expect((await overviewOf(api, "bad", q))?.pairCount).toBe(1);
    expect(asked).toEqual(["a", "bad", "bad"]);
  });
});
