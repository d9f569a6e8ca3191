// @vitest-environment node
import { describe, expect, it } from "vitest";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import {
  AudioService,
  JobSchema,
  JobState,
  UploadResultSchema,
  UploadSessionSchema,
} from "../gen/traum/v1/audio_pb";
import { STORAGE_KEY, UploadQueue, resumeKey, sha256Hex, type UploadItem } from "./queue";

class MemoryStorage {
  map = new Map<string, string>();
  getItem(k: string) {
    return this.map.get(k) ?? null;
  }
  setItem(k: string, v: string) {
    this.map.set(k, v);
  }
  removeItem(k: string) {
    this.map.delete(k);
  }
}

interface FakeSession {
  id: string;
  filename: string;
  size: number;
  sha: string;
  bytes: number[];
}

/** An in-memory AudioService upload backend with fault injection. */
function fakeServer(
  opts: {
    maxChunk?: number;
    existingSha?: Set<string>;
    refuse?: (name: string) => ConnectError | undefined;
    // Chunks are held until this many are in flight (or 100 ms pass), so
    // parallelism shows however slowly the machine starts each upload.
    holdUntilInFlight?: number;
  } = {},
) {
  const sessions = new Map<string, FakeSession>();
  const calls: { method: string; offset?: number; len?: number; id?: string }[] = [];
  const faults: ((method: string, s?: FakeSession) => ConnectError | undefined)[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  let releaseHeld: (() => void)[] = [];
  let n = 0;
  const fault = (method: string, s?: FakeSession) => {
    for (let i = 0; i < faults.length; i++) {
      const e = faults[i](method, s);
      if (e) return e;
    }
    return undefined;
  };
  const transport = createRouterTransport(({ service }) => {
    service(AudioService, {
      async startUpload(req) {
        calls.push({ method: "start" });
        const h = req.header!;
        const refused = opts.refuse?.(h.filename);
        if (refused) throw refused;
        const id = `up-${++n}`;
        sessions.set(id, { id, filename: h.filename, size: Number(h.sizeBytes), sha: h.sha256 ?? "", bytes: [] });
        return create(UploadSessionSchema, { uploadId: id, filename: h.filename, maxChunkBytes: BigInt(opts.maxChunk ?? 1 << 20) });
      },
      async putUploadChunk(req) {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        const hold = opts.holdUntilInFlight;
        if (hold && inFlight >= hold) {
          for (const release of releaseHeld) release();
          releaseHeld = [];
        }
        await new Promise<void>((resolve) => {
          if (!hold || inFlight >= hold) {
            setTimeout(resolve, 1);
            return;
          }
          const timer = setTimeout(resolve, 100);
          releaseHeld.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
        inFlight--;
        const s = sessions.get(req.uploadId);
        calls.push({ method: "put", offset: Number(req.offset), len: req.data.length, id: req.uploadId });
        if (!s) throw new ConnectError("upload not found", Code.NotFound);
        const f = fault("put", s);
        if (f) throw f;
        if (Number(req.offset) !== s.bytes.length) throw new ConnectError("offset mismatch", Code.FailedPrecondition);
        if (req.data.length > (opts.maxChunk ?? 1 << 20)) throw new ConnectError("chunk too big", Code.InvalidArgument);
        s.bytes.push(...req.data);
        return create(UploadSessionSchema, { uploadId: s.id, receivedBytes: BigInt(s.bytes.length), maxChunkBytes: BigInt(opts.maxChunk ?? 1 << 20) });
      },
      async getUpload(req) {
        calls.push({ method: "get", id: req.uploadId });
        const s = sessions.get(req.uploadId);
        if (!s) throw new ConnectError(`upload ${req.uploadId} not found`, Code.NotFound);
        return create(UploadSessionSchema, { uploadId: s.id, receivedBytes: BigInt(s.bytes.length), maxChunkBytes: BigInt(opts.maxChunk ?? 1 << 20) });
      },
      async finishUpload(req) {
        calls.push({ method: "finish", id: req.uploadId });
        const s = sessions.get(req.uploadId);
        if (!s) throw new ConnectError("upload not found", Code.NotFound);
        const f = fault("finish", s);
        if (f) throw f;
        sessions.delete(req.uploadId);
        const dup = opts.existingSha?.has(s.sha) ?? false;
        return create(UploadResultSchema, { fileId: `file-${s.filename}`, jobId: `job-${s.filename}`, duplicate: dup, sizeBytes: BigInt(s.bytes.length), sha256: s.sha });
      },
      async getJob(req) {
        return create(JobSchema, { jobId: req.jobId, state: JobState.QUEUED });
      },
      async reprocessFile(req) {
        return create(JobSchema, { jobId: `re-${req.fileId}`, fileId: req.fileId, state: JobState.QUEUED });
      },
    });
  });
  return {
    client: createClient(AudioService, transport),
    sessions,
    calls,
    faults,
    get maxInFlight() {
      return maxInFlight;
    },
  };
}

function file(name: string, size: number): File {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + name.length) & 0xff;
  return new File([bytes], name);
}

function settled(q: UploadQueue): Promise<readonly UploadItem[]> {
  return new Promise((resolve) => {
    const check = () => {
      if (q.items.length && q.pending === 0) {
        unsub();
        resolve(q.getSnapshot());
      }
    };
    const unsub = q.subscribe(check);
    check();
  });
}

describe("UploadQueue", () => {
  it("uploads files in parallel up to the concurrency", async () => {
    const srv = fakeServer({ holdUntilInFlight: 3 });
    const q = new UploadQueue({ client: srv.client, concurrency: 3, maxChunkBytes: 100 });
    q.add([1, 2, 3, 4, 5, 6].map((i) => file(`f${i}.wav`, 450)));
    const items = await settled(q);
    expect(items.map((i) => i.status)).toEqual(Array(6).fill("done"));
    expect(srv.maxInFlight).toBe(3);
    expect(items.every((i) => i.sent === 450 && i.jobId && i.job)).toBe(true);
  });

  it("chunks at the session's max_chunk_bytes and sends size and sha256", async () => {
    const srv = fakeServer({ maxChunk: 256 });
    const q = new UploadQueue({ client: srv.client, maxChunkBytes: 1024 * 1024 });
    const f = file("a.wav", 1000);
    q.add([f]);
    const [item] = await settled(q);
    expect(item.status).toBe("done");
    const puts = srv.calls.filter((c) => c.method === "put");
    expect(puts.map((p) => [p.offset, p.len])).toEqual([
      [0, 256],
      [256, 256],
      [512, 256],
      [768, 232],
    ]);
  });

  it("retries a failed chunk from GetUpload's offset with exponential backoff", async () => {
    const srv = fakeServer({ maxChunk: 100 });
    let failuresLeft = 3;
    srv.faults.push((m, s) => {
      if (m === "put" && s && s.bytes.length === 200 && failuresLeft > 0) {
        failuresLeft--;
        // The first failure happens after the server kept the bytes (lost reply).
        if (failuresLeft === 2) s.bytes.push(...new Uint8Array(100));
        return new ConnectError("connection reset", Code.Unavailable);
      }
      return undefined;
    });
    const delays: number[] = [];
    const q = new UploadQueue({ client: srv.client, maxChunkBytes: 100, sleep: async (ms) => void delays.push(ms) });
    q.add([file("r.wav", 500)]);
    const [item] = await settled(q);
    expect(item.status).toBe("done");
    expect(delays).toEqual([500]);
    const gets = srv.calls.filter((c) => c.method === "get");
    expect(gets.length).toBe(1);
    // After the lost reply, the server already had 300 bytes: resumes there.
    const puts = srv.calls.filter((c) => c.method === "put").map((c) => c.offset);
    expect(puts).toEqual([0, 100, 200, 300, 400]);
  });

  it("gives up after the backoff schedule and shows the error", async () => {
    const srv = fakeServer({ maxChunk: 100 });
    srv.faults.push((m) => (m === "put" ? new ConnectError("server is down", Code.Unavailable) : undefined));
    const delays: number[] = [];
    const q = new UploadQueue({ client: srv.client, maxChunkBytes: 100, sleep: async (ms) => void delays.push(ms) });
    q.add([file("x.wav", 300)]);
    const [item] = await settled(q);
    expect(item.status).toBe("failed");
    expect(item.error).toBe("Unavailable: server is down");
    expect(delays).toEqual([500, 1000, 2000, 4000, 8000]);
  });

  it("resumes an unfinished session from localStorage", async () => {
    const srv = fakeServer({ maxChunk: 100 });
    const storage = new MemoryStorage();
    const f = file("resume.wav", 450);
    const sha = await sha256Hex(f);
    // A previous page load got 200 bytes through.
    srv.sessions.set("old", { id: "old", filename: f.name, size: 450, sha, bytes: Array(200).fill(0) });
    storage.setItem(STORAGE_KEY, JSON.stringify({ [resumeKey(f.name, f.size, sha)]: "old" }));
    const q = new UploadQueue({ client: srv.client, maxChunkBytes: 100, storage });
    q.add([f]);
    const [item] = await settled(q);
    expect(item.status).toBe("done");
    expect(item.resumed).toBe(true);
    expect(srv.calls.filter((c) => c.method === "start")).toHaveLength(0);
    expect(srv.calls.filter((c) => c.method === "put").map((c) => c.offset)).toEqual([200, 300, 400]);
    expect(storage.getItem(STORAGE_KEY)).toBeNull();
  });

  it("keeps the session in storage while unfinished and starts over when it expired", async () => {
    const srv = fakeServer({ maxChunk: 100 });
    const storage = new MemoryStorage();
    const f = file("gone.wav", 150);
    const sha = await sha256Hex(f);
    storage.setItem(STORAGE_KEY, JSON.stringify({ [resumeKey(f.name, f.size, sha)]: "expired" }));
    let seen: string | null = null;
    srv.faults.push((m) => {
      if (m === "put") seen = storage.getItem(STORAGE_KEY);
      return undefined;
    });
    const q = new UploadQueue({ client: srv.client, maxChunkBytes: 100, storage });
    q.add([f]);
    const [item] = await settled(q);
    expect(item.status).toBe("done");
    expect(item.resumed).toBe(false);
    expect(srv.calls.filter((c) => c.method === "start")).toHaveLength(1);
    expect(JSON.parse(seen!)).toEqual({ [resumeKey(f.name, f.size, sha)]: "up-1" });
    expect(storage.getItem(STORAGE_KEY)).toBeNull();
  });

  it("reports duplicates", async () => {
    const f = file("dup.wav", 10);
    const srv = fakeServer({ existingSha: new Set([await sha256Hex(f)]) });
    const q = new UploadQueue({ client: srv.client });
    q.add([f]);
    const [item] = await settled(q);
    expect(item.status).toBe("duplicate");
    expect(item.fileId).toBe("file-dup.wav");
  });

  it("shows refused files with the server's message and lets them be dismissed", async () => {
    const srv = fakeServer({
      refuse: (n) => (n.endsWith(".txt") ? new ConnectError("unsupported format: text/plain", Code.InvalidArgument) : undefined),
    });
    const q = new UploadQueue({ client: srv.client });
    q.add([file("notes.txt", 10), file("ok.wav", 10)]);
    const items = await settled(q);
    expect(items[0].status).toBe("failed");
    expect(items[0].errorCode).toBe(Code.InvalidArgument);
    expect(items[0].error).toBe("Invalid argument: unsupported format: text/plain");
    expect(items[1].status).toBe("done");
    q.dismiss(items[0].id);
    expect(q.getSnapshot().map((i) => i.name)).toEqual(["ok.wav"]);
  });

  it("fails on data loss at finish and follows job events", async () => {
    const srv = fakeServer();
    srv.faults.push((m, s) => (m === "finish" && s?.filename === "bad.wav" ? new ConnectError("checksum mismatch", Code.DataLoss) : undefined));
    const q = new UploadQueue({ client: srv.client });
    q.add([file("bad.wav", 10), file("good.wav", 10)]);
    const items = await settled(q);
    expect(items[0].error).toBe("Data loss: checksum mismatch");
    q.applyJob(create(JobSchema, { jobId: "job-good.wav", fileId: "file-good.wav", state: JobState.FAILED, error: "decode failed", updatedAt: { seconds: 10n } }));
    expect(q.getSnapshot()[1].job?.state).toBe(JobState.FAILED);
    await q.reprocess(items[1].id);
    expect(q.getSnapshot()[1].jobId).toBe("re-file-good.wav");
  });
});
