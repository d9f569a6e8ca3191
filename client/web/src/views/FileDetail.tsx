import { useCallback, useEffect, useRef, useState } from "react";
import { Code, ConnectError } from "@connectrpc/connect";
import { JobState, type Collection, type File, type Job, type Waveform } from "../gen/traum/v1/audio_pb";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { audioUrl, useApi } from "../api/client";
import { useToasts } from "../lib/toasts";
import { useLibraryEvents } from "../live/context";
import {
  describeError,
  fileStateName,
  formatBpm,
  formatBytes,
  formatDateTime,
  formatDuration,
  formatHz,
  formatKey,
  formatLevel,
  formatName,
  formatNumber,
  formatPercent,
  formatSuggestions,
  formatTempoReadings,
  formatDuplicateMatch,
  jobStageName,
  jobStateName,
} from "../lib/format";
import { Link, navigate } from "../lib/router";
import { FileActions } from "../components/FileActions";
import { WaveformSlider, type Selection } from "./Waveform";

function tsDate(t: Timestamp | undefined): Date | undefined {
  return t ? new Date(Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6)) : undefined;
}

function Row({ label, value }: { label: string; value: string }) {
  return (
    <>
      <dt>{label}</dt>
      <dd>{value}</dd>
    </>
  );
}

function Player({ file, waveform }: { file: File; waveform: Waveform | null }) {
  const audioRef = useRef<HTMLAudioElement>(null);
  const [playing, setPlaying] = useState(false);
  const [time, setTime] = useState(0);
  const [mediaDuration, setMediaDuration] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const [selection, setSelection] = useState<Selection>(null);
  const duration = mediaDuration || waveform?.durationSeconds || file.properties?.durationSeconds || 0;

  const toggle = async () => {
    const a = audioRef.current;
    if (!a) return;
    if (a.paused) {
      try {
        setError(null);
        await a.play();
      } catch (err) {
        setError(`Playback failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    } else a.pause();
  };

  const seek = (s: number) => {
    const a = audioRef.current;
    if (a) a.currentTime = s;
    setTime(s);
  };

  return (
    <section className="panel player" aria-labelledby="player-heading">
      <h2 id="player-heading">Listen</h2>
      <audio
        ref={audioRef}
        src={audioUrl(file.fileId)}
        preload="metadata"
        onPlay={() => setPlaying(true)}
        onPause={() => setPlaying(false)}
        onEnded={() => setPlaying(false)}
        onTimeUpdate={(e) => setTime(e.currentTarget.currentTime)}
        onLoadedMetadata={(e) => Number.isFinite(e.currentTarget.duration) && setMediaDuration(e.currentTarget.duration)}
        onError={(e) => {
          const err = e.currentTarget.error;
          setError(`The audio could not be loaded${err?.message ? `: ${err.message}` : ""}`);
        }}
      />
      <div className="player-controls">
        <button type="button" className="primary play" onClick={() => void toggle()} aria-label={playing ? "Pause" : "Play"}>
          <span aria-hidden="true">{playing ? "❚❚" : "▶"}</span>
        </button>
        <p className="time" data-testid="time-display">
          <span data-testid="current-time">{formatDuration(time)}</span> / <span data-testid="duration">{formatDuration(duration)}</span>
        </p>
      </div>
      <WaveformSlider level={waveform?.overview} duration={duration} currentTime={time} onSeek={seek} selection={selection} onSelect={setSelection} />
      <div className="similar-row" role="group" aria-label="More like this">
        <button type="button" onClick={() => navigate(`/search?similar=${encodeURIComponent(file.fileId)}`)}>
          More like this
        </button>
        <button type="button" className="small" onClick={() => setSelection((sel) => { const e = sel ? sel[1] : duration; return [Math.min(time, e), Math.max(time, e)]; })}>
          Selection starts here
        </button>
        <button type="button" className="small" onClick={() => setSelection((sel) => { const s = sel ? sel[0] : 0; return [Math.min(s, time), Math.max(s, time)]; })}>
          Selection ends here
        </button>
        {selection && (
          <>
            <span data-testid="selection-range">
              Selected {formatDuration(selection[0])}–{formatDuration(selection[1])}
            </span>
            <button
              type="button"
              className="primary"
              onClick={() =>
                navigate(
                  `/search?similar=${encodeURIComponent(file.fileId)}&start=${selection[0].toFixed(2)}&end=${selection[1].toFixed(2)}`,
                )
              }
            >
              More like the selection
            </button>
            <button type="button" className="small" onClick={() => setSelection(null)}>
              Clear selection
            </button>
          </>
        )}
        <span className="muted">Shift-drag on the waveform to select a range.</span>
      </div>
      {error && (
        <p className="error-text" role="alert">
          {error}
        </p>
      )}
    </section>
  );
}

export default function FileDetail({ id }: { id: string }) {
  const { audio } = useApi();
  const toasts = useToasts();
  const [file, setFile] = useState<File | null>(null);
  const [loadError, setLoadError] = useState<{ code: Code; text: string } | null>(null);
  const [waveform, setWaveform] = useState<Waveform | null>(null);
  const [waveError, setWaveError] = useState<string | null>(null);
  const [jobs, setJobs] = useState<Job[]>([]);
  const [deleted, setDeleted] = useState(false);
  const [collections, setCollections] = useState<Collection[] | null>(null);

  const loadFile = useCallback(async () => {
    try {
      setFile(await audio.getFile({ fileId: id }));
      setLoadError(null);
    } catch (err) {
      const e = ConnectError.from(err);
      setLoadError({ code: e.code, text: describeError(e) });
      if (e.code !== Code.NotFound) toasts.error("Loading the file failed", e);
    }
  }, [audio, id, toasts]);

  // Library events and edits carry the file without its duplicate group
  // (only GetFile fills it in); keep the one loaded last.
  const updateFile = useCallback((next: File) => {
    setFile((prev) =>
      prev && prev.fileId === next.fileId && !next.duplicateGroup ? { ...next, duplicateGroup: prev.duplicateGroup } : next,
    );
  }, []);

  const loadJobs = useCallback(async () => {
    try {
      const res = await audio.listJobs({ fileId: id, pageSize: 100 });
      setJobs(res.jobs);
    } catch (err) {
      toasts.error("Loading the job history failed", err);
    }
  }, [audio, id, toasts]);

  const loadWaveform = useCallback(async () => {
    try {
      setWaveform(await audio.getWaveform({ fileId: id }));
      setWaveError(null);
    } catch (err) {
      setWaveError(describeError(err));
    }
  }, [audio, id]);

  const loadCollections = useCallback(async () => {
    try {
      const res = await audio.listCollections({ fileId: id });
      setCollections(res.collections);
    } catch (err) {
      setCollections([]);
      toasts.error("Loading the file's collections failed", err);
    }
  }, [audio, id, toasts]);

  useEffect(() => {
    void loadCollections();
  }, [loadCollections]);

  useEffect(() => {
    setFile(null);
    setWaveform(null);
    setJobs([]);
    setDeleted(false);
    void loadFile();
    void loadJobs();
    void loadWaveform();
  }, [loadFile, loadJobs, loadWaveform]);

  useLibraryEvents((ev) => {
    const c = ev.change;
    if (c.case === "file" && c.value.fileId === id) updateFile(c.value);
    else if (c.case === "deletedFileId" && c.value === id) setDeleted(true);
    else if (c.case === "resync") {
      void loadFile();
      void loadJobs();
    } else if (c.case === "job" && c.value.fileId === id) {
      const job = c.value;
      setJobs((js) => {
        const i = js.findIndex((j) => j.jobId === job.jobId);
        if (i < 0) return [job, ...js];
        const n = js.slice();
        n[i] = job;
        return n;
      });
      if (job.state === JobState.SUCCEEDED || job.state === JobState.FAILED || job.state === JobState.RUNNING) {
        // The file's state follows the job; refresh on transitions.
        const prev = jobs.find((j) => j.jobId === job.jobId);
        if (!prev || prev.state !== job.state) {
          void loadFile();
          if (job.state === JobState.SUCCEEDED) void loadWaveform();
        }
      }
    }
  });

  if (deleted)
    return (
      <>
        <h1>File deleted</h1>
        <p>
          This file was deleted. <Link to="/">Back to the library</Link>
        </p>
      </>
    );
  if (loadError && !file)
    return (
      <>
        <h1>{loadError.code === Code.NotFound ? "File not found" : "File could not be loaded"}</h1>
        <p className="error-text" role="alert">
          {loadError.text}
        </p>
        <p>
          <Link to="/">Back to the library</Link>
        </p>
      </>
    );
  if (!file)
    return (
      <>
        <h1>Loading file…</h1>
        <p className="muted" role="status">
          Loading…
        </p>
      </>
    );

  const p = file.properties;
  const d = file.descriptors;
  const activeJob = jobs.find((j) => j.state === JobState.RUNNING || j.state === JobState.QUEUED);

  return (
    <>
      <p className="breadcrumb">
        <Link to="/">Library</Link> /
      </p>
      <h1 className="filename">{file.filename}</h1>
      <FileActions
        files={[file]}
        showReprocess
        onUpdated={updateFile}
        onDeleted={() => navigate("/")}
        onReprocessed={(job) => setJobs((js) => [job, ...js.filter((j) => j.jobId !== job.jobId)])}
        onCollected={() => void loadCollections()}
      />
      {activeJob && (
        <div className="panel" role="status">
          <p>
            {jobStateName(activeJob.state)}: {jobStageName(activeJob.stage)} {formatPercent(activeJob.progress)}
            {activeJob.message ? ` — ${activeJob.message}` : ""}
          </p>
          <div role="progressbar" aria-label="Processing" aria-valuemin={0} aria-valuemax={100} aria-valuenow={Math.round(activeJob.progress * 100)} className="bar">
            <div className="bar-fill" style={{ width: `${Math.round(activeJob.progress * 100)}%` }} />
          </div>
        </div>
      )}
      <Player file={file} waveform={waveform} />
      {waveError && <p className="muted">Waveform unavailable: {waveError}</p>}
      <div className="detail-grid">
        <section className="panel" aria-labelledby="props-heading">
          <h2 id="props-heading">Properties</h2>
          <dl className="props">
            <Row label="State" value={fileStateName(file.state)} />
            {file.error && <Row label="Error" value={file.error} />}
            <Row label="Format" value={formatName(file.format)} />
            <Row label="Duration" value={p ? `${formatDuration(p.durationSeconds)} (${p.durationSeconds.toFixed(3)} s)` : "—"} />
            <Row label="Sample rate" value={p ? formatHz(p.sampleRateHz) : "—"} />
            <Row label="Channels" value={p ? String(p.channels) : "—"} />
            <Row label="Bits per sample" value={p ? (p.bitsPerSample ? `${p.bitsPerSample} bit` : "— (lossy)") : "—"} />
            <Row label="Codec" value={p?.codec || "—"} />
            <Row label="Bitrate" value={p ? `${formatNumber(Math.round(Number(p.bitrateBps) / 1000))} kbps` : "—"} />
            <Row label="Frames" value={p ? formatNumber(p.frames) : "—"} />
            <Row label="Size" value={`${formatBytes(file.sizeBytes)} (${formatNumber(file.sizeBytes)} bytes)`} />
            <Row label="SHA-256" value={file.sha256} />
            <Row label="Tags" value={file.tags.length ? file.tags.join(", ") : "none"} />
            {formatSuggestions(file.suggestedTags).map(([vocabulary, text]) => (
              <Row key={vocabulary} label={`Suggested ${vocabulary}`} value={text} />
            ))}
            <Row label="Uploaded" value={formatDateTime(tsDate(file.createdAt))} />
            <Row label="Updated" value={formatDateTime(tsDate(file.updatedAt))} />
            <Row label="File ID" value={file.fileId} />
          </dl>
        </section>
        <section className="panel" aria-labelledby="desc-heading">
          <h2 id="desc-heading">Descriptors</h2>
          {d ? (
            <dl className="props">
              <Row label="Peak" value={formatLevel(d.peakDbfs, "dBFS")} />
              <Row label="Loudness" value={formatLevel(d.loudnessLufs, "LUFS")} />
              <Row label="RMS" value={formatLevel(d.rmsDbfs, "dBFS")} />
              <Row label="Spectral centroid" value={formatHz(d.spectralCentroidHz)} />
              <Row label="Zero-crossing rate" value={formatHz(d.zeroCrossingRateHz)} />
              <Row label="Silence" value={formatPercent(d.silenceRatio, 1)} />
              <Row
                label="Tempo"
                value={
                  d.bpm != null
                    ? `${formatBpm(d.bpm)} (confidence ${formatPercent(d.bpmConfidence)})${d.bpmAlternatives.length ? `; ${formatTempoReadings(d.bpmAlternatives)}` : ""}`
                    : "—"
                }
              />
              <Row label="Key" value={d.key ? `${formatKey(d.key)} (confidence ${formatPercent(d.keyConfidence)})` : "—"} />
            </dl>
          ) : (
            <p className="muted">Not analysed yet.</p>
          )}
        </section>
      </div>
      <section className="panel" aria-labelledby="collections-heading">
        <h2 id="collections-heading">Collections</h2>
        {collections === null ? (
          <p className="muted">Loading…</p>
        ) : collections.length ? (
          <ul className="chips" aria-label="Collections holding this file">
            {collections.map((c) => (
              <li key={c.collectionId} className="chip">
                <Link to={`/collections/${encodeURIComponent(c.collectionId)}`}>{c.name}</Link>
              </li>
            ))}
          </ul>
        ) : (
          <p className="muted">In no collection.</p>
        )}
      </section>
      <section className="panel" aria-labelledby="duplicates-heading">
        <h2 id="duplicates-heading">Same recording</h2>
        {file.duplicateGroup && file.duplicateGroup.members.length > 1 ? (
          <>
            <p className="muted">
              Matched by acoustic fingerprint; each match is measured against the earliest upload, listed first.
            </p>
            <ul className="duplicates" aria-label="Files that are the same recording">
              {file.duplicateGroup.members.map((m, index) => (
                <li key={m.fileId}>
                  {m.fileId === file.fileId ? (
                    <strong aria-current="page">{m.filename} (this file)</strong>
                  ) : (
                    <Link to={`/files/${encodeURIComponent(m.fileId)}`}>{m.filename}</Link>
                  )}{" "}
                  <span className="muted">
                    {formatName(m.format)}, {formatDuration(m.durationSeconds)}
                    {index === 0 ? ", earliest upload" : `, ${formatDuplicateMatch(m)}`}
                  </span>
                </li>
              ))}
            </ul>
          </>
        ) : (
          <p className="muted">No other file is the same recording.</p>
        )}
      </section>
      <section className="panel" aria-labelledby="jobs-heading">
        <h2 id="jobs-heading">Job history</h2>
        {jobs.length ? (
          // Focusable so keyboard users can scroll it sideways on narrow screens.
          <div className="table-scroll" tabIndex={0} role="region" aria-label="Job history table">
            <table className="table">
              <thead>
                <tr>
                  <th scope="col">State</th>
                  <th scope="col">Stage</th>
                  <th scope="col">Progress</th>
                  <th scope="col">Attempts</th>
                  <th scope="col">Created</th>
                  <th scope="col">Started</th>
                  <th scope="col">Finished</th>
                  <th scope="col">Error / warnings</th>
                </tr>
              </thead>
              <tbody>
                {jobs.map((j) => (
                  <tr key={j.jobId} data-job-id={j.jobId}>
                    <td>{jobStateName(j.state)}</td>
                    <td>{jobStageName(j.stage) || "—"}</td>
                    <td>{formatPercent(j.progress)}</td>
                    <td>{j.attempts}</td>
                    <td>{formatDateTime(tsDate(j.createdAt))}</td>
                    <td>{formatDateTime(tsDate(j.startedAt))}</td>
                    <td>{formatDateTime(tsDate(j.finishedAt))}</td>
                    <td>
                      {j.error && <span className="error-text">{j.error}</span>}
                      {j.warnings.length > 0 && (
                        <ul className="warnings">
                          {j.warnings.map((w, i) => (
                            <li key={i}>{w}</li>
                          ))}
                        </ul>
                      )}
                      {!j.error && !j.warnings.length && "—"}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : (
          <p className="muted">No jobs.</p>
        )}
      </section>
    </>
  );
}
