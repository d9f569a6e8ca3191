import { useCallback, useEffect, useMemo, useRef, useState, useSyncExternalStore } from "react";
import { AudioFormat, FileOrder, FileState, type Collection, type File } from "../gen/traum/v1/audio_pb";
import { useApi } from "../api/client";
import { useCan } from "../auth/context";
import { useToasts } from "../lib/toasts";
import { navigate, useSearchString } from "../lib/router";
import { useLibraryEvents } from "../live/context";
import { DEFAULT_FILTERS, FileListStore, formatLibraryFilters, parseLibraryFilters, type FileFilters } from "../live/file-list";
import { formatName, formatNumber } from "../lib/format";
import { TagInput } from "../components/TagInput";
import { FileActions } from "../components/FileActions";
import { UploadPanel } from "./UploadPanel";
import { LibraryTable } from "./LibraryTable";

const FORMATS = [AudioFormat.WAV, AudioFormat.AIFF, AudioFormat.FLAC, AudioFormat.MP3, AudioFormat.OGG, AudioFormat.M4A];

let firstRowsMarked = false;

/**
 * Changes the filters in the URL, which the view reads them from. Each change
 * is a history entry, except typing in the filename box (`replace`), which
 * would otherwise leave one per pause.
 */
function setFilters(update: (f: FileFilters) => FileFilters, replace = false) {
  const next = update(parseLibraryFilters(window.location.search));
  navigate(`/${formatLibraryFilters(next)}`, replace, false);
}

export default function Library() {
  const { audio } = useApi();
  const toasts = useToasts();
  // A read-only credential sees no upload, edits or reprocessing.
  const canWrite = useCan("write");
  const query = useSearchString();
  const filters = useMemo(() => parseLibraryFilters(query), [query]);
  const [search, setSearch] = useState(filters.filename);
  const store = useMemo(() => new FileListStore(audio, DEFAULT_FILTERS, toasts.error), [audio, toasts]);
  const state = useSyncExternalStore(store.subscribe, store.getState);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [collections, setCollections] = useState<Collection[] | null>(null);

  useLibraryEvents((ev) => store.apply(ev));

  useEffect(() => {
    store.setFilters(filters);
  }, [store, filters]);

  const loadCollections = useCallback(async () => {
    try {
      setCollections((await audio.listCollections({})).collections);
    } catch (err) {
      setCollections([]);
      toasts.error("Loading the collections failed", err);
    }
  }, [audio, toasts]);

  useEffect(() => {
    void loadCollections();
  }, [loadCollections]);

  // Back and forward change the filename in the URL under the box.
  useEffect(() => {
    setSearch(filters.filename);
  }, [filters.filename]);

  // Debounce the filename search.
  useEffect(() => {
    const t = setTimeout(() => {
      if (parseLibraryFilters(window.location.search).filename !== search) setFilters((f) => ({ ...f, filename: search }), true);
    }, 300);
    return () => clearTimeout(t);
  }, [search]);

  // Drop selected ids that are gone from the list.
  useEffect(() => {
    setSelected((sel) => {
      if (!sel.size) return sel;
      const ids = new Set(state.files.map((f) => f.fileId));
      const next = new Set([...sel].filter((id) => ids.has(id)));
      return next.size === sel.size ? sel : next;
    });
  }, [state.files]);

  const marked = useRef(false);
  useEffect(() => {
    if (state.loaded && !marked.current && !firstRowsMarked) {
      marked.current = true;
      firstRowsMarked = true;
      performance.mark?.("traum:first-rows");
    }
  }, [state.loaded]);

  const onSort = useCallback((order: FileOrder) => {
    setFilters((f) => {
      const current = f.orderBy === FileOrder.UNSPECIFIED ? FileOrder.CREATED_AT : f.orderBy;
      if (current === order) return { ...f, ascending: !f.ascending };
      return { ...f, orderBy: order, ascending: order === FileOrder.FILENAME };
    });
  }, []);

  const onNearEnd = useCallback(() => void store.loadMore(), [store]);

  const selectedFiles = state.files.filter((f) => selected.has(f.fileId));

  const retry = async (f: File) => {
    try {
      await audio.reprocessFile({ fileId: f.fileId });
      toasts.success(`Reprocessing ${f.filename}`);
    } catch (err) {
      toasts.error(`Reprocessing ${f.filename} failed`, err);
    }
  };

  return (
    <>
      <h1>Library</h1>
      {canWrite && <UploadPanel />}
      <section className="panel" aria-labelledby="files-heading">
        <div className="list-head">
          <h2 id="files-heading">Files</h2>
          <p className="muted" aria-live="polite" data-testid="file-count">
            {state.loaded ? `${formatNumber(state.totalCount)} files` : "Loading…"}
            {state.loaded && state.files.length < state.totalCount ? ` (${formatNumber(state.files.length)} loaded)` : ""}
          </p>
        </div>
        <form className="filters" role="search" aria-label="Filter files" onSubmit={(e) => e.preventDefault()}>
          <div className="field">
            <label htmlFor="filter-name">Filename</label>
            <input id="filter-name" type="search" value={search} onChange={(e) => setSearch(e.target.value)} placeholder="Search by name" />
          </div>
          <TagInput label="Tags" tags={filters.tags} onChange={(tags) => setFilters((f) => ({ ...f, tags }))} placeholder="Filter by tag" />
          <div className="field">
            <label htmlFor="filter-format">Format</label>
            <select
              id="filter-format"
              value={filters.formats[0] ?? ""}
              onChange={(e) => setFilters((f) => ({ ...f, formats: e.target.value ? [Number(e.target.value) as AudioFormat] : [] }))}
            >
              <option value="">Any format</option>
              {FORMATS.map((fmt) => (
                <option key={fmt} value={fmt}>
                  {formatName(fmt)}
                </option>
              ))}
            </select>
          </div>
          <div className="field">
            <label htmlFor="filter-collection">Collection</label>
            <select
              id="filter-collection"
              value={filters.collectionId}
              onChange={(e) => setFilters((f) => ({ ...f, collectionId: e.target.value }))}
            >
              <option value="">Any collection</option>
              {collections?.map((c) => (
                <option key={c.collectionId} value={c.collectionId}>
                  {c.name}
                </option>
              ))}
              {filters.collectionId && !collections?.some((c) => c.collectionId === filters.collectionId) && (
                // A link to a deleted collection: the list's error says so.
                <option value={filters.collectionId}>{collections ? "Unknown collection" : "Loading…"}</option>
              )}
            </select>
          </div>
          <div className="field">
            <label htmlFor="filter-state">State</label>
            <select
              id="filter-state"
              value={filters.state}
              onChange={(e) => setFilters((f) => ({ ...f, state: Number(e.target.value) as FileState }))}
            >
              <option value={FileState.UNSPECIFIED}>Any state</option>
              <option value={FileState.PROCESSING}>Processing</option>
              <option value={FileState.READY}>Ready</option>
              <option value={FileState.FAILED}>Failed</option>
            </select>
          </div>
          <div className="field">
            <label htmlFor="filter-order">Sort by</label>
            <select
              id="filter-order"
              value={filters.orderBy === FileOrder.UNSPECIFIED ? FileOrder.CREATED_AT : filters.orderBy}
              onChange={(e) => setFilters((f) => ({ ...f, orderBy: Number(e.target.value) as FileOrder }))}
            >
              <option value={FileOrder.CREATED_AT}>Upload time</option>
              <option value={FileOrder.FILENAME}>Filename</option>
              <option value={FileOrder.SIZE}>Size</option>
              <option value={FileOrder.DURATION}>Duration</option>
            </select>
          </div>
          <div className="field checkbox-field">
            <input
              id="filter-asc"
              type="checkbox"
              checked={filters.ascending}
              onChange={(e) => setFilters((f) => ({ ...f, ascending: e.target.checked }))}
            />
            <label htmlFor="filter-asc">Ascending</label>
          </div>
        </form>
        <div className="selection-bar">
          <p aria-live="polite" data-testid="selection-count">
            {selected.size ? `${selected.size} selected` : "No files selected"}
          </p>
          <FileActions
            files={selectedFiles}
            onUpdated={(f) => store.upsert(f)}
            onDeleted={(ids) => {
              ids.forEach((id) => store.remove(id));
              setSelected(new Set());
            }}
            onCollected={(c) => {
              // A new collection becomes a filter option; the one shown may have grown.
              void loadCollections();
              if (c.collectionId === filters.collectionId) void store.reload();
            }}
          />
        </div>
        {state.error && (
          <p className="error-text" role="alert">
            The library could not be loaded: {state.error}{" "}
            <button type="button" onClick={() => void store.reload()}>
              Try again
            </button>
          </p>
        )}
        <LibraryTable
          files={state.files}
          jobs={state.jobs}
          totalCount={state.totalCount}
          filters={filters}
          onSort={onSort}
          selected={selected}
          loading={state.loading}
          onToggle={(id) =>
            setSelected((s) => {
              const n = new Set(s);
              if (n.has(id)) n.delete(id);
              else n.add(id);
              return n;
            })
          }
          onToggleAll={() =>
            setSelected((s) => (state.files.length && state.files.every((f) => s.has(f.fileId)) ? new Set() : new Set(state.files.map((f) => f.fileId))))
          }
          onRetry={canWrite ? (f) => void retry(f) : undefined}
          onNearEnd={onNearEnd}
        />
        {state.loaded && !state.files.length && !state.error && <p className="empty">{canWrite ? "No files match. Upload some above." : "No files match."}</p>}
        {state.loading && state.loaded && <p className="muted">Loading more…</p>}
      </section>
    </>
  );
}
