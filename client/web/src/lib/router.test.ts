import { describe, expect, it } from "vitest";
import { matchRoute } from "./router";

describe("matchRoute", () => {
  it("knows every view", () => {
    expect(matchRoute("/")).toEqual({ name: "library" });
    expect(matchRoute("/search")).toEqual({ name: "search" });
    expect(matchRoute("/system/")).toEqual({ name: "system" });
    expect(matchRoute("/files/a%2Fb")).toEqual({ name: "file", id: "a/b" });
    expect(matchRoute("/collections")).toEqual({ name: "collections" });
    expect(matchRoute("/collections/")).toEqual({ name: "collections" });
    expect(matchRoute("/collections/c-1")).toEqual({ name: "collection", id: "c-1" });
    expect(matchRoute("/collections/c-1/x")).toEqual({ name: "notFound" });
  });
});
