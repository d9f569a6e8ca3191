// The library list: pages of ListFiles plus live updates from WatchLibrary,
// and its filters in the URL query string (so reload, back/forward and a
// shared link show the same files). Plain TypeScript so that both are
// unit-tested.
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import {
  FileOrder,
  FileState,
  JobState,
  type AudioFormat,
  type AudioService,
  type File,
  type Job,
  type LibraryEvent,
} from "../gen/traum/v1/audio_pb";
import { formatCode, parseFormat } from "../search/url-state";

export interface FileFilters {
  tags: string[];
  formats: AudioFormat[];
  state: FileState;
  filename: string;
  /** A collection's id; "" for any. */
  collectionId: string;
  orderBy: FileOrder;
  ascending: boolean;
}

export const DEFAULT_FILTERS: FileFilters = {
  tags: [],
  formats: [],
  state: FileState.UNSPECIFIED,
  filename: "",
  collectionId: "",
  orderBy: FileOrder.CREATED_AT,
  ascending: false,
};

//   ?name=<text>  tag=<tag> (repeated)  fmt=<wav|aiff|flac|mp3|ogg|m4a> (repeated)
//   state=<processing|ready|failed>  collection=<id>
//   sort=<added|name|size|duration>  asc=1
const STATE_CODES: [FileState, string][] = [
  [FileState.PROCESSING, "processing"],
  [FileState.READY, "ready"],
  [FileState.FAILED, "failed"],
];
const ORDER_CODES: [FileOrder, string][] = [
  [FileOrder.CREATED_AT, "added"],
  [FileOrder.FILENAME, "name"],
  [FileOrder.SIZE, "size"],
  [FileOrder.DURATION, "duration"],
];

export function parseLibraryFilters(search: string): FileFilters {
  const p = new URLSearchParams(search.startsWith("?") ? search.slice(1) : search);
  const state = p.get("state");
  const sort = p.get("sort");
  return {
    tags: [...new Set(p.getAll("tag").filter(Boolean))],
    formats: [...new Set(p.getAll("fmt").map(parseFormat).filter((x): x is AudioFormat => x !== undefined))],
    state: STATE_CODES.find(([, c]) => c === state)?.[0] ?? FileState.UNSPECIFIED,
    filename: p.get("name") ?? "",
    collectionId: p.get("collection")?.trim() ?? "",
    orderBy: ORDER_CODES.find(([, c]) => c === sort)?.[0] ?? FileOrder.CREATED_AT,
    ascending: p.get("asc") === "1",
  };
}

/** The query string (with "?", or "" for the defaults) in a canonical order. */
export function formatLibraryFilters(f: FileFilters): string {
  const p = new URLSearchParams();
  if (f.filename) p.set("name", f.filename);
  for (const t of f.tags) p.append("tag", t);
  for (const x of f.formats) {
    const c = formatCode(x);
    if (c) p.append("fmt", c);
  }
  const state = STATE_CODES.find(([v]) => v === f.state)?.[1];
  if (state) p.set("state", state);
  if (f.collectionId) p.set("collection", f.collectionId);
  const order = f.orderBy === FileOrder.UNSPECIFIED ? FileOrder.CREATED_AT : f.orderBy;
  if (order !== FileOrder.CREATED_AT) p.set("sort", ORDER_CODES.find(([v]) => v === order)?.[1] ?? "added");
  if (f.ascending) p.set("asc", "1");
  const text = p.toString();
  return text ? `?${text}` : "";
}

export interface FileListState {
  files: File[];
  /** Latest job per file id, from live events. */
  jobs: Map<string, Job>;
  totalCount: number;
  nextPageToken: string;
  loading: boolean;
  /** True once the first page arrived. */
  loaded: boolean;
  error?: string;
}

export const PAGE_SIZE = 300;

export class FileListStore {
  private state: FileListState = { files: [], jobs: new Map(), totalCount: 0, nextPageToken: "", loading: false, loaded: false };
  private readonly listeners = new Set<() => void>();
  private generation = 0;
  private readonly fetching = new Set<string>();

  constructor(
    private readonly client: Pick<Client<typeof AudioService>, "listFiles" | "getFile">,
    private filters: FileFilters,
    private readonly onError: (context: string, err: unknown) => void,
  ) {}

  subscribe = (fn: () => void) => {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  };

  getState = (): FileListState => this.state;

  private set(patch: Partial<FileListState>) {
    this.state = { ...this.state, ...patch };
    for (const l of this.listeners) l();
  }

  setFilters(filters: FileFilters) {
    this.filters = filters;
    void this.reload();
  }

  getFilters(): FileFilters {
    return this.filters;
  }

  async reload(): Promise<void> {
    const gen = ++this.generation;
    this.set({ loading: true, nextPageToken: "", error: undefined });
    await this.fetchPage("", gen, true);
  }

  async loadMore(): Promise<void> {
    if (this.state.loading || !this.state.nextPageToken) return;
    this.set({ loading: true });
    await this.fetchPage(this.state.nextPageToken, this.generation, false);
  }

  private async fetchPage(token: string, gen: number, replace: boolean) {
    const f = this.filters;
    try {
      const res = await this.client.listFiles({
        pageSize: PAGE_SIZE,
        pageToken: token,
        tags: f.tags,
        formats: f.formats,
        state: f.state,
        orderBy: f.orderBy,
        ascending: f.ascending,
        filenameContains: f.filename.trim(),
        collectionId: f.collectionId,
      });
      if (gen !== this.generation) return;
      const base = replace ? [] : this.state.files;
      const seen = new Set(base.map((x) => x.fileId));
      const files = base.concat(res.files.filter((x) => !seen.has(x.fileId)));
      this.set({ files, totalCount: Number(res.totalCount), nextPageToken: res.nextPageToken, loading: false, loaded: true });
    } catch (err) {
      if (gen !== this.generation) return;
      const e = ConnectError.from(err);
      this.set({ loading: false, loaded: true, error: e.rawMessage });
      this.onError("Loading the library failed", e);
    }
  }

  /** Whether a file passes the current filters (for files new to the list),
   * except the collection, which a File does not tell. */
  matches(file: File): boolean {
    const f = this.filters;
    if (f.state !== FileState.UNSPECIFIED && file.state !== f.state) return false;
    if (f.formats.length && !f.formats.includes(file.format)) return false;
    if (f.tags.some((t) => !file.tags.includes(t))) return false;
    const q = f.filename.trim().toLowerCase();
    if (q && !file.filename.toLowerCase().includes(q)) return false;
    return true;
  }

  /** Inserts or replaces a row. New rows go first (newest first ordering) or
   * last when the list is sorted otherwise and fully loaded. */
  upsert(file: File) {
    const idx = this.state.files.findIndex((x) => x.fileId === file.fileId);
    if (idx >= 0) {
      if (!this.matches(file)) {
        this.remove(file.fileId);
        return;
      }
      const files = this.state.files.slice();
      files[idx] = file;
      this.set({ files });
      return;
    }
    if (!this.matches(file)) return;
    const f = this.filters;
    // A file new to the list may or may not be in the collection shown; a
    // collection gains files through UpdateCollection, which reloads instead.
    if (f.collectionId) return;
    const newestFirst = f.orderBy === FileOrder.CREATED_AT || f.orderBy === FileOrder.UNSPECIFIED;
    if (newestFirst && !f.ascending) this.set({ files: [file, ...this.state.files], totalCount: this.state.totalCount + 1 });
    else if (!this.state.nextPageToken) this.set({ files: [...this.state.files, file], totalCount: this.state.totalCount + 1 });
    else this.set({ totalCount: this.state.totalCount + 1 });
  }

  remove(fileId: string) {
    const files = this.state.files.filter((x) => x.fileId !== fileId);
    if (files.length === this.state.files.length) return;
    const jobs = new Map(this.state.jobs);
    jobs.delete(fileId);
    this.set({ files, jobs, totalCount: Math.max(0, this.state.totalCount - 1) });
  }

  private async refreshFile(fileId: string) {
    if (this.fetching.has(fileId)) return;
    this.fetching.add(fileId);
    const gen = this.generation;
    try {
      const file = await this.client.getFile({ fileId });
      if (gen === this.generation) this.upsert(file);
    } catch (err) {
      const e = ConnectError.from(err);
      if (e.code === Code.NotFound) this.remove(fileId);
      else this.onError("Refreshing a file failed", e);
    } finally {
      this.fetching.delete(fileId);
    }
  }

  apply(ev: LibraryEvent) {
    switch (ev.change.case) {
      case "job": {
        const job = ev.change.value;
        const prev = this.state.jobs.get(job.fileId);
        const jobs = new Map(this.state.jobs);
        jobs.set(job.fileId, job);
        this.set({ jobs });
        const row = this.state.files.find((x) => x.fileId === job.fileId);
        const terminal = job.state === JobState.SUCCEEDED || job.state === JobState.FAILED;
        const stateChanged = !prev || prev.state !== job.state || prev.jobId !== job.jobId;
        if (!row || terminal || stateChanged) void this.refreshFile(job.fileId);
        break;
      }
      case "file":
        this.upsert(ev.change.value);
        break;
      case "deletedFileId":
        this.remove(ev.change.value);
        break;
      case "resync":
        void this.reload();
        break;
      default:
        break;
    }
  }
}

/** The state shown for a row: the file's own, unless a newer job is running. */
export function rowJob(state: FileListState, file: File): Job | undefined {
  const job = state.jobs.get(file.fileId);
  if (!job) return undefined;
  if (job.state === JobState.QUEUED || job.state === JobState.RUNNING) return job;
  return undefined;
}
