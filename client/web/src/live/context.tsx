import { createContext, useContext, useEffect, useRef, useSyncExternalStore, type ReactNode } from "react";
import type { LibraryEvent } from "../gen/traum/v1/audio_pb";
import type { LibraryStream, LiveStatus } from "./library-stream";

const LiveContext = createContext<LibraryStream | null>(null);

export function LiveProvider({ stream, children }: { stream: LibraryStream; children: ReactNode }) {
  useEffect(() => {
    stream.start();
    return () => stream.stop();
  }, [stream]);
  return <LiveContext.Provider value={stream}>{children}</LiveContext.Provider>;
}

function useStream(): LibraryStream {
  const s = useContext(LiveContext);
  if (!s) throw new Error("useLive outside LiveProvider");
  return s;
}

export function useLiveStatus(): LiveStatus {
  const s = useStream();
  return useSyncExternalStore(s.subscribeStatus, s.getStatus);
}

/** Calls `handler` for every library event; the latest handler is used. */
export function useLibraryEvents(handler: (ev: LibraryEvent) => void) {
  const s = useStream();
  const ref = useRef(handler);
  useEffect(() => {
    ref.current = handler;
  });
  useEffect(() => s.subscribe((ev) => ref.current(ev)), [s]);
}
