// Waiting between attempts. The timers are taken from globalThis because
// browsers and Node both have them but neither's type library is in scope
// here (tsconfig.client.json checks this folder without DOM or Node types).
import { Code, ConnectError, type CallOptions } from "@connectrpc/connect";
import { errorDetails } from "./errors";

type Signal = CallOptions["signal"];

interface Timers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
}
const timers = globalThis as unknown as Timers;

/** Resolves after `ms`, or rejects with ConnectError(Canceled) once `signal` aborts. */
export function sleep(ms: number, signal?: Signal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(aborted(signal));
    const onAbort = () => {
      timers.clearTimeout(id);
      reject(aborted(signal));
    };
    const id = timers.setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function aborted(signal: Signal): ConnectError {
  return new ConnectError("the operation was aborted", Code.Canceled, undefined, undefined, signal?.reason);
}

/**
 * Whether a failed call is worth repeating, and after how long at least:
 * the link broke or the server is shedding load (it says when to come back),
 * never a refusal of the request itself.
 */
export function retryHint(err: unknown): { retry: boolean; minDelayMs: number } {
  const d = errorDetails(err);
  switch (d.code) {
    case Code.Unavailable:
    case Code.DeadlineExceeded:
    case Code.Aborted:
    case Code.Unknown:
    case Code.Internal:
      return { retry: true, minDelayMs: 0 };
    case Code.ResourceExhausted:
      // Without RetryInfo it is a limit of the request (e.g. file size), which waiting does not lift.
      return d.retryDelaySeconds !== undefined ? { retry: true, minDelayMs: d.retryDelaySeconds * 1000 } : { retry: false, minDelayMs: 0 };
    default:
      return { retry: false, minDelayMs: 0 };
  }
}

export const DEFAULT_RETRY_DELAYS_MS: readonly number[] = [250, 1000, 4000];
