// @vitest-environment node
// The client's own logic against an in-memory server (router transport): the
// bearer header, error details decoding, both upload paths with their
// recovery, and job following when the stream ends early.
import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createRouterTransport, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import { describe, expect, test } from "vitest";
import { BadRequestSchema, ResourceInfoSchema, RetryInfoSchema } from "../gen/google/rpc/error_details_pb";
import {
  AudioFormat,
  AudioService,
  JobSchema,
  JobState,
  UploadResultSchema,
  UploadSessionSchema,
  type Job,
  type UploadAudioRequest,
} from "../gen/traum/v1/audio_pb";
import { SearchService } from "../gen/traum/v1/search_pb";
import { createTraumClient, errorDetails, followJob, uploadFile, type TraumClient, type UploadProgress } from "./index";

function clientOf(routes: (r: ConnectRouter) => void, protocol: "grpc" | "grpc-web" = "grpc", apiKey?: string): TraumClient {
  return createTraumClient({
    baseUrl: "http://traum.test",
    protocol,
    apiKey,
    transport: ({ interceptors }) => createRouterTransport(routes, { transport: { interceptors } }),
  });
}

function bytes(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

async function* pieces(data: Uint8Array, sizes: number[]): AsyncIterable<Uint8Array> {
  let off = 0;
  for (let i = 0; off < data.length; i++) {
    const n = sizes[i % sizes.length];
    yield data.slice(off, off + n);
    off += n;
  }
}

describe("createTraumClient", () => {
  test("sends the API key as a bearer token on every call", async () => {
    const seen: (string | null)[] = [];
    const client = clientOf(
      (r) =>
        r.service(AudioService, {
          getJob(req, ctx: HandlerContext) {
            seen.push(ctx.requestHeader.get("authorization"));
            return { jobId: req.jobId, state: JobState.QUEUED };
          },
        }),
      "grpc",
      "traum_secret",
    );
    await client.audio.getJob({ jobId: "a" });
    await client.audio.getJob({ jobId: "b" });
    expect(seen).toEqual(["Bearer traum_secret", "Bearer traum_secret"]);
  });

  test("refuses what it cannot honour, saying why", () => {
    expect(() => createTraumClient({ baseUrl: "http://x", protocol: "grpc" })).toThrow(/HTTP\/2.*node/);
    expect(() => createTraumClient({ protocol: "grpc-web" })).toThrow(/baseUrl is required/);
    expect(() => createTraumClient({ baseUrl: "127.0.0.1:50051", protocol: "grpc-web" })).toThrow(/http:\/\/ or https:\/\//);
    expect(() => createTraumClient({ baseUrl: "http://x", protocol: "h3" as "grpc" })).toThrow(/"grpc" or "grpc-web"/);
    expect(() => createTraumClient({ baseUrl: "http://x", protocol: "grpc-web", apiKey: "two words" })).toThrow(/whitespace.*index 3/);
    const ready = createRouterTransport(() => {});
    expect(() => createTraumClient({ protocol: "grpc", transport: ready, apiKey: "k" })).toThrow(/bearerInterceptor/);
    expect(createTraumClient({ protocol: "grpc", transport: ready }).transport).toBe(ready);
  });
});

describe("errorDetails", () => {
  const failing = clientOf((r) =>
    r.service(SearchService, {
      searchByText(req) {
        if (req.query === "") {
          throw new ConnectError("query must not be empty", Code.InvalidArgument, undefined, [
            { desc: BadRequestSchema, value: { fieldViolations: [{ field: "query", description: "must not be empty" }] } },
          ]);
        }
        if (req.query === "busy") {
          throw new ConnectError("slow down", Code.ResourceExhausted, undefined, [
            { desc: RetryInfoSchema, value: { retryDelay: { seconds: 2n, nanos: 500_000_000 } } },
          ]);
        }
        if (req.query === "busy-header") throw new ConnectError("slow down", Code.ResourceExhausted, { "retry-after": "7" });
        throw new ConnectError(`file ${req.query} not found`, Code.NotFound, undefined, [
          {
            desc: ResourceInfoSchema,
            value: { resourceType: "traum.v1.File", resourceName: req.query, description: "no such file" },
          },
        ]);
      },
    }),
  );

  async function failure(query: string): Promise<unknown> {
    try {
      await failing.search.searchByText({ query });
    } catch (err) {
      return err;
    }
    throw new Error("the call succeeded");
  }

  test("decodes BadRequest field violations", async () => {
    expect(errorDetails(await failure(""))).toEqual({
      code: Code.InvalidArgument,
      codeName: "InvalidArgument",
      message: "query must not be empty",
      fieldViolations: [{ field: "query", description: "must not be empty" }],
    });
  });

  test("decodes ResourceInfo", async () => {
    const d = errorDetails(await failure("0f0e0d0c-0000-4000-8000-000000000000"));
    expect(d.code).toBe(Code.NotFound);
    expect(d.resource).toEqual({ type: "traum.v1.File", name: "0f0e0d0c-0000-4000-8000-000000000000", description: "no such file" });
    expect(d.fieldViolations).toEqual([]);
  });

  test("takes the retry delay from RetryInfo, else from retry-after", async () => {
    expect(errorDetails(await failure("busy")).retryDelaySeconds).toBe(2.5);
    expect(errorDetails(await failure("busy-header")).retryDelaySeconds).toBe(7);
  });

  test("turns anything thrown into a code", () => {
    expect(errorDetails(new Error("boom"))).toMatchObject({ code: Code.Unknown, message: "boom", fieldViolations: [] });
  });
});

describe("uploadFile over the stream", () => {
  function streamServer() {
    const got: { header?: UploadAudioRequest["payload"]; chunks: Uint8Array[] } = { chunks: [] };
    const client = clientOf((r) =>
      r.service(AudioService, {
        async uploadAudio(reqs) {
          for await (const req of reqs) {
            if (req.payload.case === "header") got.header = req.payload;
            else if (req.payload.case === "chunk") got.chunks.push(req.payload.value);
          }
          const size = got.chunks.reduce((n, c) => n + c.length, 0);
          return create(UploadResultSchema, { fileId: "f1", jobId: "j1", sizeBytes: BigInt(size), format: AudioFormat.WAV });
        },
      }),
    );
    return { got, client };
  }

  test("sends the header, then the bytes in chunks of at most chunkBytes, reporting progress", async () => {
    const { got, client } = streamServer();
    const data = bytes(10_000);
    const progress: UploadProgress[] = [];
    const res = await uploadFile(client, data, { filename: "a.wav", tags: ["kick"], chunkBytes: 4096, onProgress: (p) => progress.push(p) });
    expect(res.fileId).toBe("f1");
    expect(got.header?.case === "header" && got.header.value).toMatchObject({ filename: "a.wav", tags: ["kick"], sizeBytes: 10_000n });
    expect(got.chunks.map((c) => c.length)).toEqual([4096, 4096, 1808]);
    expect(concat(got.chunks)).toEqual(data);
    expect(progress).toEqual([
      { sentBytes: 4096, totalBytes: 10_000 },
      { sentBytes: 8192, totalBytes: 10_000 },
      { sentBytes: 10_000, totalBytes: 10_000 },
    ]);
  });

  test("re-chunks an async iterable of any piece sizes", async () => {
    const { got, client } = streamServer();
    const data = bytes(9_999, 7);
    await uploadFile(client, pieces(data, [1, 5000, 3, 7000]), { filename: "b.wav", chunkBytes: 4000, sizeBytes: 9_999 });
    expect(got.chunks.map((c) => c.length)).toEqual([4000, 4000, 1999]);
    expect(concat(got.chunks)).toEqual(data);
  });

  test("is refused over gRPC-web, which cannot client-stream", async () => {
    const { client } = streamServer();
    const web = createTraumClient({ protocol: "grpc-web", transport: client.transport });
    await expect(uploadFile(web, bytes(10), { filename: "c.wav", method: "stream" })).rejects.toThrow(/cannot client-stream/);
  });
});

describe("uploadFile, resumable", () => {
  /** A session server; `failPut(n, stored)` decides whether the n-th put fails, and if so whether it keeps the bytes first. */
  function sessionServer(maxChunk: number, failPut: (n: number) => "ok" | "lose-answer" | "drop" = () => "ok") {
    const held: Uint8Array[] = [];
    let puts = 0;
    let finished = 0;
    const received = () => held.reduce((n, c) => n + c.length, 0);
    const session = () =>
      create(UploadSessionSchema, { uploadId: "u1", filename: "r.wav", receivedBytes: BigInt(received()), maxChunkBytes: BigInt(maxChunk), expiresAt: timestampNow() });
    const client = clientOf(
      (r) =>
        r.service(AudioService, {
          startUpload: () => session(),
          getUpload: () => session(),
          putUploadChunk(req) {
            const fate = failPut(puts++);
            if (fate === "drop") throw new ConnectError("link broke", Code.Unavailable);
            if (Number(req.offset) !== received()) throw new ConnectError(`offset ${req.offset} is not ${received()}`, Code.FailedPrecondition);
            if (req.data.length > maxChunk) throw new ConnectError("chunk too large", Code.InvalidArgument);
            held.push(req.data.slice());
            if (fate === "lose-answer") throw new ConnectError("answer lost", Code.Unavailable);
            return session();
          },
          finishUpload() {
            finished++;
            return create(UploadResultSchema, { fileId: "f2", jobId: "j2", sizeBytes: BigInt(received()) });
          },
        }),
      "grpc-web",
    );
    return { client, held: () => concat(held), puts: () => puts, finished: () => finished };
  }

  test("is what auto picks over gRPC-web; chunks follow the session's limit", async () => {
    const s = sessionServer(3000);
    const data = bytes(7000);
    const progress: number[] = [];
    const res = await uploadFile(s.client, data, { filename: "r.wav", onProgress: (p) => progress.push(p.sentBytes) });
    expect(res.fileId).toBe("f2");
    expect(s.held()).toEqual(data);
    expect(progress).toEqual([3000, 6000, 7000]);
    expect(s.finished()).toBe(1);
  });

  test("after a lost answer or a broken link, sends each byte exactly once", async () => {
    // put 1 stores its bytes but its answer is lost; put 3 never arrives.
    const s = sessionServer(1000, (n) => (n === 1 ? "lose-answer" : n === 3 ? "drop" : "ok"));
    const data = bytes(3500, 3);
    await uploadFile(s.client, pieces(data, [700, 900]), { filename: "r.wav", retryDelaysMs: [0, 0] });
    expect(s.held()).toEqual(data);
    // 4 chunks + the dropped one resent; the lost answer needed no resend.
    expect(s.puts()).toBe(5);
  });

  test("gives up after its retries, with the server's error", async () => {
    const s = sessionServer(1000, (n) => (n >= 1 ? "drop" : "ok"));
    const err = await uploadFile(s.client, bytes(2500), { filename: "r.wav", retryDelaysMs: [0, 0] }).catch((e: unknown) => e);
    expect(errorDetails(err)).toMatchObject({ code: Code.Unavailable, message: "link broke" });
    expect(s.puts()).toBe(4);
    expect(s.finished()).toBe(0);
  });

  test("resumes a session by id from where the server stands", async () => {
    const s = sessionServer(1000, (n) => (n === 1 ? "drop" : "ok"));
    const data = bytes(2500, 9);
    let uploadId = "";
    const first = await uploadFile(s.client, data, { filename: "r.wav", retryDelaysMs: [], onSession: (x) => (uploadId = x.uploadId) }).catch(
      (e: unknown) => e,
    );
    expect(errorDetails(first).code).toBe(Code.Unavailable);
    const progress: number[] = [];
    await uploadFile(s.client, pieces(data, [600]), { filename: "r.wav", uploadId, onProgress: (p) => progress.push(p.sentBytes) });
    expect(s.held()).toEqual(data);
    expect(progress).toEqual([1000, 2000, 2500]);
    await expect(uploadFile(s.client, data, { filename: "other.wav", uploadId })).rejects.toThrow(/is of "r.wav"/);
  });
});

describe("followJob", () => {
  const job = (state: JobState, progress = 0): Job => create(JobSchema, { jobId: "j", state, progress });

  /** `streams`: what each WatchJob call sends in turn; `gets`: what each GetJob answers in turn (the last one repeats). */
  function jobServer(streams: (Job | Error)[][], gets: Job[]) {
    let watches = 0;
    let getsSeen = 0;
    const client = clientOf((r) =>
      r.service(AudioService, {
        async *watchJob() {
          for (const item of streams[watches++] ?? []) {
            if (item instanceof Error) throw item;
            yield { job: item, terminal: item.state === JobState.SUCCEEDED || item.state === JobState.FAILED };
          }
        },
        getJob: () => gets[Math.min(getsSeen++, gets.length - 1)],
      }),
    );
    return { client, watches: () => watches };
  }

  test("returns the terminal job and reports every snapshot", async () => {
    const s = jobServer([[job(JobState.QUEUED), job(JobState.RUNNING, 0.5), job(JobState.SUCCEEDED, 1)]], [job(JobState.RUNNING)]);
    const seen: JobState[] = [];
    const done = await followJob(s.client, "j", { onUpdate: (j) => seen.push(j.state) });
    expect(done.state).toBe(JobState.SUCCEEDED);
    expect(seen).toEqual([JobState.QUEUED, JobState.RUNNING, JobState.SUCCEEDED]);
  });

  test("when the stream is cut, asks for the job and watches again while it runs", async () => {
    const s = jobServer(
      [[job(JobState.RUNNING, 0.2), new ConnectError("proxy timeout", Code.Unavailable)], [job(JobState.RUNNING, 0.6)]],
      [job(JobState.RUNNING, 0.4), job(JobState.FAILED)],
    );
    const done = await followJob(s.client, "j", { retryDelaysMs: [0, 0] });
    // After the cut GetJob said running, so it watched again; that stream
    // ended quietly and GetJob then saw the job FAILED.
    expect(done.state).toBe(JobState.FAILED);
    expect(s.watches()).toBe(2);
  });

  test("passes refusals through and stops after its retries", async () => {
    const notFound = jobServer([[new ConnectError("job j not found", Code.NotFound)]], [job(JobState.RUNNING)]);
    await expect(followJob(notFound.client, "j")).rejects.toMatchObject({ code: Code.NotFound });
    const silent = jobServer([], [job(JobState.RUNNING)]);
    const err = await followJob(silent.client, "j", { retryDelaysMs: [0, 0] }).catch((e: unknown) => e);
    expect(errorDetails(err)).toMatchObject({ code: Code.Unavailable, message: expect.stringMatching(/ended 3 times in a row/) });
    expect(silent.watches()).toBe(3);
  });

  test("stops when aborted", async () => {
    const s = jobServer([], [job(JobState.RUNNING)]);
    const ctl = new AbortController();
    const p = followJob(s.client, "j", { signal: ctl.signal, retryDelaysMs: [60_000] });
    ctl.abort();
    await expect(p).rejects.toMatchObject({ code: Code.Canceled });
  });
});
