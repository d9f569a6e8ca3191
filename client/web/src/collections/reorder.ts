// Pure helpers for a collection's order (no React, no RPCs).

/**
 * The ids with `id` moved one place up (`delta` -1) or down (+1). Returns the
 * same array when the id is absent or already at that end.
 */
export function moveId(ids: readonly string[], id: string, delta: -1 | 1): string[] {
  const i = ids.indexOf(id);
  const j = i + delta;
  if (i < 0 || j < 0 || j >= ids.length) return ids.slice();
  const out = ids.slice();
  out[i] = ids[j];
  out[j] = id;
  return out;
}

/** Whether moving `id` by `delta` changes anything. */
export function canMove(ids: readonly string[], id: string, delta: -1 | 1): boolean {
  const i = ids.indexOf(id);
  return i >= 0 && i + delta >= 0 && i + delta < ids.length;
}

/** `GET /api/collections/{id}/export?format=…` */
export function collectionExportUrl(collectionId: string, format: "csv" | "json" | "m3u8" | "zip"): string {
  return `/api/collections/${encodeURIComponent(collectionId)}/export?format=${format}`;
}
