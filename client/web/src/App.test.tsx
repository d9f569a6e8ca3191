import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { act, cleanup, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { Code, ConnectError, createRouterTransport } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import {
  AudioService,
  DeleteFileResponseSchema,
  FileSchema,
  FileState,
  JobSchema,
  CollectionSchema,
  JobState,
  KeyMode,
  LibraryEventSchema,
  ListCollectionsResponseSchema,
  ListFilesResponseSchema,
  ListJobsResponseSchema,
  UploadResultSchema,
  UploadSessionSchema,
  WaveformSchema,
  type File,
  type LibraryEvent,
  type ListFilesRequest,
  type UpdateFileRequest,
} from "./gen/traum/v1/audio_pb";
import { AnalyticsService, StatsSchema, UsageSchema } from "./gen/traum/v1/analytics_pb";
import { SearchResponseSchema, SearchService, SuggestResponseSchema, SuggestionSource, type SearchByTextRequest } from "./gen/traum/v1/search_pb";
import { Health, HealthCheckResponseSchema, HealthCheckResponse_ServingStatus } from "./gen/grpc/health/v1/health_pb";
import { App } from "./App";
import { createApi } from "./api/client";
import { authInterceptor, CREDENTIAL_KEY, sessionCredentialStorage, SessionStore, SignInRefused, type Role } from "./auth/session";

function mkFile(i: number): File {
  return create(FileSchema, {
    fileId: `id-${i}`,
    filename: `loop-${i}.wav`,
    state: FileState.READY,
    tags: ["drums"],
    sizeBytes: 1000n,
    properties: { durationSeconds: 65, sampleRateHz: 48000, channels: 2, codec: "pcm_s16le", bitrateBps: 1536000n },
    descriptors: { bpm: 120, loudnessLufs: -14.25, key: { pitchClass: 9, mode: KeyMode.MINOR } },
  });
}

class Pusher {
  private queue: LibraryEvent[] = [];
  private wake: (() => void) | null = null;
  push(ev: LibraryEvent) {
    this.queue.push(ev);
    this.wake?.();
  }
  async *stream(): AsyncIterable<LibraryEvent> {
    for (;;) {
      while (this.queue.length) yield this.queue.shift()!;
      await new Promise<void>((r) => (this.wake = r));
    }
  }
}

/**
 * An IntersectionObserver whose targets come into view when a test says so
 * (happy-dom's never reports an intersection).
 */
class TestIntersectionObserver {
  static all = new Set<TestIntersectionObserver>();
  readonly targets = new Set<Element>();
  constructor(private readonly callback: IntersectionObserverCallback) {
    TestIntersectionObserver.all.add(this);
  }
  observe(el: Element) {
    this.targets.add(el);
  }
  unobserve(el: Element) {
    this.targets.delete(el);
  }
  disconnect() {
    this.targets.clear();
  }
  /** Elements being watched by every observer, so a test can wait for the app's effects to have subscribed. */
  static watched(): number {
    let n = 0;
    for (const o of TestIntersectionObserver.all) n += o.targets.size;
    return n;
  }
  static showAll() {
    for (const o of TestIntersectionObserver.all) {
      const entries = [...o.targets].map((target) => ({ target, isIntersecting: true }) as IntersectionObserverEntry);
      if (entries.length) o.callback(entries, o as unknown as IntersectionObserver);
    }
  }
}

beforeAll(() => {
  // Installed for the whole file: the app keeps the first observer it makes.
  vi.stubGlobal("IntersectionObserver", TestIntersectionObserver);
});

/** Collection id → name and member file ids. */
const COLLECTIONS = new Map([
  ["c-kit", { name: "Kit", files: ["id-2"] }],
  ["c-empty", { name: "Nothing yet", files: [] as string[] }],
]);

interface AuthOptions {
  /** The server's keys and their roles (auth required). */
  keys: Record<string, Role>;
  /** sessionStorage stand-in. */
  storage: Map<string, string>;
}

/** A SessionStore against a fake /api/session with these keys (auth required). */
function sessionFor(auth: AuthOptions): { store: SessionStore; requests: string[] } {
  const requests: string[] = [];
  const store = new SessionStore({
    http: {
      async get() {
        requests.push("GET");
        return { auth: "required", role: null, principal: null };
      },
      async signIn(credential) {
        requests.push(`POST ${credential}`);
        const role = auth.keys[credential];
        if (!role) throw new SignInRefused("the API key is unknown or revoked");
        return { auth: "required", role, principal: `key ${credential}` };
      },
      async signOut() {
        requests.push("DELETE");
      },
    },
    storage: sessionCredentialStorage({
      getItem: (k) => auth.storage.get(k) ?? null,
      setItem: (k, v) => void auth.storage.set(k, v),
      removeItem: (k) => void auth.storage.delete(k),
    }),
  });
  return { store, requests };
}

function setup(files: File[], opts: { deleteError?: ConnectError; auth?: AuthOptions } = {}) {
  const db = new Map(files.map((f) => [f.fileId, f]));
  const updates: UpdateFileRequest[] = [];
  const lists: ListFilesRequest[] = [];
  const waveforms: string[] = [];
  const searches: SearchByTextRequest[] = [];
  const live = new Pusher();
  const received = new Map<string, number>();
  const usageCalls: number[] = [];
  /** The authorization header of every ListFiles call. */
  const authorizations: (string | null)[] = [];
  const session = opts.auth ? sessionFor(opts.auth) : undefined;
  /** With auth: the role the call's credential has, else UNAUTHENTICATED (a revoked key too). */
  const roleOf = (header: Headers): Role => {
    if (!opts.auth) return "admin";
    const key = header.get("authorization")?.replace(/^Bearer /, "") ?? "";
    const role = opts.auth.keys[key];
    if (!role) throw new ConnectError("the API key is unknown or revoked", Code.Unauthenticated);
    return role;
  };
  const transport = createRouterTransport(({ service }) => {
    service(AudioService, {
      listFiles(req, ctx) {
        authorizations.push(ctx.requestHeader.get("authorization"));
        roleOf(ctx.requestHeader);
        lists.push(req);
        const inCollection = req.collectionId ? COLLECTIONS.get(req.collectionId)?.files : undefined;
        if (req.collectionId && !inCollection) throw new ConnectError(`collection ${req.collectionId} does not exist`, Code.NotFound);
        const list = [...db.values()]
          .filter((f) => !req.filenameContains || f.filename.includes(req.filenameContains))
          .filter((f) => !inCollection || inCollection.includes(f.fileId));
        return create(ListFilesResponseSchema, { files: list, totalCount: BigInt(list.length) });
      },
      listCollections() {
        return create(ListCollectionsResponseSchema, {
          collections: [...COLLECTIONS].map(([id, c]) => create(CollectionSchema, { collectionId: id, name: c.name, fileCount: c.files.length })),
        });
      },
      getCollection(req) {
        const c = COLLECTIONS.get(req.collectionId);
        if (!c) throw new ConnectError(`collection ${req.collectionId} does not exist`, Code.NotFound);
        const members = c.files.map((id) => db.get(id)).filter((f): f is File => !!f);
        return create(CollectionSchema, { collectionId: req.collectionId, name: c.name, fileCount: members.length, files: members });
      },
      getFile(req) {
        const f = db.get(req.fileId);
        if (!f) throw new ConnectError(`file ${req.fileId} does not exist`, Code.NotFound);
        return f;
      },
      updateFile(req) {
        updates.push(req);
        const f = db.get(req.fileId)!;
        const tags = [...new Set([...f.tags, ...req.addTags])].filter((t) => !req.removeTags.includes(t)).sort();
        const n = create(FileSchema, { ...f, tags, filename: req.filename ?? f.filename });
        db.set(n.fileId, n);
        return n;
      },
      deleteFile(req) {
        if (opts.deleteError) throw opts.deleteError;
        db.delete(req.fileId);
        return create(DeleteFileResponseSchema, { blobDeleted: true });
      },
      listJobs(req) {
        return create(ListJobsResponseSchema, {
          jobs: req.fileId ? [create(JobSchema, { jobId: "j1", fileId: req.fileId, state: JobState.SUCCEEDED, attempts: 1 })] : [],
        });
      },
      getWaveform(req) {
        waveforms.push(req.fileId);
        return create(WaveformSchema, { fileId: req.fileId, durationSeconds: 65, overview: { pairCount: 2, samplesPerPair: 1, peaks: new Uint8Array([0x81, 0x7f, 0xc0, 0x40]) } });
      },
      watchLibrary() {
        return live.stream();
      },
      startUpload(req) {
        if (req.header!.filename.endsWith(".txt")) throw new ConnectError("unsupported format: plain text", Code.InvalidArgument);
        return create(UploadSessionSchema, { uploadId: `u-${req.header!.filename}`, maxChunkBytes: 4n });
      },
      putUploadChunk(req) {
        const got = (received.get(req.uploadId) ?? 0) + req.data.length;
        received.set(req.uploadId, got);
        return create(UploadSessionSchema, { uploadId: req.uploadId, receivedBytes: BigInt(got), maxChunkBytes: 4n });
      },
      finishUpload(req) {
        return create(UploadResultSchema, { fileId: "new-file", jobId: "new-job", sizeBytes: BigInt(received.get(req.uploadId) ?? 0) });
      },
      getJob(req) {
        return create(JobSchema, { jobId: req.jobId, fileId: "new-file", state: JobState.QUEUED });
      },
    });
    service(SearchService, {
      searchByText(req) {
        searches.push(req);
        if (req.filters?.minBpm !== undefined && req.filters.maxBpm !== undefined && req.filters.minBpm > req.filters.maxBpm)
          throw new ConnectError("min_bpm must not exceed max_bpm", Code.InvalidArgument);
        const bad = req.options?.refine?.badFileIds ?? [];
        const hits = [...db.values()]
          .filter((f) => !bad.includes(f.fileId))
          .map((f, i) => ({
            file: { fileId: f.fileId, filename: f.filename, durationSeconds: 65, tags: f.tags, format: f.format, bpm: 120 },
            score: 0.9 - i / 10,
            cosine: 0.8 - i / 10,
            segmentStartSeconds: 10,
            segmentEndSeconds: 20,
            windowStartSeconds: [0, 10, 20, 30, 40, 50, 60],
            windowScores: [0.125, 0.75, 0.5, 0.25, 0.375, 0.625, 0.0625],
          }));
        return create(SearchResponseSchema, { hits, tookMs: 3 });
      },
      suggest(req) {
        return create(SuggestResponseSchema, { suggestions: [{ text: `${req.prefix}ums`, source: SuggestionSource.TAG, count: 2n }] });
      },
    });
    service(AnalyticsService, {
      getStats() {
        return create(StatsSchema, {
          fileCount: 42n,
          totalDurationSeconds: 3600,
          storedBytes: 5_000_000n,
          filesByFormat: [{ name: "AUDIO_FORMAT_WAV", count: 42n }],
          jobsByState: [{ name: "JOB_STATE_SUCCEEDED", count: 40n }],
          modelName: "laion/clap",
        });
      },
      getUsage(_req, ctx) {
        usageCalls.push(1);
        if (roleOf(ctx.requestHeader) !== "admin") throw new ConnectError("this call needs a credential with the `admin` role", Code.PermissionDenied);
        return create(UsageSchema, { rpcs: [{ method: "/traum.v1.AudioService/ListFiles", calls: 10n, errors: 1n }], buckets: [{ uploads: 3n }] });
      },
    });
    service(Health, {
      check() {
        return create(HealthCheckResponseSchema, { status: HealthCheckResponse_ServingStatus.SERVING });
      },
    });
  }, { transport: { interceptors: session ? [authInterceptor(session.store)] : [] } });
  render(<App api={createApi(transport)} session={session?.store} />);
  return { db, updates, live, searches, lists, waveforms, usageCalls, authorizations, sessionRequests: session?.requests ?? [] };
}

beforeEach(() => {
  window.history.replaceState(null, "", "/");
  localStorage.clear();
});
afterEach(cleanup);

describe("App", () => {
  it("lists files with formatted descriptors and live updates", async () => {
    const { live, db } = setup([mkFile(1), mkFile(2)]);
    const grid = await screen.findByRole("grid", { name: "Library" });
    await within(grid).findByText("loop-1.wav");
    expect(within(grid).getAllByText("A minor")).toHaveLength(2);
    expect(within(grid).getAllByText("−14.3 LUFS")).toHaveLength(2);
    expect(screen.getByTestId("file-count").textContent).toContain("2 files");
    await waitFor(() => expect(screen.getByTestId("connection-status").dataset.state).toBe("live"), { timeout: 3000 });

    act(() => live.push(create(LibraryEventSchema, { change: { case: "deletedFileId", value: "id-2" } })));
    await waitFor(() => expect(within(grid).queryByText("loop-2.wav")).toBeNull());

    db.set("id-3", mkFile(3));
    act(() => live.push(create(LibraryEventSchema, { change: { case: "job", value: create(JobSchema, { jobId: "j3", fileId: "id-3", state: JobState.QUEUED }) } })));
    await within(grid).findByText("loop-3.wav");
  });

  it("filters the library by collection, kept in the URL; an unknown collection shows the server's NOT_FOUND", async () => {
    const { lists } = setup([mkFile(1), mkFile(2), mkFile(3)]);
    const grid = await screen.findByRole("grid", { name: "Library" });
    await within(grid).findByText("loop-3.wav");
    const select = screen.getByLabelText("Collection") as HTMLSelectElement;
    await waitFor(() => expect([...select.options].map((o) => o.textContent)).toEqual(["Any collection", "Kit", "Nothing yet"]));
    expect(select.value).toBe("");
    fireEvent.change(select, { target: { value: "c-kit" } });
    await waitFor(() => expect(within(grid).queryByText("loop-1.wav")).toBeNull());
    expect(within(grid).getByText("loop-2.wav")).toBeTruthy();
    expect(within(grid).queryByText("loop-3.wav")).toBeNull();
    expect(lists[lists.length - 1].collectionId).toBe("c-kit");
    expect(new URLSearchParams(window.location.search).get("collection")).toBe("c-kit");
    expect(select.value).toBe("c-kit");

    // Back: any collection again, from the URL.
    act(() => {
      window.history.back();
    });
    await waitFor(() => expect(window.location.search).toBe(""));
    await within(grid).findByText("loop-3.wav");
    expect(select.value).toBe("");
    expect(lists[lists.length - 1].collectionId).toBe("");

    // A link to a deleted collection.
    act(() => {
      window.history.pushState(null, "", "/?collection=c-gone");
      window.dispatchEvent(new PopStateEvent("popstate"));
    });
    expect((await screen.findByText(/The library could not be loaded/)).textContent).toContain("collection c-gone does not exist");
    expect(select.value).toBe("c-gone");
    expect(select.selectedOptions[0].textContent).toBe("Unknown collection");
  });

  it("edits tags of the selection in bulk and shows success after the server confirmed", async () => {
    const { updates } = setup([mkFile(1), mkFile(2)]);
    await screen.findByText("loop-1.wav");
    fireEvent.click(screen.getByRole("checkbox", { name: "Select all loaded files" }));
    expect(screen.getByTestId("selection-count").textContent).toBe("2 selected");
    fireEvent.click(screen.getByRole("button", { name: "Edit tags" }));
    const input = screen.getByLabelText("Tags to add");
    fireEvent.change(input, { target: { value: "Kick" } });
    fireEvent.keyDown(input, { key: "Enter" });
    fireEvent.click(screen.getByRole("button", { name: "Save tags" }));
    await screen.findByText("Tags updated on 2 files");
    expect(updates.map((u) => u.addTags)).toEqual([["kick"], ["kick"]]);
  });

  it("shows the server's error when a delete fails", async () => {
    setup([mkFile(1)], { deleteError: new ConnectError("file id-1 does not exist", Code.NotFound) });
    await screen.findByText("loop-1.wav");
    fireEvent.click(screen.getByRole("checkbox", { name: "Select loop-1.wav" }));
    fireEvent.click(screen.getByRole("button", { name: "Delete" }));
    fireEvent.click(screen.getByRole("button", { name: "Confirm delete" }));
    const alerts = await screen.findAllByText(/Not found: file id-1 does not exist/);
    expect(alerts.length).toBe(2); // in the dialog and in the notifications
    expect(within(screen.getByTestId("toasts")).getByRole("alert").textContent).toContain("loop-1.wav: Not found: file id-1 does not exist");
    expect(screen.getByText("loop-1.wav")).toBeTruthy();
  });

  it("moves through rows with the keyboard, selects with Space and opens with Enter", async () => {
    setup([mkFile(1), mkFile(2), mkFile(3)]);
    await screen.findByText("loop-1.wav");
    const rows = () => screen.getAllByRole("row").filter((r) => r.dataset.index !== undefined);
    const first = rows()[0];
    expect(first.tabIndex).toBe(0);
    first.focus();
    fireEvent.keyDown(first, { key: "ArrowDown" });
    await waitFor(() => expect(document.activeElement).toBe(rows()[1]));
    fireEvent.keyDown(rows()[1], { key: " " });
    expect(screen.getByRole("checkbox", { name: "Select loop-2.wav" })).toHaveProperty("checked", true);
    expect(rows()[1].getAttribute("aria-selected")).toBe("true");
    fireEvent.keyDown(rows()[1], { key: "Enter" });
    await screen.findByRole("heading", { name: "loop-2.wav", level: 1 });
    expect(window.location.pathname).toBe("/files/id-2");
  });

  it("uploads a picked file and lists a refused one under Failed", async () => {
    setup([]);
    const input = screen.getByLabelText("Upload");
    fireEvent.change(input, {
      target: { files: [new window.File([new Uint8Array(10)], "kick.wav"), new window.File([new Uint8Array(3)], "notes.txt")] },
    });
    const bar = await screen.findByRole("progressbar", { name: "kick.wav" });
    await waitFor(() => expect(bar.getAttribute("aria-valuenow")).toBe("100"));
    await screen.findByText("Queued for processing");
    const failed = await screen.findByRole("list", { name: "Failed uploads" });
    expect(within(failed).getByText("Failed: Invalid argument: unsupported format: plain text")).toBeTruthy();
    fireEvent.click(within(failed).getByRole("button", { name: "Dismiss notes.txt" }));
    expect(screen.queryByRole("list", { name: "Failed uploads" })).toBeNull();
  });

  it("sorts by clicking a column header", async () => {
    setup([mkFile(1)]);
    await screen.findByText("loop-1.wav");
    const header = screen.getByRole("columnheader", { name: /Name/ });
    expect(header.getAttribute("aria-sort")).toBe("none");
    fireEvent.click(within(header).getByRole("button"));
    await waitFor(() => expect(header.getAttribute("aria-sort")).toBe("ascending"));
    fireEvent.click(within(header).getByRole("button"));
    await waitFor(() => expect(header.getAttribute("aria-sort")).toBe("descending"));
  });

  it("shows a file with its player and a keyboard seek slider", async () => {
    window.history.replaceState(null, "", "/files/id-1");
    setup([mkFile(1)]);
    await screen.findByRole("heading", { name: "loop-1.wav", level: 1 });
    expect(screen.getByText("48,000 Hz")).toBeTruthy();
    expect(screen.getByText("Succeeded")).toBeTruthy();
    const slider = screen.getByRole("slider", { name: "Seek" });
    expect(slider.getAttribute("aria-valuemax")).toBe("65");
    fireEvent.keyDown(slider, { key: "ArrowRight" });
    expect(slider.getAttribute("aria-valuenow")).toBe("5");
    expect(screen.getByRole("button", { name: "Play" })).toBeTruthy();
    const audio = document.querySelector("audio")!;
    expect(audio.getAttribute("src")).toBe("/api/files/id-1/audio");
    expect(screen.getByRole("link", { name: "Download" }).getAttribute("download")).toBe("loop-1.wav");
  });

  it("shows a not-found file", async () => {
    window.history.replaceState(null, "", "/files/nope");
    setup([]);
    await screen.findByRole("heading", { name: "File not found" });
    expect(screen.getByText("Not found: file nope does not exist")).toBeTruthy();
  });

  it("shows system figures in a description list", async () => {
    window.history.replaceState(null, "", "/system");
    setup([]);
    const files = await screen.findByText("Files", { selector: "dt" });
    expect(files.nextElementSibling?.textContent).toBe("42");
    expect(screen.getByText("Total duration", { selector: "dt" }).nextElementSibling?.textContent).toBe("1 h 0 min");
    await waitFor(() => expect(screen.getAllByText("Serving")).toHaveLength(3));
    await screen.findByText("Calls and errors per RPC");
  });

  it("toggles and remembers the theme", async () => {
    setup([]);
    const btn = screen.getByRole("button", { name: "Light theme" });
    expect(document.documentElement.dataset.theme).toBe("dark");
    fireEvent.click(btn);
    await waitFor(() => expect(document.documentElement.dataset.theme).toBe("light"));
    expect(localStorage.getItem("traum.theme")).toBe("light");
  });

  it("search: runs the URL's query and filters, refines with marks, and shows the server's INVALID_ARGUMENT", async () => {
    window.history.replaceState(null, "", "/search?q=kick&all=drums&fmt=wav");
    const { searches, waveforms } = setup([mkFile(1), mkFile(2)]);
    await screen.findByRole("link", { name: "loop-1.wav" });
    expect(screen.getByRole("link", { name: "Search" }).getAttribute("aria-current")).toBe("page");
    expect((screen.getByRole("searchbox", { name: "Search" }) as HTMLInputElement).value).toBe("kick");
    expect(searches[0].query).toBe("kick");
    expect(searches[0].filters?.tagsAll).toEqual(["drums"]);
    expect(searches[0].filters?.formats).toEqual([1]);
    expect(searches[0].options?.refine).toBeUndefined();
    expect(screen.getByRole("list", { name: "Active filters" }).textContent).toContain("Tag: drums");
    // The best segment shows at once (10–20 s of 65 s); waveforms and window
    // strips wait until their hit nears the viewport.
    const hit = screen.getByRole("link", { name: "loop-1.wav" }).closest("li")!;
    const seg = within(hit).getByTestId("mini-segment");
    expect(parseFloat(seg.style.left)).toBeCloseTo((10 / 65) * 100, 9);
    expect(parseFloat(seg.style.width)).toBeCloseTo((10 / 65) * 100, 9);
    expect(hit.querySelector("[data-testid='window-strip']")).toBeNull();
    expect(waveforms).toEqual([]);
    // React runs the effects that subscribe to the observer after the commit
    // that showed the hits; on a slow machine that can come after the lookup.
    await waitFor(() => expect(TestIntersectionObserver.watched()).toBe(2));
    act(() => TestIntersectionObserver.showAll());
    await waitFor(() => expect(hit.querySelector("[data-testid='mini-waveform']")?.getAttribute("data-loaded")).toBe("true"));
    expect(waveforms.sort()).toEqual(["id-1", "id-2"]);
    // The window strip: one cell per window, placed and labelled by its own start and score.
    const cells = await waitFor(() => {
      const found = [...hit.querySelectorAll<HTMLElement>("[data-testid='window-strip'] .window-cell")];
      expect(found).toHaveLength(7);
      return found;
    });
    expect(cells.map((c) => Number(c.dataset.score))).toEqual([0.125, 0.75, 0.5, 0.25, 0.375, 0.625, 0.0625]);
    expect(cells.map((c) => c.style.left)).toEqual([0, 10, 20, 30, 40, 50, 60].map((t) => `${(t / 65) * 100}%`));
    // The last window ends with the file, 5 s after its start.
    expect(parseFloat(cells[6].style.width)).toBeCloseTo((5 / 65) * 100, 9);
    expect(cells[1].title).toBe("0:10.0–0:20.0: 0.75");
    expect(within(hit).getByTestId("window-scores").textContent).toBe("Best windows: 0:10.0 (0.75), 0:50.0 (0.63), 0:20.0 (0.50)");

    fireEvent.click(screen.getByRole("button", { name: "Mark loop-1.wav good" }));
    fireEvent.click(screen.getByRole("button", { name: "Mark loop-2.wav bad" }));
    expect(screen.getByRole("button", { name: "Mark loop-1.wav good" }).getAttribute("aria-pressed")).toBe("true");
    fireEvent.click(screen.getByRole("button", { name: "Refine" }));
    await waitFor(() => expect(screen.queryByRole("link", { name: "loop-2.wav" })).toBeNull());
    const last = searches[searches.length - 1];
    expect(last.options?.refine?.goodFileIds).toEqual(["id-1"]);
    expect(last.options?.refine?.badFileIds).toEqual(["id-2"]);
    expect(last.filters?.tagsAll).toEqual(["drums"]);
    expect(new URLSearchParams(window.location.search).getAll("good")).toEqual(["id-1"]);

    // Removing a chip re-runs without that filter.
    fireEvent.click(screen.getByRole("button", { name: "Remove filter Tag: drums" }));
    await waitFor(() => expect(searches[searches.length - 1].filters?.tagsAll).toEqual([]));

    // min > max: refused in the UI, and the server's message when sent by URL.
    fireEvent.change(screen.getByLabelText("Minimum BPM"), { target: { value: "130" } });
    fireEvent.change(screen.getByLabelText("Maximum BPM"), { target: { value: "120" } });
    const n = searches.length;
    fireEvent.click(screen.getByRole("button", { name: "Apply filters" }));
    expect(screen.getByTestId("filter-validation").textContent).toContain("Minimum BPM must not be above the maximum BPM.");
    expect(searches.length).toBe(n);
    act(() => {
      window.history.pushState(null, "", "/search?q=kick&bmin=130&bmax=120");
      window.dispatchEvent(new PopStateEvent("popstate"));
    });
    expect((await screen.findByTestId("search-error")).textContent).toBe("Invalid argument: min_bpm must not exceed max_bpm");
  });

  it("search: suggestions are keyboard-selectable and remembered as recent searches", async () => {
    window.history.replaceState(null, "", "/search");
    const { searches } = setup([mkFile(1)]);
    const box = await screen.findByRole("searchbox", { name: "Search" });
    fireEvent.focus(box);
    fireEvent.change(box, { target: { value: "dr" } });
    const option = await screen.findByRole("option", { name: /drums/ });
    fireEvent.keyDown(box, { key: "ArrowDown" });
    expect(box.getAttribute("aria-activedescendant")).toBe(option.id);
    fireEvent.keyDown(box, { key: "Enter" });
    await waitFor(() => expect(searches.map((s) => s.query)).toEqual(["drums"]));
    expect(new URLSearchParams(window.location.search).get("q")).toBe("drums");
    expect(JSON.parse(localStorage.getItem("traum.recent-searches")!)).toEqual(["drums"]);
  });
});

describe("App with auth required", () => {
  const KEYS: Record<string, Role> = { traum_read: "read", traum_write: "write", traum_admin: "admin" };
  const auth = () => ({ keys: { ...KEYS }, storage: new Map<string, string>() });

  async function signIn(key: string) {
    const input = await screen.findByLabelText("API key or token");
    expect(input.getAttribute("type")).toBe("password");
    fireEvent.change(input, { target: { value: key } });
    fireEvent.click(screen.getByRole("button", { name: "Sign in" }));
  }

  it("asks for a key, shows the server's refusal, then a read key sees the library without upload or edits; sign-out forgets it", async () => {
    const a = auth();
    const failed = create(FileSchema, { ...mkFile(9), state: FileState.FAILED, error: "decode failed" });
    const { authorizations, sessionRequests } = setup([mkFile(1), mkFile(2), failed], { auth: a });
    expect(await screen.findByRole("heading", { name: "Sign in", level: 1 })).toBeTruthy();
    expect(screen.queryByRole("grid", { name: "Library" })).toBeNull();
    expect(authorizations).toEqual([]);

    await signIn("traum_wrong");
    expect((await screen.findByRole("alert")).textContent).toBe("Sign-in refused: the API key is unknown or revoked");
    expect(screen.getByLabelText("API key or token").getAttribute("aria-invalid")).toBe("true");
    expect(a.storage.size).toBe(0);

    await signIn("traum_read");
    const grid = await screen.findByRole("grid", { name: "Library" });
    await within(grid).findByText("loop-1.wav");
    expect(screen.getByTestId("session-role").textContent).toBe("Signed in · read");
    expect(a.storage.get(CREDENTIAL_KEY)).toBe("traum_read");
    expect(authorizations.every((h) => h === "Bearer traum_read")).toBe(true);
    // No upload: neither the drop zone nor the Upload button.
    expect(screen.queryByRole("heading", { name: "Upload files" })).toBeNull();
    expect(screen.queryByLabelText("Upload")).toBeNull();
    expect(screen.queryByTestId("dropzone")).toBeNull();
    // A failed file cannot be reprocessed either.
    expect(within(grid).getByText("loop-9.wav")).toBeTruthy();
    expect(screen.queryByRole("button", { name: "Retry loop-9.wav" })).toBeNull();
    // A selected file can be downloaded, not retagged, renamed, deleted or collected.
    fireEvent.click(screen.getByRole("checkbox", { name: "Select loop-1.wav" }));
    const toolbar = screen.getByRole("toolbar", { name: "File actions" });
    expect(within(toolbar).getAllByRole("link").map((b) => b.textContent)).toEqual(["Download"]);
    expect(within(toolbar).queryAllByRole("button")).toEqual([]);

    fireEvent.click(screen.getByRole("button", { name: "Sign out" }));
    expect(await screen.findByTestId("signin-notice")).toHaveProperty("textContent", "You signed out.");
    expect(screen.queryByRole("grid", { name: "Library" })).toBeNull();
    expect(a.storage.size).toBe(0);
    expect(sessionRequests).toEqual(["GET", "POST traum_wrong", "POST traum_read", "DELETE"]);
  });

  it("a write key sees upload and edits, but a note instead of the admin-only usage", async () => {
    window.history.replaceState(null, "", "/system");
    const failed = create(FileSchema, { ...mkFile(9), state: FileState.FAILED, error: "decode failed" });
    const { usageCalls } = setup([mkFile(1), failed], { auth: auth() });
    await signIn("traum_write");
    expect((await screen.findByTestId("usage-note")).textContent).toContain("need an admin key or token; this session has the write role");
    expect(screen.queryByText("Calls and errors per RPC")).toBeNull();
    expect(usageCalls).toEqual([]);
    expect(screen.getByTestId("session-role").textContent).toBe("Signed in · write");

    fireEvent.click(screen.getByRole("link", { name: "Library" }));
    await screen.findByText("loop-1.wav");
    expect(screen.getByLabelText("Upload")).toBeTruthy();
    expect(screen.getByRole("button", { name: "Retry loop-9.wav" })).toBeTruthy();
    fireEvent.click(screen.getByRole("checkbox", { name: "Select loop-1.wav" }));
    const toolbar = screen.getByRole("toolbar", { name: "File actions" });
    expect(within(toolbar).getAllByRole("button").map((b) => b.textContent)).toEqual(["Edit tags", "Rename", "Delete", "Add to collection"]);
  });

  it("an admin key sees the usage", async () => {
    window.history.replaceState(null, "", "/system");
    const { usageCalls } = setup([], { auth: auth() });
    await signIn("traum_admin");
    await screen.findByText("Calls and errors per RPC");
    expect(screen.queryByTestId("usage-note")).toBeNull();
    expect(usageCalls.length).toBeGreaterThan(0);
  });

  it("a read key views and exports collections but cannot create, rename, reorder or remove", async () => {
    window.history.replaceState(null, "", "/collections");
    setup([mkFile(2)], { auth: auth() });
    await signIn("traum_read");
    await screen.findByRole("link", { name: "Kit" });
    expect(screen.queryByLabelText("Collection name")).toBeNull();
    expect(screen.queryByRole("button", { name: "Rename Kit" })).toBeNull();
    expect(screen.queryByRole("button", { name: "Delete Kit" })).toBeNull();
    fireEvent.click(screen.getByRole("link", { name: "Kit" }));
    await screen.findByRole("heading", { name: "Kit", level: 1 });
    expect(screen.getByRole("link", { name: "Export CSV" }).getAttribute("href")).toContain("/api/collections/c-kit/export");
    expect(screen.queryByRole("toolbar", { name: "Collection actions" })).toBeNull();
    expect(screen.queryByRole("button", { name: /^Move / })).toBeNull();
    expect(screen.queryByRole("button", { name: /^Remove / })).toBeNull();
  });

  it("a read key searches and auditions, but gets no Add to collection on hits", async () => {
    window.history.replaceState(null, "", "/search?q=kick");
    setup([mkFile(1)], { auth: auth() });
    await signIn("traum_read");
    await screen.findByRole("link", { name: "loop-1.wav" });
    expect(screen.getByRole("button", { name: "More like this: loop-1.wav" })).toBeTruthy();
    expect(screen.getByRole("button", { name: "Play loop-1.wav" })).toBeTruthy();
    expect(screen.queryByRole("button", { name: "Add to collection: loop-1.wav" })).toBeNull();
  });

  it("a reload signs in again with the key kept in session storage", async () => {
    const a = auth();
    a.storage.set(CREDENTIAL_KEY, "traum_write");
    const { sessionRequests } = setup([mkFile(1)], { auth: a });
    await screen.findByText("loop-1.wav");
    expect(screen.queryByLabelText("API key or token")).toBeNull();
    expect(sessionRequests).toEqual(["POST traum_write"]);
  });

  it("a key revoked while signed in brings back the sign-in form with the server's message", async () => {
    const a = auth();
    a.storage.set(CREDENTIAL_KEY, "traum_read");
    setup([mkFile(1)], { auth: a });
    await screen.findByText("loop-1.wav");
    a.keys = {};
    // Any call now fails UNAUTHENTICATED, e.g. the list after a filter change.
    fireEvent.change(screen.getByLabelText("State"), { target: { value: String(FileState.READY) } });
    expect((await screen.findByTestId("signin-notice")).textContent).toBe("Your session ended: the API key is unknown or revoked");
    expect(a.storage.size).toBe(0);
  });
});
