import { useEffect, useId, useRef, type FormEvent, type ReactNode } from "react";

/** A modal dialog on the native <dialog> element (focus trap, Escape). */
export function Dialog({ title, onClose, children }: { title: string; onClose: () => void; children: ReactNode }) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    const opener = document.activeElement as HTMLElement | null;
    if (typeof d.showModal === "function" && !d.open) {
      try {
        d.showModal();
      } catch {
        d.setAttribute("open", "");
      }
    } else d.setAttribute("open", "");
    return () => opener?.focus?.();
  }, []);
  return (
    <dialog
      ref={ref}
      className="dialog"
      aria-labelledby={titleId}
      onCancel={(e) => {
        e.preventDefault();
        onClose();
      }}
    >
      <h2 id={titleId}>{title}</h2>
      {children}
    </dialog>
  );
}

/** A dialog with one text field and Save/Cancel, for renaming things. */
export function RenameDialog({
  title,
  label,
  value,
  onChange,
  onSubmit,
  onClose,
  error,
  busy,
  maxLength,
}: {
  title: string;
  label: string;
  value: string;
  onChange: (value: string) => void;
  onSubmit: (e: FormEvent) => void;
  onClose: () => void;
  error: string | null;
  busy: boolean;
  maxLength?: number;
}) {
  const inputId = useId();
  return (
    <Dialog title={title} onClose={onClose}>
      <form onSubmit={onSubmit} className="stack">
        <label htmlFor={inputId}>{label}</label>
        <input id={inputId} type="text" value={value} onChange={(e) => onChange(e.target.value)} maxLength={maxLength} autoFocus required />
        {error && (
          <p role="alert" className="error-text">
            {error}
          </p>
        )}
        <div className="dialog-buttons">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="primary" disabled={busy}>
            {busy ? "Saving…" : "Save name"}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

/** A confirmation before deleting something: what goes, Cancel (focused) or delete. */
export function ConfirmDeleteDialog({
  title,
  onConfirm,
  onClose,
  error,
  busy,
  children,
}: {
  title: string;
  onConfirm: () => void;
  onClose: () => void;
  error: string | null;
  busy: boolean;
  children: ReactNode;
}) {
  return (
    <Dialog title={title} onClose={onClose}>
      {children}
      {error && (
        <p role="alert" className="error-text">
          {error}
        </p>
      )}
      <div className="dialog-buttons">
        <button type="button" onClick={onClose} autoFocus>
          Cancel
        </button>
        <button type="button" className="danger" onClick={onConfirm} disabled={busy}>
          {busy ? "Deleting…" : "Confirm delete"}
        </button>
      </div>
    </Dialog>
  );
}
