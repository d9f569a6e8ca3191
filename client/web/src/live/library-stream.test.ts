// @vitest-environment node
import { describe, expect, it } from "vitest";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { AudioService, LibraryEventSchema, type LibraryEvent } from "../gen/traum/v1/audio_pb";
import { LibraryStream } from "./library-stream";

describe("LibraryStream", () => {
  it("delivers events, reconnects with backoff and asks for a resync", async () => {
    let attempt = 0;
    const transport = createRouterTransport(({ service }) => {
      service(AudioService, {
        async *watchLibrary() {
          attempt++;
          if (attempt === 1) {
            yield create(LibraryEventSchema, { change: { case: "deletedFileId", value: "x" } });
            throw new ConnectError("restarting", Code.Unavailable);
          }
          if (attempt === 2) throw new ConnectError("still down", Code.Unavailable);
          yield create(LibraryEventSchema, { change: { case: "deletedFileId", value: "y" } });
          await new Promise(() => {});
        },
      });
    });
    const delays: number[] = [];
    const states: string[] = [];
    const stream = new LibraryStream({
      client: createClient(AudioService, transport),
      sleep: async (ms) => void delays.push(ms),
    });
    const events: LibraryEvent[] = [];
    stream.subscribe((e) => events.push(e));
    stream.subscribeStatus(() => states.push(stream.getStatus().state));
    stream.start();
    await new Promise((r) => setTimeout(r, 30));
    expect(events.map((e) => e.change.case)).toEqual(["deletedFileId", "resync", "deletedFileId"]);
    expect(delays).toEqual([500, 1000]);
    expect(states).toContain("reconnecting");
    expect(stream.getStatus().state).toBe("live");
    stream.stop();
    expect(stream.getStatus().state).toBe("stopped");
  });
});
