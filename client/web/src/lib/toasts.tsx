// Notifications: every failed RPC ends up here with its code in words and the
// server's message. Rendered in an aria-live region; each can be dismissed.
import { createContext, useCallback, useContext, useMemo, useState, type ReactNode } from "react";
import { describeError } from "./format";

export interface Toast {
  id: number;
  kind: "error" | "success";
  text: string;
}

interface ToastApi {
  /** A failed call: "context: Code in words: server message". */
  error(context: string, err: unknown): void;
  /** A failure already put into words. */
  fail(text: string): void;
  success(text: string): void;
}

const ToastContext = createContext<ToastApi | null>(null);

let nextId = 1;

export function ToastProvider({ children }: { children: ReactNode }) {
  const [toasts, setToasts] = useState<Toast[]>([]);
  const push = useCallback((kind: Toast["kind"], text: string) => {
    const id = nextId++;
    setToasts((t) => [...t.slice(-7), { id, kind, text }]);
    if (kind === "success") setTimeout(() => setToasts((t) => t.filter((x) => x.id !== id)), 6000);
  }, []);
  const api = useMemo<ToastApi>(
    () => ({
      error: (context, err) => push("error", `${context}: ${describeError(err)}`),
      fail: (text) => push("error", text),
      success: (text) => push("success", text),
    }),
    [push],
  );
  return (
    <ToastContext.Provider value={api}>
      {children}
      <section className="toasts" aria-label="Notifications" aria-live="polite" data-testid="toasts">
        {toasts.map((t) => (
          <div key={t.id} className={`toast toast-${t.kind}`} role={t.kind === "error" ? "alert" : "status"}>
            <span className="toast-text">{t.text}</span>
            <button
              type="button"
              className="icon-button"
              aria-label="Dismiss notification"
              onClick={() => setToasts((all) => all.filter((x) => x.id !== t.id))}
            >
              ×
            </button>
          </div>
        ))}
      </section>
    </ToastContext.Provider>
  );
}

export function useToasts(): ToastApi {
  const t = useContext(ToastContext);
  if (!t) throw new Error("useToasts outside ToastProvider");
  return t;
}
