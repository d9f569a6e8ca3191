// One WatchLibrary stream per page, shared by every view. Reconnects with
// backoff when the stream ends or fails; after a reconnect it tells the
// listeners to resync, since events may have been missed meanwhile.
import { ConnectError, type Client } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { LibraryEventSchema, type AudioService, type LibraryEvent } from "../gen/traum/v1/audio_pb";
import { describeError } from "../lib/format";

export type ConnectionState = "connecting" | "live" | "reconnecting" | "stopped";

export interface LiveStatus {
  state: ConnectionState;
  /** Last stream error, in words. */
  error?: string;
  /** Seconds until the next attempt while reconnecting. */
  retryInMs?: number;
}

export interface LibraryStreamOptions {
  client: Pick<Client<typeof AudioService>, "watchLibrary">;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  backoffMs?: number[];
}

const DEFAULT_BACKOFF = [500, 1000, 2000, 4000, 8000, 15000];

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    });
  });
}

export class LibraryStream {
  private readonly listeners = new Set<(ev: LibraryEvent) => void>();
  private readonly statusListeners = new Set<() => void>();
  private status: LiveStatus = { state: "stopped" };
  private abort: AbortController | null = null;
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  private readonly backoff: number[];

  constructor(private readonly opts: LibraryStreamOptions) {
    this.sleep = opts.sleep ?? abortableSleep;
    this.backoff = opts.backoffMs ?? DEFAULT_BACKOFF;
  }

  subscribe = (fn: (ev: LibraryEvent) => void): (() => void) => {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  };

  subscribeStatus = (fn: () => void): (() => void) => {
    this.statusListeners.add(fn);
    return () => this.statusListeners.delete(fn);
  };

  getStatus = (): LiveStatus => this.status;

  private setStatus(s: LiveStatus) {
    this.status = s;
    for (const l of this.statusListeners) l();
  }

  private emit(ev: LibraryEvent) {
    for (const l of [...this.listeners]) {
      try {
        l(ev);
      } catch (err) {
        console.error("library event listener failed", err);
      }
    }
  }

  start() {
    if (this.abort) return;
    const ac = new AbortController();
    this.abort = ac;
    void this.loop(ac.signal);
  }

  stop() {
    this.abort?.abort();
    this.abort = null;
    this.setStatus({ state: "stopped" });
  }

  private async loop(signal: AbortSignal) {
    let failures = 0;
    let everConnected = false;
    this.setStatus({ state: "connecting" });
    while (!signal.aborted) {
      let connected = false;
      let stable = false;
      let stableTimer: ReturnType<typeof setTimeout> | undefined;
      // A stream counts as established once it delivered an event or stayed
      // open a few seconds; only then is the backoff reset and a resync sent
      // (a server that answers and fails at once keeps backing off).
      const onStable = () => {
        if (stable) return;
        stable = true;
        clearTimeout(stableTimer);
        failures = 0;
        if (everConnected) this.emit(create(LibraryEventSchema, { change: { case: "resync", value: true } }));
        everConnected = true;
      };
      const onOpen = () => {
        if (connected) return;
        connected = true;
        this.setStatus({ state: "live" });
        stableTimer = setTimeout(onStable, 3000);
      };
      // Some servers flush response headers only with the first event; a
      // request that has neither failed nor ended after a moment is open.
      const openTimer = setTimeout(onOpen, 1500);
      let error: string | undefined;
      try {
        for await (const ev of this.opts.client.watchLibrary({}, { signal, onHeader: onOpen })) {
          onOpen();
          onStable();
          this.emit(ev);
        }
        error = "the server ended the stream";
      } catch (err) {
        clearTimeout(stableTimer);
        clearTimeout(openTimer);
        if (signal.aborted) return;
        error = describeError(ConnectError.from(err));
      }
      clearTimeout(stableTimer);
      clearTimeout(openTimer);
      if (signal.aborted) return;
      const delay = this.backoff[Math.min(failures, this.backoff.length - 1)];
      failures++;
      this.setStatus({ state: "reconnecting", error, retryInMs: delay });
      await this.sleep(delay, signal);
    }
  }
}
