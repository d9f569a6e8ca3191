// Collections (`/collections`, `/collections/:id`): named, ordered lists of
// files. The list view creates, renames and deletes them (with the write
// role; a read-only credential only views and exports); the detail view
// shows the files in order, reorders (UpdateCollection replace_file_ids),
// removes files and links the server's exports (CSV, JSON, M3U8, zip).
import { useCallback, useEffect, useRef, useState, type FormEvent } from "react";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Collection } from "../gen/traum/v1/audio_pb";
import { useApi } from "../api/client";
import { useCan } from "../auth/context";
import { ConfirmDeleteDialog, RenameDialog } from "../components/Dialog";
import { canMove, collectionExportUrl, moveId } from "../collections/reorder";
import { describeError, formatDuration, formatName, formatNumber } from "../lib/format";
import { Link, navigate } from "../lib/router";
import { useToasts } from "../lib/toasts";
import { useLibraryEvents } from "../live/context";

function collectionPath(id: string): string {
  return `/collections/${encodeURIComponent(id)}`;
}

function filesText(n: number): string {
  return `${formatNumber(n)} file${n === 1 ? "" : "s"}`;
}

// ------------------------------------------------------------------ rename / delete

/** Buttons "Rename" and "Delete" with their dialogs; `labelled` adds the collection's name to the buttons' names. */
function CollectionActions({
  collection,
  labelled,
  onRenamed,
  onDeleted,
}: {
  collection: Collection;
  labelled: boolean;
  onRenamed: (c: Collection) => void;
  onDeleted: () => void;
}) {
  const { audio } = useApi();
  const toasts = useToasts();
  const [open, setOpen] = useState<null | "rename" | "delete">(null);
  const [name, setName] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const close = () => {
    setOpen(null);
    setError(null);
  };

  const rename = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const c = await audio.updateCollection({ collectionId: collection.collectionId, name });
      onRenamed(c);
      toasts.success(`Renamed the collection to ${c.name}`);
      close();
    } catch (err) {
      setError(describeError(err));
      toasts.error(`Renaming ${collection.name} failed`, err);
    } finally {
      setBusy(false);
    }
  };

  const remove = async () => {
    setBusy(true);
    setError(null);
    try {
      await audio.deleteCollection({ collectionId: collection.collectionId });
      toasts.success(`Deleted the collection ${collection.name}`);
      setOpen(null);
      onDeleted();
    } catch (err) {
      setError(describeError(err));
      toasts.error(`Deleting ${collection.name} failed`, err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      <button
        type="button"
        className="small"
        aria-label={labelled ? `Rename ${collection.name}` : undefined}
        onClick={() => {
          setName(collection.name);
          setError(null);
          setOpen("rename");
        }}
      >
        Rename
      </button>
      <button
        type="button"
        className="small danger"
        aria-label={labelled ? `Delete ${collection.name}` : undefined}
        onClick={() => {
          setError(null);
          setOpen("delete");
        }}
      >
        Delete
      </button>
      {open === "rename" && (
        <RenameDialog
          title={`Rename “${collection.name}”`}
          label="New name"
          value={name}
          onChange={setName}
          onSubmit={rename}
          onClose={close}
          error={error}
          busy={busy}
          maxLength={100}
        />
      )}
      {open === "delete" && (
        <ConfirmDeleteDialog
          title={`Delete the collection “${collection.name}”?`}
          onConfirm={remove}
          onClose={close}
          error={error}
          busy={busy}
        >
          <p>The collection goes; its {filesText(collection.fileCount)} stay in the library.</p>
        </ConfirmDeleteDialog>
      )}
    </>
  );
}

// ------------------------------------------------------------------ list

function CollectionList() {
  const { audio } = useApi();
  const toasts = useToasts();
  // A read-only credential views and exports; it creates, renames and deletes nothing.
  const canWrite = useCan("write");
  const [collections, setCollections] = useState<Collection[] | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [name, setName] = useState("");
  const [busy, setBusy] = useState(false);
  const [createError, setCreateError] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      const res = await audio.listCollections({});
      setCollections(res.collections);
      setLoadError(null);
    } catch (err) {
      setLoadError(describeError(err));
      toasts.error("Loading the collections failed", err);
    }
  }, [audio, toasts]);

  useEffect(() => {
    void load();
  }, [load]);

  useLibraryEvents((ev) => {
    // Deleting a file takes it out of its collections: the counts change.
    if (ev.change.case === "deletedFileId" || ev.change.case === "resync") void load();
  });

  const create = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setCreateError(null);
    try {
      const c = await audio.createCollection({ name, fileIds: [] });
      toasts.success(`Created the collection ${c.name}`);
      setName("");
      await load();
    } catch (err) {
      setCreateError(describeError(err));
      toasts.error("Creating the collection failed", err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      <h1>Collections</h1>
      {canWrite && (
        <section className="panel" aria-labelledby="new-collection-heading">
          <h2 id="new-collection-heading">New collection</h2>
          <form className="create-collection" onSubmit={create}>
            <div className="field">
              <label htmlFor="collection-name">Collection name</label>
              <input
                id="collection-name"
                type="text"
                value={name}
                onChange={(e) => setName(e.target.value)}
                maxLength={100}
                required
                aria-describedby={createError ? "create-collection-error" : undefined}
              />
            </div>
            <button type="submit" className="primary" disabled={busy}>
              {busy ? "Creating…" : "Create collection"}
            </button>
          </form>
          {createError && (
            <p role="alert" className="error-text" id="create-collection-error">
              {createError}
            </p>
          )}
        </section>
      )}
      <section className="panel" aria-labelledby="collections-heading">
        <div className="list-head">
          <h2 id="collections-heading">All collections</h2>
          <p className="muted" aria-live="polite" data-testid="collection-count">
            {collections ? `${formatNumber(collections.length)} collection${collections.length === 1 ? "" : "s"}` : "Loading…"}
          </p>
        </div>
        {loadError && (
          <p className="error-text" role="alert">
            The collections could not be loaded: {loadError}{" "}
            <button type="button" onClick={() => void load()}>
              Try again
            </button>
          </p>
        )}
        {collections && collections.length > 0 && (
          <ul className="collection-list" aria-label="Collections">
            {collections.map((c) => (
              <li key={c.collectionId} className="collection-row" data-collection-id={c.collectionId}>
                <div className="collection-title">
                  <Link to={collectionPath(c.collectionId)} className="collection-name">
                    {c.name}
                  </Link>
                  <span className="muted" data-testid="collection-file-count">
                    {filesText(c.fileCount)}
                  </span>
                </div>
                {canWrite && (
                  <div className="row-buttons">
                    <CollectionActions
                      collection={c}
                      labelled
                      onRenamed={() => void load()}
                      onDeleted={() => setCollections((cs) => cs?.filter((x) => x.collectionId !== c.collectionId) ?? cs)}
                    />
                  </div>
                )}
              </li>
            ))}
          </ul>
        )}
        {collections && !collections.length && !loadError && (
          <p className="empty">
            {canWrite ? "No collections yet. Create one above, or select files in the library and choose “Add to collection”." : "No collections yet."}
          </p>
        )}
      </section>
    </>
  );
}

// ------------------------------------------------------------------ detail

function CollectionDetail({ id }: { id: string }) {
  const { audio } = useApi();
  const toasts = useToasts();
  const canWrite = useCan("write");
  const [collection, setCollection] = useState<Collection | null>(null);
  const [loadError, setLoadError] = useState<{ code: Code; text: string } | null>(null);
  const [busy, setBusy] = useState(false);
  const focusAfter = useRef<string | null>(null);

  const load = useCallback(async () => {
    try {
      setCollection(await audio.getCollection({ collectionId: id }));
      setLoadError(null);
    } catch (err) {
      const e = ConnectError.from(err);
      setLoadError({ code: e.code, text: describeError(e) });
      if (e.code !== Code.NotFound) toasts.error("Loading the collection failed", e);
    }
  }, [audio, id, toasts]);

  useEffect(() => {
    void load();
  }, [load]);

  useLibraryEvents((ev) => {
    const c = ev.change;
    if (c.case === "resync") void load();
    else if (c.case === "deletedFileId" && collection?.files.some((f) => f.fileId === c.value)) void load();
    else if (c.case === "file")
      setCollection((col) =>
        col && col.files.some((f) => f.fileId === c.value.fileId)
          ? { ...col, files: col.files.map((f) => (f.fileId === c.value.fileId ? c.value : f)) }
          : col,
      );
  });

  // Keeps the focus on the moved file's button after a move re-renders the list.
  useEffect(() => {
    const sel = focusAfter.current;
    if (!sel || busy) return;
    focusAfter.current = null;
    const el = document.querySelector<HTMLButtonElement>(sel);
    if (el && !el.disabled) el.focus();
    else document.querySelector<HTMLButtonElement>(sel.includes('"up"') ? sel.replace('"up"', '"down"') : sel.replace('"down"', '"up"'))?.focus();
  });

  if (loadError && !collection)
    return (
      <>
        <h1>{loadError.code === Code.NotFound ? "Collection not found" : "Collection could not be loaded"}</h1>
        <p className="error-text" role="alert">
          {loadError.text}
        </p>
        <p>
          <Link to="/collections">Back to the collections</Link>
        </p>
      </>
    );
  if (!collection)
    return (
      <>
        <h1>Loading collection…</h1>
        <p className="muted" role="status">
          Loading…
        </p>
      </>
    );

  const ids = collection.files.map((f) => f.fileId);

  const update = async (what: string, req: { replace?: string[]; remove?: string[] }) => {
    setBusy(true);
    try {
      const c = await audio.updateCollection({
        collectionId: collection.collectionId,
        replaceFileIds: req.replace ? { fileIds: req.replace } : undefined,
        removeFileIds: req.remove ?? [],
      });
      setCollection(c);
      return true;
    } catch (err) {
      toasts.error(what, err);
      return false;
    } finally {
      setBusy(false);
    }
  };

  const move = async (fileId: string, name: string, delta: -1 | 1) => {
    if (!canMove(ids, fileId, delta)) return;
    focusAfter.current = `button[data-file-id="${CSS.escape(fileId)}"][data-move="${delta < 0 ? "up" : "down"}"]`;
    await update(`Moving ${name} failed`, { replace: moveId(ids, fileId, delta) });
  };

  const remove = async (fileId: string, name: string) => {
    const i = ids.indexOf(fileId);
    if (await update(`Removing ${name} failed`, { remove: [fileId] })) {
      toasts.success(`Removed ${name} from ${collection.name}`);
      // Focus the next row's remove button (or the previous one's), else the heading.
      const next = ids[i + 1] ?? ids[i - 1];
      focusAfter.current = next ? `button[data-file-id="${CSS.escape(next)}"][data-remove]` : "#collection-heading";
    }
  };

  return (
    <>
      <p className="breadcrumb">
        <Link to="/collections">Collections</Link> /
      </p>
      <h1 className="filename" id="collection-heading" tabIndex={-1}>
        {collection.name}
      </h1>
      <p className="muted" aria-live="polite" data-testid="collection-size">
        {filesText(collection.fileCount)}
      </p>
      {canWrite && (
        <div className="actions" role="toolbar" aria-label="Collection actions">
          <CollectionActions
            collection={collection}
            labelled={false}
            onRenamed={(c) => setCollection(c)}
            onDeleted={() => navigate("/collections")}
          />
        </div>
      )}
      <nav className="actions export-links" aria-label="Export">
        <a className="button" href={collectionExportUrl(collection.collectionId, "csv")}>
          Export CSV
        </a>
        <a className="button" href={collectionExportUrl(collection.collectionId, "json")}>
          Export JSON
        </a>
        <a className="button" href={collectionExportUrl(collection.collectionId, "m3u8")}>
          Export M3U8
        </a>
        <a className="button" href={collectionExportUrl(collection.collectionId, "zip")}>
          Download zip
        </a>
      </nav>
      <section className="panel" aria-labelledby="collection-files-heading">
        <h2 id="collection-files-heading">Files</h2>
        {collection.files.length ? (
          <ol className="collection-files" aria-label={`Files of ${collection.name}`} aria-busy={busy}>
            {collection.files.map((f, i) => (
              <li key={f.fileId} className="collection-file" data-file-id={f.fileId}>
                <span className="position muted" aria-hidden="true">
                  {i + 1}
                </span>
                <div className="collection-file-title">
                  <Link to={`/files/${encodeURIComponent(f.fileId)}`} className="collection-file-name">
                    {f.filename}
                  </Link>
                  <span className="muted">
                    <span data-testid="collection-file-format">{formatName(f.format)}</span> ·{" "}
                    <span data-testid="collection-file-duration">{formatDuration(f.properties?.durationSeconds)}</span>
                  </span>
                </div>
                {canWrite && (
                  <div className="row-buttons">
                    <button
                      type="button"
                      className="small"
                      data-file-id={f.fileId}
                      data-move="up"
                      aria-label={`Move ${f.filename} up`}
                      disabled={busy || i === 0}
                      onClick={() => void move(f.fileId, f.filename, -1)}
                    >
                      <span aria-hidden="true">↑</span> Up
                    </button>
                    <button
                      type="button"
                      className="small"
                      data-file-id={f.fileId}
                      data-move="down"
                      aria-label={`Move ${f.filename} down`}
                      disabled={busy || i === collection.files.length - 1}
                      onClick={() => void move(f.fileId, f.filename, 1)}
                    >
                      <span aria-hidden="true">↓</span> Down
                    </button>
                    <button
                      type="button"
                      className="small danger"
                      data-file-id={f.fileId}
                      data-remove=""
                      aria-label={`Remove ${f.filename}`}
                      disabled={busy}
                      onClick={() => void remove(f.fileId, f.filename)}
                    >
                      Remove
                    </button>
                  </div>
                )}
              </li>
            ))}
          </ol>
        ) : (
          <p className="empty">
            {canWrite ? "This collection is empty. Select files in the library and choose “Add to collection”." : "This collection is empty."}
          </p>
        )}
      </section>
    </>
  );
}

export default function Collections({ id }: { id?: string }) {
  return id ? <CollectionDetail id={id} /> : <CollectionList />;
}
