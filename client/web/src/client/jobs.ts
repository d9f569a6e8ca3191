// Follows a processing job to its end over WatchJob, which a proxy or a
// server restart may cut: then the job is asked for directly and, if it is
// still running, watched again.
import { Code, ConnectError, type CallOptions } from "@connectrpc/connect";
import { JobState, type Job } from "../gen/traum/v1/audio_pb";
import type { TraumClient } from "./client";
import { DEFAULT_RETRY_DELAYS_MS, retryHint, sleep } from "./retry";

export interface FollowJobOptions {
  signal?: CallOptions["signal"];
  /** Every snapshot of the job as it changes, the last one included. */
  onUpdate?: (job: Job) => void;
  /**
   * Waits before watching again after the stream broke or ended early
   * without news; its length is how many times in a row that may happen.
   */
  retryDelaysMs?: readonly number[];
}

export function isTerminal(state: JobState): boolean {
  return state === JobState.SUCCEEDED || state === JobState.FAILED;
}

/** Resolves with the job once it SUCCEEDED or FAILED (check `state`); rejects when it cannot be followed. */
export async function followJob(client: TraumClient, jobId: string, options: FollowJobOptions = {}): Promise<Job> {
  const { signal, onUpdate } = options;
  const delays = options.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS;
  let quietEnds = 0;
  for (;;) {
    let news = false;
    let broke: unknown;
    try {
      for await (const event of client.audio.watchJob({ jobId }, { signal })) {
        if (!event.job) throw new Final(new ConnectError(`WatchJob(${jobId}) sent an event without a job`, Code.Internal));
        news = true;
        try {
          onUpdate?.(event.job);
        } catch (err) {
          throw new Final(err);
        }
        if (event.terminal || isTerminal(event.job.state)) return event.job;
      }
    } catch (err) {
      if (err instanceof Final) throw err.cause;
      if (signal?.aborted || !retryHint(err).retry) throw err;
      broke = err;
    }
    if (news) quietEnds = 0;
    // The terminal event may have been the one lost with the stream.
    const job = await client.audio.getJob({ jobId }, { signal }).catch((err: unknown) => {
      if (signal?.aborted || !retryHint(err).retry) throw err;
      broke = err;
      return undefined;
    });
    if (job && isTerminal(job.state)) {
      onUpdate?.(job);
      return job;
    }
    if (quietEnds >= delays.length) {
      throw new ConnectError(
        `WatchJob(${jobId}) ended ${quietEnds + 1} times in a row before the job finished` + (broke ? `: ${ConnectError.from(broke).message}` : ""),
        Code.Unavailable,
        undefined,
        undefined,
        broke,
      );
    }
    await sleep(delays[quietEnds++], signal);
  }
}

/** An error watching again would not cure: the caller's own (from onUpdate) or a broken answer of the server. */
class Final {
  constructor(readonly cause: unknown) {}
}
