import { useEffect, useLayoutEffect, useRef, useState, type KeyboardEvent } from "react";
import { useWindowVirtualizer } from "@tanstack/react-virtual";
import { FileOrder, FileState, JobState, type File, type Job } from "../gen/traum/v1/audio_pb";
import {
  fileStateName,
  formatBpm,
  formatBytes,
  formatDuration,
  formatKey,
  formatLevel,
  formatName,
  formatRelative,
  jobStageName,
} from "../lib/format";
import { Link, navigate } from "../lib/router";
import type { FileFilters } from "../live/file-list";

export const ROW_HEIGHT = 44;

interface Column {
  key: string;
  label: string;
  order?: FileOrder;
  className?: string;
}

const COLUMNS: Column[] = [
  { key: "name", label: "Name", order: FileOrder.FILENAME, className: "c-name" },
  { key: "format", label: "Format", className: "c-format" },
  { key: "duration", label: "Duration", order: FileOrder.DURATION, className: "c-duration num" },
  { key: "size", label: "Size", order: FileOrder.SIZE, className: "c-size num" },
  { key: "bpm", label: "BPM", className: "c-bpm num" },
  { key: "key", label: "Key", className: "c-key" },
  { key: "loudness", label: "Loudness", className: "c-loud num" },
  { key: "tags", label: "Tags", className: "c-tags" },
  { key: "state", label: "State", className: "c-state" },
  { key: "added", label: "Added", order: FileOrder.CREATED_AT, className: "c-added" },
];

function stateText(file: File, job: Job | undefined): string {
  if (job && (job.state === JobState.QUEUED || job.state === JobState.RUNNING)) {
    if (job.state === JobState.QUEUED) return "Queued";
    return `Processing: ${jobStageName(job.stage)} ${Math.round(job.progress * 100)} %`;
  }
  return fileStateName(file.state);
}

export function LibraryTable({
  files,
  jobs,
  totalCount,
  filters,
  onSort,
  selected,
  onToggle,
  onToggleAll,
  onRetry,
  onNearEnd,
  loading,
}: {
  files: File[];
  jobs: Map<string, Job>;
  totalCount: number;
  filters: FileFilters;
  onSort: (order: FileOrder) => void;
  selected: Set<string>;
  onToggle: (id: string) => void;
  onToggleAll: () => void;
  /** Absent: no Retry buttons (the role may not reprocess). */
  onRetry?: (f: File) => void;
  onNearEnd: () => void;
  loading: boolean;
}) {
  const bodyRef = useRef<HTMLDivElement>(null);
  const [scrollMargin, setScrollMargin] = useState(0);
  const [focusIndex, setFocusIndex] = useState(0);
  const focusPending = useRef(false);
  useLayoutEffect(() => {
    const el = bodyRef.current;
    if (!el) return;
    const update = () => setScrollMargin(el.getBoundingClientRect().top + window.scrollY);
    update();
    window.addEventListener("resize", update);
    return () => window.removeEventListener("resize", update);
  });

  const virtualizer = useWindowVirtualizer({
    count: files.length,
    estimateSize: () => ROW_HEIGHT,
    overscan: 12,
    scrollMargin,
    initialRect: { width: 1024, height: 800 },
  });
  const items = virtualizer.getVirtualItems();
  const lastIndex = items.length ? items[items.length - 1].index : -1;

  useEffect(() => {
    if (lastIndex >= files.length - 40) onNearEnd();
  }, [lastIndex, files.length, onNearEnd]);

  const clampedFocus = Math.min(focusIndex, Math.max(0, files.length - 1));

  useEffect(() => {
    if (!focusPending.current) return;
    const row = bodyRef.current?.querySelector<HTMLElement>(`[data-index="${clampedFocus}"]`);
    if (row) {
      row.focus();
      focusPending.current = false;
    }
  });

  const moveFocus = (i: number) => {
    const next = Math.max(0, Math.min(files.length - 1, i));
    setFocusIndex(next);
    focusPending.current = true;
    virtualizer.scrollToIndex(next, { align: "auto" });
  };

  const onRowKey = (e: KeyboardEvent<HTMLDivElement>, index: number, file: File) => {
    const page = Math.max(1, Math.floor(window.innerHeight / ROW_HEIGHT) - 2);
    switch (e.key) {
      case "ArrowDown":
        e.preventDefault();
        moveFocus(index + 1);
        return;
      case "ArrowUp":
        e.preventDefault();
        moveFocus(index - 1);
        return;
      case "PageDown":
        e.preventDefault();
        moveFocus(index + page);
        return;
      case "PageUp":
        e.preventDefault();
        moveFocus(index - page);
        return;
      case "Home":
        e.preventDefault();
        moveFocus(0);
        return;
      case "End":
        e.preventDefault();
        moveFocus(files.length - 1);
        return;
    }
    if (e.target !== e.currentTarget) return;
    if (e.key === " ") {
      e.preventDefault();
      onToggle(file.fileId);
    } else if (e.key === "Enter") {
      e.preventDefault();
      navigate(`/files/${file.fileId}`);
    }
  };

  const loadedAllSelected = files.length > 0 && files.every((f) => selected.has(f.fileId));
  const someSelected = selected.size > 0 && !loadedAllSelected;
  const orderBy = filters.orderBy === FileOrder.UNSPECIFIED ? FileOrder.CREATED_AT : filters.orderBy;

  return (
    <div
      role="grid"
      aria-label="Library"
      aria-rowcount={totalCount + 1}
      aria-colcount={COLUMNS.length + 1}
      aria-multiselectable="true"
      aria-busy={loading}
      className="grid"
    >
      <div role="rowgroup" className="grid-head">
        <div role="row" aria-rowindex={1} className="grid-row head">
          <div role="columnheader" className="c-select">
            <input
              type="checkbox"
              aria-label="Select all loaded files"
              checked={loadedAllSelected}
              ref={(el) => {
                if (el) el.indeterminate = someSelected;
              }}
              onChange={onToggleAll}
              disabled={!files.length}
            />
          </div>
          {COLUMNS.map((c) => {
            const sorted = c.order !== undefined && c.order === orderBy;
            return (
              <div
                key={c.key}
                role="columnheader"
                className={c.className}
                aria-sort={c.order === undefined ? undefined : sorted ? (filters.ascending ? "ascending" : "descending") : "none"}
              >
                {c.order !== undefined ? (
                  <button type="button" className="sort-button" onClick={() => onSort(c.order!)}>
                    {c.label}
                    <span aria-hidden="true" className="sort-mark">
                      {sorted ? (filters.ascending ? " ▲" : " ▼") : ""}
                    </span>
                  </button>
                ) : (
                  c.label
                )}
              </div>
            );
          })}
        </div>
      </div>
      <div role="rowgroup" ref={bodyRef} className="grid-body" style={{ height: virtualizer.getTotalSize() }}>
        {items.map((vi) => {
          const f = files[vi.index];
          const job = jobs.get(f.fileId);
          const d = f.descriptors;
          const isSel = selected.has(f.fileId);
          const failed = f.state === FileState.FAILED && !(job && (job.state === JobState.QUEUED || job.state === JobState.RUNNING));
          return (
            <div
              key={f.fileId}
              role="row"
              aria-rowindex={vi.index + 2}
              aria-selected={isSel}
              data-index={vi.index}
              data-file-id={f.fileId}
              tabIndex={vi.index === clampedFocus ? 0 : -1}
              className={`grid-row${isSel ? " selected" : ""}`}
              style={{ transform: `translateY(${vi.start - virtualizer.options.scrollMargin}px)` }}
              onKeyDown={(e) => onRowKey(e, vi.index, f)}
              onFocus={() => setFocusIndex(vi.index)}
            >
              <div role="gridcell" className="c-select">
                <input type="checkbox" tabIndex={-1} aria-label={`Select ${f.filename}`} checked={isSel} onChange={() => onToggle(f.fileId)} />
              </div>
              <div role="gridcell" className="c-name" title={f.filename}>
                <Link to={`/files/${f.fileId}`} tabIndex={-1}>
                  {f.filename}
                </Link>
              </div>
              <div role="gridcell" className="c-format">
                {formatName(f.format)}
              </div>
              <div role="gridcell" className="c-duration num">
                {formatDuration(f.properties?.durationSeconds)}
              </div>
              <div role="gridcell" className="c-size num">
                {formatBytes(f.sizeBytes)}
              </div>
              <div role="gridcell" className="c-bpm num">
                {d?.bpm != null ? formatBpm(d.bpm).replace(" BPM", "") : "—"}
              </div>
              <div role="gridcell" className="c-key">
                {formatKey(d?.key)}
              </div>
              <div role="gridcell" className="c-loud num">
                {formatLevel(d?.loudnessLufs, "LUFS")}
              </div>
              <div role="gridcell" className="c-tags" title={f.tags.join(", ")}>
                {f.tags.map((t) => (
                  <span key={t} className="tag">
                    {t}
                  </span>
                ))}
              </div>
              <div role="gridcell" className={`c-state state-${FileState[f.state]?.toLowerCase()}`} title={f.error || undefined}>
                <span>{stateText(f, job)}</span>
                {failed && onRetry && (
                  <button type="button" tabIndex={-1} className="small" onClick={() => onRetry(f)} aria-label={`Retry ${f.filename}`}>
                    Retry
                  </button>
                )}
              </div>
              <div role="gridcell" className="c-added">
                {formatRelative(f.createdAt ? new Date(Number(f.createdAt.seconds) * 1000) : undefined)}
              </div>
            </div>
          );
        })}
      </div>
    </div>
  );
}
