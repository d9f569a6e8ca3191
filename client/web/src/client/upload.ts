// Uploads a file. Two paths: the UploadAudio client stream (one call, needs
// protocol "grpc") and the resumable session (StartUpload, PutUploadChunk,
// FinishUpload: unary calls only, so it works over gRPC-web from browsers
// too, and survives a broken link by asking the server how much it holds).
import { Code, ConnectError, type CallOptions } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { UploadHeaderSchema, UploadResult, UploadSession } from "../gen/traum/v1/audio_pb";
import type { TraumClient } from "./client";
import { DEFAULT_RETRY_DELAYS_MS, retryHint, sleep } from "./retry";

export interface UploadProgress {
  /**
   * Bytes sent so far. Over the stream: handed to the transport; over the
   * resumable path: acknowledged by the server.
   */
  sentBytes: number;
  /** The file's size when known (always for a Uint8Array, else `sizeBytes`). */
  totalBytes?: number;
}

export interface UploadOptions {
  /** Kept as metadata: 1 to 255 bytes of UTF-8, no control characters or `/`. */
  filename: string;
  tags?: string[];
  /** Size of an AsyncIterable source, if known: the server then refuses an oversize file up front. */
  sizeBytes?: number;
  /** SHA-256 of the content (64 hex digits), if known: the server refuses other bytes with DATA_LOSS. */
  sha256?: string;
  /** Create a new file record even when identical bytes are already stored. */
  alwaysCreateFile?: boolean;
  onProgress?: (progress: UploadProgress) => void;
  /**
   * "auto" (default): the stream when the client's protocol is "grpc" and no
   * session is being resumed, else the resumable path.
   */
  method?: "auto" | "stream" | "resumable";
  /** Largest chunk to send (default 256 KiB over the stream, 1 MiB resumable, capped by the session's limit). */
  chunkBytes?: number;
  signal?: CallOptions["signal"];
  /** Resumable: continue this session (from `onSession` of an earlier try) instead of opening one; the source must start at the file's first byte. */
  uploadId?: string;
  /** Resumable: the session once open, e.g. to keep its id for a later resume. */
  onSession?: (session: UploadSession) => void;
  /** Resumable: waits before re-sending a chunk after a transient failure; its length is the number of retries per chunk. */
  retryDelaysMs?: readonly number[];
}

export type UploadSource = Uint8Array | AsyncIterable<Uint8Array>;

const STREAM_CHUNK = 256 * 1024;
const RESUMABLE_CHUNK = 1024 * 1024;

export async function uploadFile(client: TraumClient, source: UploadSource, options: UploadOptions): Promise<UploadResult> {
  const method = options.method ?? "auto";
  if (method !== "auto" && method !== "stream" && method !== "resumable") {
    throw new Error(`method must be "auto", "stream" or "resumable", not ${JSON.stringify(method)}`);
  }
  const chunkBytes = options.chunkBytes;
  if (chunkBytes !== undefined && !(Number.isSafeInteger(chunkBytes) && chunkBytes > 0)) {
    throw new Error(`chunkBytes must be a positive integer, not ${String(chunkBytes)}`);
  }
  const totalBytes = source instanceof Uint8Array ? source.length : options.sizeBytes;
  if (totalBytes !== undefined && !(Number.isSafeInteger(totalBytes) && totalBytes >= 0)) {
    throw new Error(`sizeBytes must be a non-negative integer, not ${String(totalBytes)}`);
  }
  const header: MessageInitShape<typeof UploadHeaderSchema> = {
    filename: options.filename,
    tags: options.tags ?? [],
    sizeBytes: totalBytes !== undefined ? BigInt(totalBytes) : undefined,
    sha256: options.sha256,
    alwaysCreateFile: options.alwaysCreateFile ?? false,
  };
  const stream = method === "stream" || (method === "auto" && client.protocol === "grpc" && options.uploadId === undefined);
  if (stream) {
    if (client.protocol !== "grpc") {
      throw new Error('method "stream" needs protocol "grpc": gRPC-web (and so a browser) cannot client-stream; use method "resumable"');
    }
    if (options.uploadId !== undefined) throw new Error('uploadId resumes a resumable session; it does not apply to method "stream"');
    return uploadStream(client, source, header, totalBytes, chunkBytes ?? STREAM_CHUNK, options);
  }
  return uploadResumable(client, source, header, totalBytes, chunkBytes ?? RESUMABLE_CHUNK, options);
}

async function uploadStream(
  client: TraumClient,
  source: UploadSource,
  header: MessageInitShape<typeof UploadHeaderSchema>,
  totalBytes: number | undefined,
  chunkBytes: number,
  options: UploadOptions,
): Promise<UploadResult> {
  const reader = new ByteReader(source);
  async function* requests() {
    yield { payload: { case: "header" as const, value: header } };
    let sent = 0;
    for (;;) {
      const chunk = await reader.read(chunkBytes);
      if (chunk.length === 0) return;
      yield { payload: { case: "chunk" as const, value: chunk } };
      // Resumed: the transport has taken the chunk and asks for the next.
      sent += chunk.length;
      options.onProgress?.({ sentBytes: sent, totalBytes });
    }
  }
  return client.audio.uploadAudio(requests(), { signal: options.signal });
}

async function uploadResumable(
  client: TraumClient,
  source: UploadSource,
  header: MessageInitShape<typeof UploadHeaderSchema>,
  totalBytes: number | undefined,
  chunkBytes: number,
  options: UploadOptions,
): Promise<UploadResult> {
  const { signal } = options;
  const delays = options.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS;
  const session =
    options.uploadId !== undefined
      ? await client.audio.getUpload({ uploadId: options.uploadId }, { signal })
      : await client.audio.startUpload({ header }, { signal });
  if (options.uploadId !== undefined) checkResumedSession(session, header, totalBytes);
  options.onSession?.(session);
  const uploadId = session.uploadId;
  const limit = Math.min(chunkBytes, Number(session.maxChunkBytes) || chunkBytes);
  const reader = new ByteReader(source);
  let offset = Number(session.receivedBytes);
  if ((await reader.skip(offset)) < offset) {
    throw new Error(`upload ${uploadId}: the server holds ${offset} bytes but the source has fewer`);
  }
  if (offset > 0) options.onProgress?.({ sentBytes: offset, totalBytes });
  for (;;) {
    let chunk = await reader.read(limit);
    if (chunk.length === 0) break;
    for (let attempt = 0; ; attempt++) {
      try {
        await client.audio.putUploadChunk({ uploadId, offset: BigInt(offset), data: chunk }, { signal });
        break;
      } catch (err) {
        // A lost answer, a broken link or a reload on the other side: the
        // server's byte count says which part of this chunk still has to go.
        const hint = retryHint(err);
        const offsetMismatch = ConnectError.from(err).code === Code.FailedPrecondition;
        if (signal?.aborted || (!hint.retry && !offsetMismatch) || attempt >= delays.length) throw err;
        await sleep(Math.max(delays[attempt], hint.minDelayMs), signal);
        const held = Number((await client.audio.getUpload({ uploadId }, { signal })).receivedBytes);
        if (held < offset || held > offset + chunk.length) {
          throw new ConnectError(
            `upload ${uploadId}: the server holds ${held} bytes, expected ${offset} to ${offset + chunk.length}`,
            Code.FailedPrecondition,
            undefined,
            undefined,
            err,
          );
        }
        chunk = chunk.subarray(held - offset);
        offset = held;
        if (chunk.length === 0) break;
      }
    }
    offset += chunk.length;
    options.onProgress?.({ sentBytes: offset, totalBytes });
  }
  return client.audio.finishUpload({ uploadId }, { signal });
}

/** A resumed session must be the same file, or the bytes skipped belong to another one. */
function checkResumedSession(session: UploadSession, header: MessageInitShape<typeof UploadHeaderSchema>, totalBytes: number | undefined) {
  if (session.filename !== header.filename) {
    throw new Error(`upload ${session.uploadId} is of ${JSON.stringify(session.filename)}, not ${JSON.stringify(header.filename)}`);
  }
  if (totalBytes !== undefined && session.sizeBytes !== undefined && Number(session.sizeBytes) !== totalBytes) {
    throw new Error(`upload ${session.uploadId} was opened for ${session.sizeBytes} bytes, the source has ${totalBytes}`);
  }
}

/** Reads a byte source in pieces of a chosen size, whatever sizes it yields. */
class ByteReader {
  private readonly whole?: Uint8Array;
  private pos = 0;
  private readonly it?: AsyncIterator<Uint8Array>;
  private pending: Uint8Array = new Uint8Array(0);
  private done = false;

  constructor(source: UploadSource) {
    if (source instanceof Uint8Array) this.whole = source;
    else this.it = source[Symbol.asyncIterator]();
  }

  /** Up to `n` bytes; empty at the end. */
  async read(n: number): Promise<Uint8Array> {
    if (this.whole) {
      const out = this.whole.subarray(this.pos, this.pos + n);
      this.pos += out.length;
      return out;
    }
    const parts: Uint8Array[] = [];
    let have = 0;
    while (have < n) {
      if (this.pending.length === 0) {
        if (this.done) break;
        const next = await this.it!.next();
        if (next.done) {
          this.done = true;
          break;
        }
        if (!(next.value instanceof Uint8Array)) throw new Error("the upload source yielded something other than a Uint8Array");
        this.pending = next.value;
        continue;
      }
      const take = this.pending.subarray(0, n - have);
      this.pending = this.pending.subarray(take.length);
      parts.push(take);
      have += take.length;
    }
    if (parts.length === 1) return parts[0];
    const out = new Uint8Array(have);
    let off = 0;
    for (const p of parts) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }

  /** Skips up to `n` bytes; returns how many it skipped. */
  async skip(n: number): Promise<number> {
    let skipped = 0;
    while (skipped < n) {
      const piece = await this.read(Math.min(n - skipped, RESUMABLE_CHUNK));
      if (piece.length === 0) break;
      skipped += piece.length;
    }
    return skipped;
  }
}
