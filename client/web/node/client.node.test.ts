// The standalone client as a Node program uses it: imported by the package's
// export path (never from src/gen or the app), against a real traum-server
// with auth required and the tiny CLAP fixture model. e2e/harness.ts only
// starts the server and creates the key.
import { createHash, randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  AudioFormat,
  Code,
  ConnectError,
  FileState,
  HealthCheckResponse_ServingStatus,
  JobState,
  RetryInfoSchema,
  createTraumClient,
  errorDetails,
  followJob,
  uploadFile,
  type Job,
  type TraumClient,
  type UploadProgress,
} from "traum-web/client/node";
import { createKey, startServer, type TraumServer } from "../e2e/harness";

/** 16-bit mono PCM WAV of a sine at `freq` Hz; different frequencies make different files. */
function sineWav(seconds: number, freq: number, rate = 22_050): Uint8Array {
  const frames = Math.round(seconds * rate);
  const out = new Uint8Array(44 + frames * 2);
  const v = new DataView(out.buffer);
  const ascii = (off: number, s: string) => [...s].forEach((c, i) => v.setUint8(off + i, c.charCodeAt(0)));
  ascii(0, "RIFF");
  v.setUint32(4, 36 + frames * 2, true);
  ascii(8, "WAVEfmt ");
  v.setUint32(16, 16, true);
  v.setUint16(20, 1, true); // PCM
  v.setUint16(22, 1, true);
  v.setUint32(24, rate, true);
  v.setUint32(28, rate * 2, true);
  v.setUint16(32, 2, true);
  v.setUint16(34, 16, true);
  ascii(36, "data");
  v.setUint32(40, frames * 2, true);
  for (let i = 0; i < frames; i++) v.setInt16(44 + i * 2, Math.round(Math.sin((2 * Math.PI * freq * i) / rate) * 12_000), true);
  return out;
}

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** The error a call rejects with; fails the test if it succeeds. */
async function failure(call: Promise<unknown>): Promise<unknown> {
  try {
    await call;
  } catch (err) {
    return err;
  }
  throw new Error("the call succeeded, expected it to fail");
}

let server: TraumServer;
let apiKey: string;
/** Native gRPC over HTTP/2 (the native port). */
let grpc: TraumClient;
/** gRPC-web over fetch (the web port), as a browser would. */
let web: TraumClient;

beforeAll(async () => {
  server = await startServer({ auth: "required" });
  apiKey = createKey(server, "write", "node-smoke").key;
  grpc = createTraumClient({ baseUrl: server.nativeUrl, apiKey, protocol: "grpc" });
  web = createTraumClient({ baseUrl: server.webUrl, apiKey, protocol: "grpc-web" });
});

afterAll(async () => {
  await server?.stop();
});

describe("a Node program using the client", () => {
  const tone = sineWav(2, 440);
  let fileId = "";

  test("is refused without its key, and answered with it", async () => {
    const anonymous = createTraumClient({ baseUrl: server.nativeUrl, protocol: "grpc" });
    expect(errorDetails(await failure(anonymous.audio.listFiles({}))).code).toBe(Code.Unauthenticated);
    expect((await grpc.health.check({})).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    await grpc.audio.listFiles({});
  });

  test("uploads a WAV over the stream with progress and follows its job to SUCCEEDED", async () => {
    const progress: UploadProgress[] = [];
    const res = await uploadFile(grpc, tone, { filename: "a440.wav", tags: ["Sine", "test"], chunkBytes: 16 * 1024, onProgress: (p) => progress.push(p) });
    expect(res).toMatchObject({ duplicate: false, sizeBytes: BigInt(tone.length), sha256: sha256(tone), format: AudioFormat.WAV });
    expect(progress.length).toBe(Math.ceil(tone.length / (16 * 1024)));
    expect(progress.at(-1)).toEqual({ sentBytes: tone.length, totalBytes: tone.length });
    expect(progress.every((p, i) => i === 0 || p.sentBytes > progress[i - 1].sentBytes)).toBe(true);

    const updates: Job[] = [];
    const job = await followJob(grpc, res.jobId, { onUpdate: (j) => updates.push(j) });
    expect(job.state, job.error).toBe(JobState.SUCCEEDED);
    expect(job.fileId).toBe(res.fileId);
    expect(updates.at(-1)?.state).toBe(JobState.SUCCEEDED);
    fileId = res.fileId;
  });

  test("lists the file, READY with its tags", async () => {
    const { files } = await grpc.audio.listFiles({ pageSize: 1000 });
    const f = files.find((x) => x.fileId === fileId);
    expect(f).toMatchObject({ filename: "a440.wav", tags: ["sine", "test"], state: FileState.READY, sizeBytes: BigInt(tone.length) });
  });

  test("finds it by text and by the same clip (SearchByAudioClip), over both protocols", async () => {
    const text = await grpc.search.searchByText({ query: "a sine tone", options: { limit: 50 } });
    expect(text.hits.map((h) => h.file?.fileId)).toContain(fileId);
    for (const client of [grpc, web]) {
      const clip = await client.search.searchByAudioClip({ audio: tone, options: { limit: 50 } });
      const ours = clip.hits.find((h) => h.file?.fileId === fileId);
      expect(ours, `${client.protocol}: hits ${JSON.stringify(clip.hits.map((h) => h.file?.filename))}`).toBeDefined();
      // Its own clip: no file can sound more like it.
      expect(ours!.cosine).toBeCloseTo(clip.hits[0].cosine, 6);
    }
  });

  test("uploads over the resumable path from gRPC-web, and resumes a broken upload where the server stands", async () => {
    const data = sineWav(3, 660);
    const piece = 16 * 1024;
    let uploadId = "";
    // A source that fails after three pieces, as a dying disk or a killed producer would.
    async function* brokenSource() {
      for (let off = 0; off < 3 * piece; off += piece) yield data.subarray(off, off + piece);
      throw new Error("source went away");
    }
    const broken = await failure(uploadFile(web, brokenSource(), { filename: "e660.wav", chunkBytes: piece, sizeBytes: data.length, onSession: (s) => (uploadId = s.uploadId) }));
    expect(String(broken)).toContain("source went away");
    expect(uploadId).not.toBe("");
    const held = Number((await web.audio.getUpload({ uploadId })).receivedBytes);
    expect(held).toBe(3 * piece);

    const progress: number[] = [];
    const res = await uploadFile(web, data, { filename: "e660.wav", uploadId, chunkBytes: piece, onProgress: (p) => progress.push(p.sentBytes) });
    expect(progress[0]).toBe(held);
    expect(progress.at(-1)).toBe(data.length);
    expect(res).toMatchObject({ duplicate: false, sizeBytes: BigInt(data.length), sha256: sha256(data) });
    const job = await followJob(web, res.jobId);
    expect(job.state, job.error).toBe(JobState.SUCCEEDED);
  });

  test("uploads over the resumable path from native gRPC too", async () => {
    const data = sineWav(1, 880);
    const res = await uploadFile(grpc, data, { filename: "a880.wav", method: "resumable", chunkBytes: 8 * 1024 });
    expect(res.sha256).toBe(sha256(data));
    expect((await followJob(grpc, res.jobId)).state).toBe(JobState.SUCCEEDED);
  });

  test("deletes the file; then it is NOT_FOUND, with ResourceInfo naming it", async () => {
    await grpc.audio.deleteFile({ fileId });
    const { files } = await grpc.audio.listFiles({ pageSize: 1000 });
    expect(files.map((f) => f.fileId)).not.toContain(fileId);
    const d = errorDetails(await failure(grpc.audio.getFile({ fileId })));
    expect(d.code).toBe(Code.NotFound);
    expect(d.resource).toMatchObject({ type: "traum.v1.File", name: fileId });
  });
});

describe("bad input gets a precise code and decoded details", () => {
  for (const [name, client] of [
    ["grpc", () => grpc],
    ["grpc-web", () => web],
  ] as const) {
    test(`${name}: GetFile of an unknown id is NOT_FOUND with ResourceInfo`, async () => {
      const id = randomUUID();
      const d = errorDetails(await failure(client().audio.getFile({ fileId: id })));
      expect(d.code, d.message).toBe(Code.NotFound);
      expect(d.resource).toMatchObject({ type: "traum.v1.File", name: id });
    });

    test(`${name}: an empty text query is INVALID_ARGUMENT naming the field query`, async () => {
      const d = errorDetails(await failure(client().search.searchByText({ query: "" })));
      expect(d.code, d.message).toBe(Code.InvalidArgument);
      expect(d.fieldViolations.map((v) => v.field)).toEqual(["query"]);
      expect(d.fieldViolations[0].description).not.toBe("");
    });

    test(`${name}: keyword_weight 2 and limit 500 are INVALID_ARGUMENT naming options.keyword_weight and options.limit`, async () => {
      const weight = errorDetails(await failure(client().search.searchByText({ query: "kick", options: { keywordWeight: 2 } })));
      expect(weight.code, weight.message).toBe(Code.InvalidArgument);
      expect(weight.fieldViolations.map((v) => v.field)).toEqual(["options.keyword_weight"]);
      const limit = errorDetails(await failure(client().search.searchByText({ query: "kick", options: { limit: 500 } })));
      expect(limit.code, limit.message).toBe(Code.InvalidArgument);
      expect(limit.fieldViolations.map((v) => v.field)).toEqual(["options.limit"]);
    });
  }

  test("a rate-limited search is RESOURCE_EXHAUSTED with RetryInfo", async () => {
    // A bucket of one search refilled every 1000 s: the second search is over the limit.
    process.env.TRAUM_SEARCH_RATE = "0.001";
    process.env.TRAUM_SEARCH_BURST = "1";
    let limited: TraumServer;
    try {
      limited = await startServer({ model: false });
    } finally {
      delete process.env.TRAUM_SEARCH_RATE;
      delete process.env.TRAUM_SEARCH_BURST;
    }
    try {
      const client = createTraumClient({ baseUrl: limited.nativeUrl, protocol: "grpc" });
      // The first one is let through (and refused for having no model).
      await failure(client.search.searchByText({ query: "kick" }));
      const err = await failure(client.search.searchByText({ query: "kick" }));
      const d = errorDetails(err);
      expect(d.code, d.message).toBe(Code.ResourceExhausted);
      expect(d.retryDelaySeconds).toBeGreaterThan(0);
      expect(d.retryDelaySeconds).toBeLessThanOrEqual(1000);
      expect(ConnectError.from(err).findDetails(RetryInfoSchema)).toHaveLength(1);
    } finally {
      await limited.stop();
    }
  });
});
