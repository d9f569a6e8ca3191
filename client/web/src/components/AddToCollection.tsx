// "Add to collection": a dialog to put files into an existing collection
// (UpdateCollection add_file_ids) or a new one (CreateCollection). Success is
// shown only after the server confirmed; otherwise its error.
import { useEffect, useId, useState, type FormEvent } from "react";
import type { Collection } from "../gen/traum/v1/audio_pb";
import { useApi } from "../api/client";
import { describeError } from "../lib/format";
import { useToasts } from "../lib/toasts";
import { Dialog } from "./Dialog";

const NEW = "__new__";

export function AddToCollectionDialog({ files, onClose, onAdded }: { files: { fileId: string; filename: string }[]; onClose: () => void; onAdded?: (c: Collection) => void }) {
  const { audio } = useApi();
  const toasts = useToasts();
  const ids = useId();
  const [collections, setCollections] = useState<Collection[] | null>(null);
  const [choice, setChoice] = useState<string>("");
  const [newName, setNewName] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const what = files.length === 1 ? files[0].filename : `${files.length} files`;

  useEffect(() => {
    let live = true;
    audio
      .listCollections({})
      .then((res) => {
        if (!live) return;
        setCollections(res.collections);
        setChoice(res.collections[0]?.collectionId ?? NEW);
      })
      .catch((err) => {
        if (!live) return;
        setCollections([]);
        setChoice(NEW);
        setError(describeError(err));
        toasts.error("Loading the collections failed", err);
      });
    return () => {
      live = false;
    };
  }, [audio, toasts]);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!files.length || !choice) return;
    setBusy(true);
    setError(null);
    const fileIds = files.map((f) => f.fileId);
    try {
      const c =
        choice === NEW
          ? await audio.createCollection({ name: newName, fileIds })
          : await audio.updateCollection({ collectionId: choice, addFileIds: fileIds });
      onAdded?.(c);
      toasts.success(`Added ${what} to ${c.name}`);
      onClose();
    } catch (err) {
      setError(describeError(err));
      toasts.error(`Adding ${what} to a collection failed`, err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <Dialog title={`Add ${what} to a collection`} onClose={onClose}>
      <form onSubmit={submit} className="stack">
        {collections === null ? (
          <p className="muted" role="status">
            Loading collections…
          </p>
        ) : (
          <>
            <label htmlFor={`${ids}-select`}>Collection</label>
            <select id={`${ids}-select`} value={choice} onChange={(e) => setChoice(e.target.value)} autoFocus>
              {collections.map((c) => (
                <option key={c.collectionId} value={c.collectionId}>
                  {c.name} ({c.fileCount})
                </option>
              ))}
              <option value={NEW}>New collection…</option>
            </select>
            {choice === NEW && (
              <>
                <label htmlFor={`${ids}-name`}>New collection name</label>
                <input
                  id={`${ids}-name`}
                  type="text"
                  value={newName}
                  onChange={(e) => setNewName(e.target.value)}
                  maxLength={100}
                  required
                />
              </>
            )}
          </>
        )}
        {error && (
          <p role="alert" className="error-text">
            {error}
          </p>
        )}
        <div className="dialog-buttons">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="primary" disabled={busy || collections === null}>
            {busy ? "Adding…" : "Add"}
          </button>
        </div>
      </form>
    </Dialog>
  );
}
