// Collects files from a drop: plain files and whole folders (recursively,
// through the File and Directory Entries API). Entries that are neither
// files nor folders, and hidden files such as .DS_Store, are skipped.

interface FsEntry {
  isFile: boolean;
  isDirectory: boolean;
  name: string;
}
interface FsFileEntry extends FsEntry {
  file(ok: (f: File) => void, err: (e: unknown) => void): void;
}
interface FsDirEntry extends FsEntry {
  createReader(): { readEntries(ok: (entries: FsEntry[]) => void, err: (e: unknown) => void): void };
}

function readFile(entry: FsFileEntry): Promise<File> {
  return new Promise((resolve, reject) => entry.file(resolve, reject));
}

async function readDir(entry: FsDirEntry): Promise<FsEntry[]> {
  const reader = entry.createReader();
  const all: FsEntry[] = [];
  // readEntries returns results in batches until an empty one.
  for (;;) {
    const batch = await new Promise<FsEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) return all;
    all.push(...batch);
  }
}

async function walk(entry: FsEntry, out: File[]): Promise<void> {
  if (entry.name.startsWith(".")) return;
  if (entry.isFile) out.push(await readFile(entry as FsFileEntry));
  else if (entry.isDirectory) for (const child of await readDir(entry as FsDirEntry)) await walk(child, out);
}

/** Must be called synchronously from the drop handler (entries expire after it). */
export function filesFromDataTransfer(dt: DataTransfer): Promise<File[]> {
  const items = Array.from(dt.items ?? []);
  const entries = items
    .filter((i) => i.kind === "file")
    .map((i) => (typeof i.webkitGetAsEntry === "function" ? (i.webkitGetAsEntry() as FsEntry | null) : null));
  if (!entries.length || entries.some((e) => !e)) return Promise.resolve(Array.from(dt.files));
  return (async () => {
    const out: File[] = [];
    for (const e of entries) await walk(e!, out);
    return out;
  })();
}
