import { createContext, useContext, type ReactNode } from "react";
import type { UploadQueue } from "./queue";

const UploadContext = createContext<UploadQueue | null>(null);

export function UploadProvider({ queue, children }: { queue: UploadQueue; children: ReactNode }) {
  return <UploadContext.Provider value={queue}>{children}</UploadContext.Provider>;
}

export function useUploadQueue(): UploadQueue {
  const q = useContext(UploadContext);
  if (!q) throw new Error("useUploadQueue outside UploadProvider");
  return q;
}
