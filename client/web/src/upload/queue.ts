// Upload queue: resumable uploads with parallelism, chunking, retry and
// resume after reload. Plain TypeScript (no React); every dependency is
// injectable so it can be unit-tested.
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import type { AudioService, Job, UploadSession } from "../gen/traum/v1/audio_pb";
import { JobState } from "../gen/traum/v1/audio_pb";
import { describeError } from "../lib/format";

export type UploadClient = Pick<
  Client<typeof AudioService>,
  "startUpload" | "putUploadChunk" | "getUpload" | "finishUpload" | "getJob" | "reprocessFile"
>;

export type KeyValueStorage = Pick<Storage, "getItem" | "setItem" | "removeItem">;

/** Anything with a name, size and bytes (a DOM File). */
export interface UploadSource {
  readonly name: string;
  readonly size: number;
  slice(start?: number, end?: number): Blob;
  arrayBuffer(): Promise<ArrayBuffer>;
}

export type UploadStatus =
  | "waiting"
  | "hashing"
  | "uploading"
  | "finishing"
  | "done"
  | "duplicate"
  | "failed";

export interface UploadItem {
  readonly id: number;
  readonly name: string;
  readonly size: number;
  status: UploadStatus;
  /** Bytes acknowledged by the server. */
  sent: number;
  /** Human readable error (code in words and the server's message). */
  error?: string;
  errorCode?: Code;
  /** True when the upload continued a session from a previous page load. */
  resumed: boolean;
  fileId?: string;
  jobId?: string;
  /** Latest known state of the processing job. */
  job?: Job;
}

export interface UploadQueueOptions {
  client: UploadClient;
  storage?: KeyValueStorage | null;
  hash?: (file: UploadSource) => Promise<string>;
  sleep?: (ms: number) => Promise<void>;
  concurrency?: number;
  /** Upper bound of one chunk; the session's max_chunk_bytes may lower it. */
  maxChunkBytes?: number;
  /** Delays between attempts of a failed chunk; its length is the retry count. */
  backoffMs?: number[];
  tags?: string[];
}

export const STORAGE_KEY = "traum.uploads";
export const DEFAULT_CHUNK = 1024 * 1024;
export const DEFAULT_BACKOFF = [500, 1000, 2000, 4000, 8000];

export async function sha256Hex(file: UploadSource): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

const defaultSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Errors worth retrying a chunk for: the link or the session offset. */
function isTransient(code: Code): boolean {
  return (
    code === Code.Unavailable ||
    code === Code.Unknown ||
    code === Code.DeadlineExceeded ||
    code === Code.Aborted ||
    code === Code.FailedPrecondition ||
    code === Code.Internal ||
    code === Code.Canceled
  );
}

export function resumeKey(name: string, size: number, sha256: string): string {
  return `${name}:${size}:${sha256}`;
}

class RestartUpload extends Error {}

export class UploadQueue {
  readonly items: UploadItem[] = [];
  private readonly sources = new Map<number, UploadSource>();
  private readonly listeners = new Set<() => void>();
  private active = 0;
  private nextId = 1;
  private readonly opts: Required<Omit<UploadQueueOptions, "storage">> & { storage: KeyValueStorage | null };
  private snapshot: readonly UploadItem[] = [];

  constructor(options: UploadQueueOptions) {
    this.opts = {
      storage: options.storage ?? null,
      hash: options.hash ?? sha256Hex,
      sleep: options.sleep ?? defaultSleep,
      concurrency: options.concurrency ?? 3,
      maxChunkBytes: options.maxChunkBytes ?? DEFAULT_CHUNK,
      backoffMs: options.backoffMs ?? DEFAULT_BACKOFF,
      tags: options.tags ?? [],
      client: options.client,
    };
  }

  subscribe = (fn: () => void): (() => void) => {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  };

  /** Immutable copy for React's useSyncExternalStore. */
  getSnapshot = (): readonly UploadItem[] => this.snapshot;

  private changed() {
    this.snapshot = this.items.map((i) => ({ ...i }));
    for (const l of this.listeners) l();
  }

  setTags(tags: string[]) {
    this.opts.tags = tags;
  }

  add(files: Iterable<UploadSource>): UploadItem[] {
    const added: UploadItem[] = [];
    for (const f of files) {
      const item: UploadItem = { id: this.nextId++, name: f.name, size: f.size, status: "waiting", sent: 0, resumed: false };
      this.sources.set(item.id, f);
      this.items.push(item);
      added.push(item);
    }
    this.changed();
    this.pump();
    return added;
  }

  /** Removes a finished or failed item from the list. */
  dismiss(id: number) {
    const i = this.items.findIndex((it) => it.id === id);
    if (i < 0) return;
    const it = this.items[i];
    if (it.status !== "done" && it.status !== "duplicate" && it.status !== "failed") return;
    this.items.splice(i, 1);
    this.sources.delete(id);
    this.changed();
  }

  /** Uploads a failed item again (from where the server left off). */
  retryUpload(id: number) {
    const it = this.items.find((x) => x.id === id);
    if (!it || it.status !== "failed" || !this.sources.has(id) || it.fileId) return;
    it.status = "waiting";
    it.error = undefined;
    it.errorCode = undefined;
    this.changed();
    this.pump();
  }

  /** Runs a failed processing job again. */
  async reprocess(id: number): Promise<void> {
    const it = this.items.find((x) => x.id === id);
    if (!it?.fileId) return;
    try {
      const job = await this.opts.client.reprocessFile({ fileId: it.fileId });
      it.jobId = job.jobId;
      it.job = job;
      it.error = undefined;
      it.errorCode = undefined;
      it.status = "done";
    } catch (err) {
      it.error = describeError(err);
      it.errorCode = ConnectError.from(err).code;
    }
    this.changed();
  }

  /** Feeds a job event (from WatchLibrary) to the item it belongs to. */
  applyJob(job: Job) {
    let hit = false;
    for (const it of this.items) {
      if ((it.jobId && it.jobId === job.jobId) || (it.fileId && it.fileId === job.fileId && it.status !== "failed")) {
        if (it.job && it.job.jobId === job.jobId && updatedMs(it.job) > updatedMs(job)) continue;
        it.job = job;
        it.jobId = job.jobId;
        hit = true;
      }
    }
    if (hit) this.changed();
  }

  get pending(): number {
    return this.items.filter((i) => i.status !== "done" && i.status !== "duplicate" && i.status !== "failed").length;
  }

  private pump() {
    while (this.active < this.opts.concurrency) {
      const next = this.items.find((i) => i.status === "waiting");
      if (!next) return;
      this.active++;
      next.status = "hashing";
      this.changed();
      void this.run(next).finally(() => {
        this.active--;
        this.pump();
      });
    }
  }

  private readStore(): Record<string, string> {
    try {
      const raw = this.opts.storage?.getItem(STORAGE_KEY);
      const parsed: unknown = raw ? JSON.parse(raw) : {};
      return parsed && typeof parsed === "object" ? (parsed as Record<string, string>) : {};
    } catch {
      return {};
    }
  }

  private writeStore(key: string, uploadId: string | null) {
    if (!this.opts.storage) return;
    const map = this.readStore();
    if (uploadId) map[key] = uploadId;
    else delete map[key];
    try {
      if (Object.keys(map).length) this.opts.storage.setItem(STORAGE_KEY, JSON.stringify(map));
      else this.opts.storage.removeItem(STORAGE_KEY);
    } catch {
      // Storage full or disabled: uploads still work, only resume is lost.
    }
  }

  private async run(item: UploadItem): Promise<void> {
    const src = this.sources.get(item.id)!;
    const { client } = this.opts;
    try {
      const sha = await this.opts.hash(src);
      const key = resumeKey(src.name, src.size, sha);
      let session: UploadSession | undefined;
      const stored = this.readStore()[key];
      if (stored) {
        try {
          session = await this.withRetry(() => client.getUpload({ uploadId: stored }));
          item.resumed = true;
        } catch (err) {
          const code = ConnectError.from(err).code;
          if (code !== Code.NotFound && code !== Code.FailedPrecondition && code !== Code.InvalidArgument) throw err;
          this.writeStore(key, null);
        }
      }
      for (let restarts = 0; ; restarts++) {
        try {
          if (!session) {
            session = await this.withRetry(
              () =>
                client.startUpload({
                  header: { filename: src.name, tags: this.opts.tags, sizeBytes: BigInt(src.size), sha256: sha },
                }),
              );
            this.writeStore(key, session.uploadId);
          }
          item.status = "uploading";
          item.sent = Number(session.receivedBytes);
          this.changed();
          await this.sendChunks(item, src, session);
          item.status = "finishing";
          this.changed();
          const uploadId = session.uploadId;
          const result = await this.withRetry(() => client.finishUpload({ uploadId }));
          this.writeStore(key, null);
          item.fileId = result.fileId;
          item.jobId = result.jobId;
          item.sent = src.size;
          if (result.jobId) {
            try {
              const job = await client.getJob({ jobId: result.jobId });
              // A live event may already have delivered something newer.
              if (!item.job || updatedMs(item.job) <= updatedMs(job)) item.job = job;
            } catch {
              // The live stream reports the job as well; not fatal.
            }
          }
          item.status = result.duplicate ? "duplicate" : "done";
          this.changed();
          break;
        } catch (err) {
          // The session vanished (expired, or finished elsewhere): start over once.
          if ((err instanceof RestartUpload || ConnectError.from(err).code === Code.NotFound) && restarts < 1 && session) {
            this.writeStore(key, null);
            session = undefined;
            item.resumed = false;
            continue;
          }
          if (err instanceof RestartUpload) throw new ConnectError("upload session expired", Code.NotFound);
          throw err;
        }
      }
      this.sources.delete(item.id);
    } catch (err) {
      const e = ConnectError.from(err);
      item.status = "failed";
      item.error = describeError(e);
      item.errorCode = e.code;
      this.changed();
    }
  }

  private async sendChunks(item: UploadItem, src: UploadSource, session: UploadSession) {
    const { client } = this.opts;
    const serverMax = Number(session.maxChunkBytes);
    const chunk = Math.max(1, Math.min(this.opts.maxChunkBytes, serverMax > 0 ? serverMax : this.opts.maxChunkBytes));
    let offset = Number(session.receivedBytes);
    let failures = 0;
    while (offset < src.size) {
      const end = Math.min(src.size, offset + chunk);
      const data = new Uint8Array(await src.slice(offset, end).arrayBuffer());
      try {
        const s = await client.putUploadChunk({ uploadId: session.uploadId, offset: BigInt(offset), data });
        offset = Number(s.receivedBytes);
        failures = 0;
      } catch (err) {
        const e = ConnectError.from(err);
        if (e.code === Code.NotFound) throw new RestartUpload();
        if (!isTransient(e.code) || failures >= this.opts.backoffMs.length) throw e;
        await this.opts.sleep(this.opts.backoffMs[failures]);
        failures++;
        try {
          const s = await client.getUpload({ uploadId: session.uploadId });
          offset = Number(s.receivedBytes);
        } catch (err2) {
          const e2 = ConnectError.from(err2);
          if (e2.code === Code.NotFound) throw new RestartUpload();
          if (!isTransient(e2.code)) throw e2;
          // Try the chunk again at the same offset; the next failure backs off further.
        }
      }
      item.sent = offset;
      this.changed();
    }
  }

  /** Retries a unary call on transient errors with the backoff schedule. */
  private async withRetry<T>(call: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await call();
      } catch (err) {
        const code = ConnectError.from(err).code;
        const retryable = code === Code.Unavailable || code === Code.Unknown || code === Code.DeadlineExceeded;
        if (!retryable || attempt >= this.opts.backoffMs.length) throw err;
        await this.opts.sleep(this.opts.backoffMs[attempt]);
      }
    }
  }
}

function updatedMs(job: Job): number {
  const t = job.updatedAt;
  return t ? Number(t.seconds) * 1000 + t.nanos / 1e6 : 0;
}

export function isTerminalJob(job: Job | undefined): boolean {
  return job?.state === JobState.SUCCEEDED || job?.state === JobState.FAILED;
}
