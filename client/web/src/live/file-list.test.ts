// @vitest-environment node
import { describe, expect, it, vi } from "vitest";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import {
  AudioFormat,
  AudioService,
  FileOrder,
  FileSchema,
  FileState,
  JobSchema,
  JobState,
  LibraryEventSchema,
  ListFilesResponseSchema,
  type File,
  type ListFilesRequest,
} from "../gen/traum/v1/audio_pb";
import { DEFAULT_FILTERS, FileListStore, formatLibraryFilters, parseLibraryFilters, type FileFilters } from "./file-list";

function mkFile(id: string, extra: MessageInitShape<typeof FileSchema> = {}): File {
  return create(FileSchema, { fileId: id, filename: `${id}.wav`, state: FileState.READY, ...extra });
}

function setup(all: File[]) {
  const requests: ListFilesRequest[] = [];
  const db = new Map(all.map((f) => [f.fileId, f]));
  const transport = createRouterTransport(({ service }) => {
    service(AudioService, {
      listFiles(req) {
        requests.push(req);
        const start = req.pageToken ? Number(req.pageToken) : 0;
        const list = [...db.values()];
        const page = list.slice(start, start + 2);
        const next = start + 2 < list.length ? String(start + 2) : "";
        return create(ListFilesResponseSchema, { files: page, nextPageToken: next, totalCount: BigInt(list.length) });
      },
      getFile(req) {
        const f = db.get(req.fileId);
        if (!f) throw new ConnectError(`file ${req.fileId} does not exist`, Code.NotFound);
        return f;
      },
    });
  });
  const onError = vi.fn();
  const store = new FileListStore(createClient(AudioService, transport), DEFAULT_FILTERS, onError);
  return { store, db, requests, onError };
}

const tick = () => new Promise((r) => setTimeout(r, 5));

describe("FileListStore", () => {
  it("pages through ListFiles with the filters", async () => {
    const { store, requests } = setup([mkFile("a"), mkFile("b"), mkFile("c")]);
    store.setFilters({ ...DEFAULT_FILTERS, tags: ["drums"], filename: " kick " });
    await tick();
    expect(store.getState().files.map((f) => f.fileId)).toEqual(["a", "b"]);
    expect(store.getState().totalCount).toBe(3);
    expect(requests[0].tags).toEqual(["drums"]);
    expect(requests[0].filenameContains).toBe("kick");
    await store.loadMore();
    expect(store.getState().files.map((f) => f.fileId)).toEqual(["a", "b", "c"]);
    expect(requests[1].pageToken).toBe("2");
  });

  it("inserts files of unknown jobs, replaces files and removes deleted ones", async () => {
    const { store, db } = setup([mkFile("a")]);
    await store.reload();
    db.set("n", mkFile("n", { state: FileState.PROCESSING }));
    store.apply(create(LibraryEventSchema, { change: { case: "job", value: create(JobSchema, { jobId: "j", fileId: "n", state: JobState.QUEUED }) } }));
    await tick();
    expect(store.getState().files.map((f) => f.fileId)).toEqual(["n", "a"]);
    expect(store.getState().totalCount).toBe(2);
    expect(store.getState().jobs.get("n")?.state).toBe(JobState.QUEUED);

    store.apply(create(LibraryEventSchema, { change: { case: "file", value: mkFile("a", { filename: "renamed.wav" }) } }));
    expect(store.getState().files[1].filename).toBe("renamed.wav");

    store.apply(create(LibraryEventSchema, { change: { case: "deletedFileId", value: "n" } }));
    expect(store.getState().files.map((f) => f.fileId)).toEqual(["a"]);
    expect(store.getState().totalCount).toBe(1);
  });

  it("refreshes a file when its job finishes", async () => {
    const { store, db } = setup([mkFile("a", { state: FileState.PROCESSING })]);
    await store.reload();
    store.apply(create(LibraryEventSchema, { change: { case: "job", value: create(JobSchema, { jobId: "j", fileId: "a", state: JobState.RUNNING }) } }));
    await tick();
    db.set("a", mkFile("a", { state: FileState.READY }));
    store.apply(create(LibraryEventSchema, { change: { case: "job", value: create(JobSchema, { jobId: "j", fileId: "a", state: JobState.SUCCEEDED }) } }));
    await tick();
    expect(store.getState().files[0].state).toBe(FileState.READY);
  });

  it("does not insert files that fail the filters and reloads on resync", async () => {
    const { store, db, requests } = setup([mkFile("a")]);
    store.setFilters({ ...DEFAULT_FILTERS, state: FileState.FAILED });
    await tick();
    db.set("n", mkFile("n", { state: FileState.PROCESSING }));
    store.apply(create(LibraryEventSchema, { change: { case: "job", value: create(JobSchema, { jobId: "j", fileId: "n", state: JobState.QUEUED }) } }));
    await tick();
    expect(store.getState().files.some((f) => f.fileId === "n")).toBe(false);
    store.apply(create(LibraryEventSchema, { change: { case: "resync", value: true } }));
    await tick();
    expect(requests).toHaveLength(2);
  });

  it("asks for the collection's files only, and does not guess which new files belong to it", async () => {
    const { store, db, requests } = setup([mkFile("a"), mkFile("b")]);
    store.setFilters({ ...DEFAULT_FILTERS, collectionId: "c1" });
    await tick();
    expect(requests[0].collectionId).toBe("c1");
    expect(store.getState().files.map((f) => f.fileId)).toEqual(["a", "b"]);
    // A new file: a File does not say which collections hold it.
    db.set("n", mkFile("n"));
    store.apply(create(LibraryEventSchema, { change: { case: "job", value: create(JobSchema, { jobId: "j", fileId: "n", state: JobState.QUEUED }) } }));
    await tick();
    expect(store.getState().files.map((f) => f.fileId)).toEqual(["a", "b"]);
    // A listed file that changes stays listed.
    store.apply(create(LibraryEventSchema, { change: { case: "file", value: mkFile("a", { filename: "renamed.wav" }) } }));
    expect(store.getState().files.map((f) => f.filename)).toEqual(["renamed.wav", "b.wav"]);
    // Without the collection, new files come in again.
    store.setFilters(DEFAULT_FILTERS);
    await tick();
    expect(requests[requests.length - 1].collectionId).toBe("");
    db.set("m", mkFile("m"));
    store.apply(create(LibraryEventSchema, { change: { case: "file", value: mkFile("m") } }));
    expect(store.getState().files[0].fileId).toBe("m");
  });

  it("reports list errors", async () => {
    const transport = createRouterTransport(({ service }) => {
      service(AudioService, {
        listFiles() {
          throw new ConnectError("database locked", Code.Unavailable);
        },
      });
    });
    const onError = vi.fn();
    const store = new FileListStore(createClient(AudioService, transport), DEFAULT_FILTERS, onError);
    await store.reload();
    expect(onError).toHaveBeenCalledOnce();
    expect(store.getState().error).toBe("database locked");
  });
});

describe("library filters in the URL", () => {
  it("round-trips every field, defaults as the empty query", () => {
    const f: FileFilters = {
      tags: ["drums", "lo fi"],
      formats: [AudioFormat.FLAC],
      state: FileState.READY,
      filename: "kick & snare",
      collectionId: "0d6f0c1e-1111-4222-8333-444455556666",
      orderBy: FileOrder.DURATION,
      ascending: true,
    };
    const text = formatLibraryFilters(f);
    expect(text).toBe("?name=kick+%26+snare&tag=drums&tag=lo+fi&fmt=flac&state=ready&collection=0d6f0c1e-1111-4222-8333-444455556666&sort=duration&asc=1");
    expect(parseLibraryFilters(text)).toEqual(f);
    expect(formatLibraryFilters(DEFAULT_FILTERS)).toBe("");
    expect(parseLibraryFilters("")).toEqual(DEFAULT_FILTERS);
    expect(formatLibraryFilters({ ...DEFAULT_FILTERS, orderBy: FileOrder.UNSPECIFIED })).toBe("");
  });
  it("ignores unknown values", () => {
    expect(parseLibraryFilters("?fmt=txt&state=sleeping&sort=colour&asc=yes&collection=%20&tag=")).toEqual(DEFAULT_FILTERS);
  });
});
