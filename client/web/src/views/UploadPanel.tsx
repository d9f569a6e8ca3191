import { useState, useSyncExternalStore, type DragEvent } from "react";
import { Code } from "@connectrpc/connect";
import { JobState } from "../gen/traum/v1/audio_pb";
import { useUploadQueue } from "../upload/context";
import { filesFromDataTransfer } from "../upload/drop";
import type { UploadItem } from "../upload/queue";
import { useLibraryEvents } from "../live/context";
import { formatBytes, jobStageName } from "../lib/format";
import { Link } from "../lib/router";
import { TagInput } from "../components/TagInput";
import { useToasts } from "../lib/toasts";

const REFUSED = new Set([Code.InvalidArgument, Code.ResourceExhausted, Code.DataLoss]);

function isFailed(i: UploadItem): boolean {
  return i.status === "failed" || (!!i.job && i.job.state === JobState.FAILED);
}

function resultText(i: UploadItem): string {
  if (i.status === "waiting") return "Waiting";
  if (i.status === "hashing") return "Computing checksum…";
  if (i.status === "uploading") return `Uploading ${formatBytes(i.sent)} of ${formatBytes(i.size)}${i.resumed ? " (resumed)" : ""}`;
  if (i.status === "finishing") return "Verifying…";
  if (i.status === "failed") return `Failed: ${i.error ?? "unknown error"}`;
  const dup = i.status === "duplicate" ? "Duplicate: already in the library. " : "";
  const job = i.job;
  if (!job) return dup || "Uploaded";
  switch (job.state) {
    case JobState.QUEUED:
      // A job parked on a missing model says so, with the server's reason.
      return job.message.startsWith("waiting for") ? `${dup}Queued, ${job.message}` : `${dup}Queued for processing`;
    case JobState.RUNNING:
      return `${dup}Processing: ${jobStageName(job.stage)} ${Math.round(job.stageProgress * 100)} %`;
    case JobState.SUCCEEDED:
      return `${dup}Ready`;
    case JobState.FAILED:
      return `${dup}Processing failed: ${job.error || job.message}`;
    default:
      return dup || "Uploaded";
  }
}

function UploadRow({ item }: { item: UploadItem }) {
  const queue = useUploadQueue();
  const toasts = useToasts();
  const pct = item.size ? Math.round((item.sent / item.size) * 100) : item.status === "done" || item.status === "duplicate" ? 100 : 0;
  const running = item.job && (item.job.state === JobState.RUNNING || item.job.state === JobState.QUEUED);
  const failed = isFailed(item);
  const finished = item.status === "done" || item.status === "duplicate" || item.status === "failed";
  const canRetry = failed && (item.fileId ? item.job?.state === JobState.FAILED : !REFUSED.has(item.errorCode ?? Code.Unknown));
  return (
    <li className={`upload-row${failed ? " failed" : ""}`}>
      <div className="upload-name">
        {item.fileId ? <Link to={`/files/${item.fileId}`}>{item.name}</Link> : <span>{item.name}</span>}
        <span className="muted"> {formatBytes(item.size)}</span>
      </div>
      <div
        role="progressbar"
        aria-label={item.name}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={pct}
        className="bar"
      >
        <div className="bar-fill" style={{ width: `${pct}%` }} />
      </div>
      {running && item.job && (
        <div
          role="progressbar"
          aria-label={`Processing ${item.name}`}
          aria-valuemin={0}
          aria-valuemax={100}
          aria-valuenow={Math.round(item.job.progress * 100)}
          className="bar bar-job"
        >
          <div className="bar-fill" style={{ width: `${Math.round(item.job.progress * 100)}%` }} />
        </div>
      )}
      <p className={`upload-status${failed ? " error-text" : ""}`} data-testid="upload-status">
        {resultText(item)}
      </p>
      <div className="row-buttons">
        {canRetry && (
          <button
            type="button"
            onClick={() => {
              if (item.fileId) void queue.reprocess(item.id).then(() => {
                const it = queue.getSnapshot().find((x) => x.id === item.id);
                if (it?.error) toasts.fail(`Retry of ${item.name} failed: ${it.error}`);
              });
              else queue.retryUpload(item.id);
            }}
          >
            Retry <span className="visually-hidden">{item.name}</span>
          </button>
        )}
        {finished && (
          <button type="button" onClick={() => queue.dismiss(item.id)}>
            Dismiss <span className="visually-hidden">{item.name}</span>
          </button>
        )}
      </div>
    </li>
  );
}

export function UploadPanel() {
  const queue = useUploadQueue();
  const items = useSyncExternalStore(queue.subscribe, queue.getSnapshot);
  const [dragging, setDragging] = useState(false);
  const [tags, setTags] = useState<string[]>([]);
  const toasts = useToasts();
  useLibraryEvents((ev) => {
    if (ev.change.case === "job") queue.applyJob(ev.change.value);
  });

  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    setDragging(false);
    filesFromDataTransfer(e.dataTransfer)
      .then((files) => {
        if (files.length) queue.add(files);
      })
      .catch((err: unknown) => toasts.error("Reading the dropped files failed", err));
  };

  const failed = items.filter(isFailed);
  const active = items.filter((i) => !isFailed(i));
  const finished = active.filter((i) => i.status === "done" || i.status === "duplicate");

  return (
    <section className="panel upload" aria-labelledby="upload-heading">
      <h2 id="upload-heading">Upload files</h2>
      <div
        className={`dropzone${dragging ? " dragging" : ""}`}
        data-testid="dropzone"
        onDragOver={(e) => {
          e.preventDefault();
          e.dataTransfer.dropEffect = "copy";
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={onDrop}
      >
        <label htmlFor="upload-input" className="button primary">
          Upload
        </label>
        <input
          id="upload-input"
          className="file-input"
          type="file"
          multiple
          onChange={(e) => {
            const files = Array.from(e.target.files ?? []);
            e.target.value = "";
            if (files.length) queue.add(files);
          }}
        />
        <p className="muted">or drop audio files and folders here</p>
      </div>
      <TagInput
        label="Tags for new uploads"
        tags={tags}
        onChange={(t) => {
          setTags(t);
          queue.setTags(t);
        }}
      />
      {active.length > 0 && (
        <>
          <div className="list-head">
            <h3>Uploads</h3>
            {finished.length > 0 && (
              <button type="button" onClick={() => finished.forEach((i) => queue.dismiss(i.id))}>
                Clear finished
              </button>
            )}
          </div>
          <ul className="upload-list" aria-label="Uploads">
            {active.map((i) => (
              <UploadRow key={i.id} item={i} />
            ))}
          </ul>
        </>
      )}
      {failed.length > 0 && (
        <>
          <h3>Failed</h3>
          <ul className="upload-list" aria-label="Failed uploads">
            {failed.map((i) => (
              <UploadRow key={i.id} item={i} />
            ))}
          </ul>
        </>
      )}
    </section>
  );
}
