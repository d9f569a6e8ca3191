// Actions on one or many files: tags, rename, delete, download, add to a collection, reprocess.
// Success is only shown after the server confirmed; failures show its error.
import { useState, type FormEvent } from "react";
import { ConnectError } from "@connectrpc/connect";
import type { Collection, File, Job } from "../gen/traum/v1/audio_pb";
import { audioUrl, useApi } from "../api/client";
import { useCan } from "../auth/context";
import { useToasts } from "../lib/toasts";
import { describeError } from "../lib/format";
import { ConfirmDeleteDialog, Dialog, RenameDialog } from "./Dialog";
import { TagInput } from "./TagInput";
import { AddToCollectionDialog } from "./AddToCollection";

type Open = null | "tags" | "rename" | "delete" | "collect";

async function eachLimited<T>(items: T[], limit: number, fn: (t: T) => Promise<void>) {
  let i = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (i < items.length) await fn(items[i++]);
  });
  await Promise.all(workers);
}

export function FileActions({
  files,
  onUpdated,
  onDeleted,
  onReprocessed,
  onCollected,
  showReprocess = false,
}: {
  files: File[];
  onUpdated?: (f: File) => void;
  onDeleted?: (ids: string[]) => void;
  onReprocessed?: (job: Job) => void;
  onCollected?: (c: Collection) => void;
  showReprocess?: boolean;
}) {
  const { audio } = useApi();
  const toasts = useToasts();
  // Everything but Download changes the library: not for a read-only credential.
  const canWrite = useCan("write");
  const [open, setOpen] = useState<Open>(null);
  const [busy, setBusy] = useState(false);
  const [dialogError, setDialogError] = useState<string | null>(null);
  const [addTags, setAddTags] = useState<string[]>([]);
  const [removeTags, setRemoveTags] = useState<string[]>([]);
  const [newName, setNewName] = useState("");
  const single = files.length === 1 ? files[0] : undefined;
  const none = files.length === 0;
  const what = single ? `“${single.filename}”` : `${files.length} files`;

  const close = () => {
    setOpen(null);
    setDialogError(null);
  };

  const show = (o: Open) => {
    setDialogError(null);
    setAddTags([]);
    setRemoveTags([]);
    setNewName(single?.filename ?? "");
    setOpen(o);
  };

  const saveTags = async (e: FormEvent) => {
    e.preventDefault();
    if (!addTags.length && !removeTags.length) return close();
    setBusy(true);
    const failures: string[] = [];
    let ok = 0;
    await eachLimited(files, 4, async (f) => {
      try {
        const updated = await audio.updateFile({ fileId: f.fileId, addTags, removeTags });
        ok++;
        onUpdated?.(updated);
      } catch (err) {
        failures.push(`${f.filename}: ${describeError(err)}`);
      }
    });
    setBusy(false);
    if (failures.length) {
      const msg = `Tags could not be changed on ${failures.length} of ${files.length} files. ${failures.join("; ")}`;
      setDialogError(msg);
      toasts.fail(msg);
      if (ok) toasts.success(`Tags updated on ${ok} file${ok === 1 ? "" : "s"}`);
      return;
    }
    toasts.success(`Tags updated on ${ok === 1 && single ? single.filename : `${ok} files`}`);
    close();
  };

  const rename = async (e: FormEvent) => {
    e.preventDefault();
    if (!single) return;
    setBusy(true);
    try {
      const updated = await audio.updateFile({ fileId: single.fileId, filename: newName });
      onUpdated?.(updated);
      toasts.success(`Renamed to ${updated.filename}`);
      close();
    } catch (err) {
      setDialogError(describeError(err));
      toasts.error(`Renaming ${single.filename} failed`, err);
    } finally {
      setBusy(false);
    }
  };

  const remove = async () => {
    setBusy(true);
    const deleted: string[] = [];
    const failures: string[] = [];
    await eachLimited(files, 4, async (f) => {
      try {
        await audio.deleteFile({ fileId: f.fileId });
        deleted.push(f.fileId);
      } catch (err) {
        failures.push(`${f.filename}: ${describeError(err)}`);
      }
    });
    setBusy(false);
    if (deleted.length) {
      onDeleted?.(deleted);
      toasts.success(`Deleted ${deleted.length === 1 && single ? single.filename : `${deleted.length} files`}`);
    }
    if (failures.length) {
      const msg = `Could not delete ${failures.length} of ${files.length} files. ${failures.join("; ")}`;
      setDialogError(msg);
      toasts.fail(msg);
    } else close();
  };

  const reprocess = async () => {
    if (!single) return;
    try {
      const job = await audio.reprocessFile({ fileId: single.fileId });
      onReprocessed?.(job);
      toasts.success(`Reprocessing ${single.filename}`);
    } catch (err) {
      toasts.error(`Reprocessing ${single.filename} failed`, ConnectError.from(err));
    }
  };

  return (
    <div className="actions" role="toolbar" aria-label="File actions">
      {canWrite && (
        <>
          <button type="button" onClick={() => show("tags")} disabled={none}>
            Edit tags
          </button>
          <button type="button" onClick={() => show("rename")} disabled={!single}>
            Rename
          </button>
          <button type="button" className="danger" onClick={() => show("delete")} disabled={none}>
            Delete
          </button>
        </>
      )}
      {single ? (
        <a className="button" href={audioUrl(single.fileId)} download={single.filename}>
          Download
        </a>
      ) : (
        <button type="button" disabled>
          Download
        </button>
      )}
      {canWrite && (
        <button type="button" onClick={() => show("collect")} disabled={none}>
          Add to collection
        </button>
      )}
      {canWrite && showReprocess && single && (
        <button type="button" onClick={reprocess}>
          Reprocess
        </button>
      )}

      {open === "tags" && (
        <Dialog title={`Edit tags of ${what}`} onClose={close}>
          <form onSubmit={saveTags} className="stack">
            <TagInput label="Tags to add" tags={addTags} onChange={setAddTags} />
            <TagInput label="Tags to remove" tags={removeTags} onChange={setRemoveTags} />
            {single && single.tags.length > 0 && (
              <p className="muted">Current tags: {single.tags.join(", ")}</p>
            )}
            {dialogError && (
              <p role="alert" className="error-text">
                {dialogError}
              </p>
            )}
            <div className="dialog-buttons">
              <button type="button" onClick={close}>
                Cancel
              </button>
              <button type="submit" className="primary" disabled={busy}>
                {busy ? "Saving…" : "Save tags"}
              </button>
            </div>
          </form>
        </Dialog>
      )}
      {open === "rename" && single && (
        <RenameDialog
          title={`Rename ${what}`}
          label="Filename"
          value={newName}
          onChange={setNewName}
          onSubmit={rename}
          onClose={close}
          error={dialogError}
          busy={busy}
        />
      )}
      {open === "collect" && <AddToCollectionDialog files={files} onClose={close} onAdded={onCollected} />}
      {open === "delete" && (
        <ConfirmDeleteDialog title={`Delete ${what}?`} onConfirm={remove} onClose={close} error={dialogError} busy={busy}>
          <p>This removes the file{files.length === 1 ? "" : "s"} and {files.length === 1 ? "its" : "their"} metadata from the library. It cannot be undone.</p>
        </ConfirmDeleteDialog>
      )}
    </div>
  );
}
