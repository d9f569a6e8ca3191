import { describe, expect, it } from "vitest";
import { canMove, collectionExportUrl, moveId } from "./reorder";

describe("moveId", () => {
  const ids = ["a", "b", "c"];
  it("moves up and down by one place", () => {
    expect(moveId(ids, "b", -1)).toEqual(["b", "a", "c"]);
    expect(moveId(ids, "b", 1)).toEqual(["a", "c", "b"]);
    expect(moveId(ids, "c", -1)).toEqual(["a", "c", "b"]);
    expect(moveId(ids, "a", 1)).toEqual(["b", "a", "c"]);
  });
  it("leaves the ends and unknown ids alone, never mutating the input", () => {
    expect(moveId(ids, "a", -1)).toEqual(ids);
    expect(moveId(ids, "c", 1)).toEqual(ids);
    expect(moveId(ids, "x", 1)).toEqual(ids);
    expect(moveId([], "x", -1)).toEqual([]);
    expect(ids).toEqual(["a", "b", "c"]);
  });
  it("canMove says whether anything would change", () => {
    expect(canMove(ids, "a", -1)).toBe(false);
    expect(canMove(ids, "a", 1)).toBe(true);
    expect(canMove(ids, "c", 1)).toBe(false);
    expect(canMove(ids, "c", -1)).toBe(true);
    expect(canMove(ids, "x", 1)).toBe(false);
  });
  it("builds export URLs", () => {
    expect(collectionExportUrl("ab/c", "m3u8")).toBe("/api/collections/ab%2Fc/export?format=m3u8");
  });
});
