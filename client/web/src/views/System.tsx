import { useCallback, useEffect, useRef, useState } from "react";
import { create } from "@bufbuild/protobuf";
import { DurationSchema, type Timestamp } from "@bufbuild/protobuf/wkt";
import { ModelStatus, type Stats, type Usage } from "../gen/traum/v1/analytics_pb";
import { HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb";
import { JobState, type Job } from "../gen/traum/v1/audio_pb";
import { useApi } from "../api/client";
import { useCan, useSession } from "../auth/context";
import { useToasts } from "../lib/toasts";
import { useLibraryEvents } from "../live/context";
import {
  describeError,
  enumLabel,
  formatBytes,
  formatDateTime,
  formatLongDuration,
  formatMs,
  formatNumber,
  formatPercent,
  jobStageName,
  jobStateName,
} from "../lib/format";
import { Link } from "../lib/router";
import { HBarChart, TimeBars } from "../components/Charts";

const SERVICES = ["traum.v1.AudioService", "traum.v1.SearchService", "traum.v1.AnalyticsService"];

const WINDOWS = [
  { label: "1 hour", seconds: 3600 },
  { label: "24 hours", seconds: 86400 },
  { label: "7 days", seconds: 7 * 86400 },
  { label: "30 days", seconds: 30 * 86400 },
];

const BUCKETS = [
  { label: "1 minute", seconds: 60 },
  { label: "5 minutes", seconds: 300 },
  { label: "1 hour", seconds: 3600 },
  { label: "1 day", seconds: 86400 },
];

const MODEL_STATUS: Record<ModelStatus, string> = {
  [ModelStatus.UNSPECIFIED]: "Unknown",
  [ModelStatus.NOT_CONFIGURED]: "Not configured",
  [ModelStatus.LOADING]: "Loading",
  [ModelStatus.READY]: "Ready",
  [ModelStatus.UNAVAILABLE]: "Unavailable",
};

function tsDate(t: Timestamp | undefined): Date | undefined {
  return t ? new Date(Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6)) : undefined;
}

function Fig({ label, value }: { label: string; value: string }) {
  return (
    <div className="fig">
      <dt>{label}</dt>
      <dd>{value}</dd>
    </div>
  );
}

function defaultBucket(windowSeconds: number): number {
  if (windowSeconds <= 3600) return 60;
  if (windowSeconds <= 86400) return 3600;
  return 86400;
}

function StatsPanel({ stats }: { stats: Stats }) {
  return (
    <section className="panel" aria-labelledby="stats-heading">
      <h2 id="stats-heading">Library</h2>
      <dl className="figures" aria-label="Library figures">
        <Fig label="Files" value={formatNumber(stats.fileCount)} />
        <Fig label="Total duration" value={formatLongDuration(stats.totalDurationSeconds)} />
        <Fig label="Stored bytes" value={formatBytes(stats.storedBytes)} />
        <Fig label="Blobs" value={formatNumber(stats.blobCount)} />
        <Fig label="Version" value={stats.version || "—"} />
        <Fig label="Uptime" value={stats.uptime ? formatLongDuration(Number(stats.uptime.seconds)) : "—"} />
      </dl>
      <div className="two-col">
        <div>
          <h3>Files per format</h3>
          <dl className="props" aria-label="Files per format">
            {stats.filesByFormat.map((c) => (
              <div key={c.name} className="fig-row">
                <dt>{enumLabel(c.name)}</dt>
                <dd>{formatNumber(c.count)}</dd>
              </div>
            ))}
          </dl>
          {!stats.filesByFormat.length && <p className="muted">No files.</p>}
        </div>
        <div>
          <h3>Jobs per state</h3>
          <dl className="props" aria-label="Jobs per state">
            {stats.jobsByState.map((c) => (
              <div key={c.name} className="fig-row">
                <dt>{enumLabel(c.name)}</dt>
                <dd>{formatNumber(c.count)}</dd>
              </div>
            ))}
          </dl>
          {!stats.jobsByState.length && <p className="muted">No jobs.</p>}
        </div>
      </div>
      <h3>Search indexes</h3>
      {stats.indexes.length ? (
        // Focusable so keyboard users can scroll it sideways on narrow screens.
        <div className="table-scroll" tabIndex={0} role="region" aria-label="Search indexes table">
          <table className="table">
            <thead>
              <tr>
                <th scope="col">Index</th>
                <th scope="col">Entries</th>
                <th scope="col">Size</th>
                <th scope="col">Ready</th>
                <th scope="col">Search mode</th>
              </tr>
            </thead>
            <tbody>
              {stats.indexes.map((i) => (
                <tr key={i.name}>
                  <th scope="row">{i.name}</th>
                  <td>{formatNumber(i.entries)}</td>
                  <td>{formatBytes(i.sizeBytes)}</td>
                  <td>{i.ready ? "Yes" : "No"}</td>
                  <td>{i.searchMode || "—"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : (
        <p className="muted">No indexes.</p>
      )}
      <h3>Embedding model</h3>
      <dl className="props" aria-label="Embedding model">
        <div className="fig-row">
          <dt>Model</dt>
          <dd>{stats.modelName || "none"}</dd>
        </div>
        <div className="fig-row">
          <dt>Model status</dt>
          <dd className={`model-${ModelStatus[stats.modelStatus]?.toLowerCase()}`}>{MODEL_STATUS[stats.modelStatus] ?? "Unknown"}</dd>
        </div>
        {stats.modelMessage && (
          <div className="fig-row">
            <dt>Model message</dt>
            <dd>{stats.modelMessage}</dd>
          </div>
        )}
      </dl>
    </section>
  );
}

function UsagePanel() {
  const { analytics } = useApi();
  const toasts = useToasts();
  const [windowS, setWindowS] = useState(86400);
  const [bucketS, setBucketS] = useState(3600);
  const [usage, setUsage] = useState<Usage | null>(null);
  const [error, setError] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      const u = await analytics.getUsage({
        window: create(DurationSchema, { seconds: BigInt(windowS) }),
        bucket: create(DurationSchema, { seconds: BigInt(bucketS) }),
      });
      setUsage(u);
      setError(null);
    } catch (err) {
      setError(describeError(err));
      toasts.error("Loading usage failed", err);
    }
  }, [analytics, windowS, bucketS, toasts]);

  useEffect(() => {
    void load();
  }, [load]);

  const bucketLabel = (t: Timestamp | undefined) => {
    const d = tsDate(t);
    if (!d) return "";
    return bucketS >= 86400 ? formatDateTime(d).slice(0, 10) : formatDateTime(d).slice(5, 16);
  };

  return (
    <section className="panel" aria-labelledby="usage-heading">
      <div className="list-head">
        <h2 id="usage-heading">Usage</h2>
        <div className="filters compact">
          <div className="field">
            <label htmlFor="usage-window">Window</label>
            <select
              id="usage-window"
              value={windowS}
              onChange={(e) => {
                const w = Number(e.target.value);
                setWindowS(w);
                if (w / bucketS > 10000 || bucketS > w) setBucketS(defaultBucket(w));
              }}
            >
              {WINDOWS.map((w) => (
                <option key={w.seconds} value={w.seconds}>
                  {w.label}
                </option>
              ))}
            </select>
          </div>
          <div className="field">
            <label htmlFor="usage-bucket">Bucket</label>
            <select id="usage-bucket" value={bucketS} onChange={(e) => setBucketS(Number(e.target.value))}>
              {BUCKETS.filter((b) => b.seconds <= windowS && windowS / b.seconds <= 10000).map((b) => (
                <option key={b.seconds} value={b.seconds}>
                  {b.label}
                </option>
              ))}
            </select>
          </div>
          <button type="button" onClick={() => void load()}>
            Refresh usage
          </button>
        </div>
      </div>
      {error && (
        <p className="error-text" role="alert">
          {error}
        </p>
      )}
      {usage && (
        <>
          <dl className="figures" aria-label="Usage figures">
            <Fig label="Searches" value={formatNumber(usage.searchCount)} />
            <Fig label="Uploads" value={formatNumber(usage.uploads)} />
            {/* Without searches the server reports 0 ms, which is no measurement. */}
            <Fig label="Search p50" value={usage.searchCount ? formatMs(usage.searchP50Ms) : "—"} />
            <Fig label="Search p95" value={usage.searchCount ? formatMs(usage.searchP95Ms) : "—"} />
            <Fig label="Search p99" value={usage.searchCount ? formatMs(usage.searchP99Ms) : "—"} />
          </dl>
          <p className="muted">
            From {formatDateTime(tsDate(usage.windowStart))} to {formatDateTime(tsDate(usage.windowEnd))}
          </p>
          <HBarChart
            title="Calls and errors per RPC"
            series={["Calls", "Errors"]}
            bars={usage.rpcs.map((r) => ({ label: r.method.replace(/^\/traum\.v1\./, ""), values: [Number(r.calls), Number(r.errors)] }))}
            format={(n) => formatNumber(n)}
          />
          {!usage.rpcs.length && <p className="muted">No calls in this window.</p>}
          {usage.searchCount ? (
            <HBarChart
              title="Search latency percentiles"
              series={["Latency"]}
              bars={[
                { label: "p50", values: [usage.searchP50Ms] },
                { label: "p95", values: [usage.searchP95Ms] },
                { label: "p99", values: [usage.searchP99Ms] },
              ]}
              format={formatMs}
            />
          ) : (
            <p className="muted">No searches in this window, so no search latency.</p>
          )}
          <TimeBars title="Uploads per bucket" points={usage.buckets.map((b) => ({ label: bucketLabel(b.start), value: Number(b.uploads) }))} format={(n) => formatNumber(n)} />
          <TimeBars title="Calls per bucket" points={usage.buckets.map((b) => ({ label: bucketLabel(b.start), value: Number(b.calls) }))} format={(n) => formatNumber(n)} />
          {usage.topQueries.length > 0 && (
            <>
              <h3>Top queries</h3>
              <ol className="queries">
                {usage.topQueries.map((q) => (
                  <li key={q.query}>
                    {q.query} <span className="muted">({formatNumber(q.count)})</span>
                  </li>
                ))}
              </ol>
            </>
          )}
        </>
      )}
    </section>
  );
}

/** Usage holds every caller's queries: admins only (AnalyticsService/GetUsage). */
function UsageNote() {
  const { role } = useSession();
  return (
    <section className="panel" aria-labelledby="usage-heading">
      <h2 id="usage-heading">Usage</h2>
      <p className="muted" data-testid="usage-note">
        Usage figures hold every caller&apos;s calls and queries, so they need an admin key or token; this session has the {role ?? "no"} role.
      </p>
    </section>
  );
}

function HealthPanel() {
  const { health } = useApi();
  const [statuses, setStatuses] = useState<Record<string, string>>({});
  const load = useCallback(async () => {
    const entries = await Promise.all(
      SERVICES.map(async (service) => {
        try {
          const r = await health.check({ service });
          const s = r.status;
          const text =
            s === HealthCheckResponse_ServingStatus.SERVING
              ? "Serving"
              : s === HealthCheckResponse_ServingStatus.NOT_SERVING
                ? "Not serving"
                : s === HealthCheckResponse_ServingStatus.SERVICE_UNKNOWN
                  ? "Unknown service"
                  : "Unknown";
          return [service, text] as const;
        } catch (err) {
          return [service, `Check failed: ${describeError(err)}`] as const;
        }
      }),
    );
    setStatuses(Object.fromEntries(entries));
  }, [health]);
  useEffect(() => {
    void load();
    const t = setInterval(() => void load(), 15000);
    return () => clearInterval(t);
  }, [load]);
  return (
    <section className="panel" aria-labelledby="health-heading">
      <div className="list-head">
        <h2 id="health-heading">Health</h2>
        <button type="button" onClick={() => void load()}>
          Check health
        </button>
      </div>
      <dl className="props" aria-label="Service health">
        {SERVICES.map((s) => (
          <div key={s} className="fig-row">
            <dt>{s.replace("traum.v1.", "")}</dt>
            <dd className={statuses[s] === "Serving" ? "ok-text" : statuses[s] ? "warn-text" : ""}>{statuses[s] ?? "Checking…"}</dd>
          </div>
        ))}
      </dl>
    </section>
  );
}

function QueuePanel({ onTerminal }: { onTerminal: () => void }) {
  const { audio } = useApi();
  const toasts = useToasts();
  const [jobs, setJobs] = useState<Map<string, Job>>(new Map());
  const load = useCallback(async () => {
    try {
      const [running, queued] = await Promise.all([
        audio.listJobs({ state: JobState.RUNNING, pageSize: 200 }),
        audio.listJobs({ state: JobState.QUEUED, pageSize: 200 }),
      ]);
      setJobs(new Map([...running.jobs, ...queued.jobs].map((j) => [j.jobId, j])));
    } catch (err) {
      toasts.error("Loading the job queue failed", err);
    }
  }, [audio, toasts]);
  useEffect(() => {
    void load();
  }, [load]);
  useLibraryEvents((ev) => {
    if (ev.change.case === "resync") void load();
    if (ev.change.case !== "job") return;
    const job = ev.change.value;
    setJobs((m) => {
      const n = new Map(m);
      if (job.state === JobState.QUEUED || job.state === JobState.RUNNING) n.set(job.jobId, job);
      else n.delete(job.jobId);
      return n;
    });
    if (job.state === JobState.SUCCEEDED || job.state === JobState.FAILED) onTerminal();
  });
  const list = [...jobs.values()].sort((a, b) => a.state - b.state || Number(a.createdAt?.seconds ?? 0) - Number(b.createdAt?.seconds ?? 0));
  return (
    <section className="panel" aria-labelledby="queue-heading">
      <h2 id="queue-heading">Job queue</h2>
      <p className="muted" aria-live="polite" data-testid="queue-count">
        {list.filter((j) => j.state === JobState.RUNNING).length} running, {list.filter((j) => j.state === JobState.QUEUED).length} queued
      </p>
      {list.length > 0 ? (
        <div className="table-scroll" tabIndex={0} role="region" aria-label="Job queue table">
          <table className="table">
            <thead>
              <tr>
                <th scope="col">File</th>
                <th scope="col">State</th>
                <th scope="col">Stage</th>
                <th scope="col">Progress</th>
                <th scope="col">Message</th>
              </tr>
            </thead>
            <tbody>
              {list.map((j) => (
                <tr key={j.jobId} data-job-id={j.jobId}>
                  <td>
                    <Link to={`/files/${j.fileId}`}>{j.fileId.slice(0, 8)}</Link>
                  </td>
                  <td>{jobStateName(j.state)}</td>
                  <td>{jobStageName(j.stage) || "—"}</td>
                  <td>{formatPercent(j.progress)}</td>
                  <td>{j.message || "—"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : (
        <p className="muted">The queue is empty.</p>
      )}
    </section>
  );
}

export default function System() {
  const { analytics } = useApi();
  const isAdmin = useCan("admin");
  const toasts = useToasts();
  const [stats, setStats] = useState<Stats | null>(null);
  const [error, setError] = useState<string | null>(null);
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const load = useCallback(async () => {
    try {
      setStats(await analytics.getStats({}));
      setError(null);
    } catch (err) {
      setError(describeError(err));
      toasts.error("Loading the statistics failed", err);
    }
  }, [analytics, toasts]);
  useEffect(() => {
    void load();
    return () => clearTimeout(timer.current);
  }, [load]);
  const onTerminal = useCallback(() => {
    clearTimeout(timer.current);
    timer.current = setTimeout(() => void load(), 1000);
  }, [load]);
  return (
    <>
      <div className="list-head">
        <h1>System</h1>
        <button type="button" onClick={() => void load()}>
          Refresh statistics
        </button>
      </div>
      {error && (
        <p className="error-text" role="alert">
          {error}
        </p>
      )}
      {stats ? <StatsPanel stats={stats} /> : !error && <p role="status">Loading…</p>}
      <HealthPanel />
      <QueuePanel onTerminal={onTerminal} />
      {isAdmin ? <UsagePanel /> : <UsageNote />}
    </>
  );
}
