// Sign-in against a real server started with `--auth required`: the form
// without a credential (axe-clean), the server's own message for a wrong key,
// a read key that sees the library and plays audio (through the session
// cookie, as <audio src> sends no header) but gets no upload, a session that
// survives a reload (sessionStorage) and ends with Sign out, a write key that
// uploads through the browser, and a key revoked mid-session.
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, expect, test } from "vitest";
import {
  PHONE,
  clientsWithKey,
  createKey,
  launchBrowser,
  openPage,
  payload,
  revokeKey,
  saveScreenshot,
  seriousA11yViolations,
  startServer,
  uploadNative,
  waitForReady,
  waitForUploadStatus,
  wav,
  type ApiKey,
  type OpenedPage,
  type TraumServer,
} from "./harness";

let server: TraumServer;
let browser: Browser;
const pages: OpenedPage[] = [];
let readKey: ApiKey;
let writeKey: ApiKey;
let fileId = "";
const FILENAME = "signed in.wav";
const CREDENTIAL_KEY = "traum.credential";

beforeAll(async () => {
  server = await startServer({ model: true, auth: "required" });
  const admin = createKey(server, "admin", "e2e admin");
  readKey = createKey(server, "read", "e2e read");
  writeKey = createKey(server, "write", "e2e write");
  // The file a read key will find and play, uploaded with the admin key.
  const { audio } = clientsWithKey(server, admin.key);
  const res = await uploadNative(audio, FILENAME, wav(6, { rate: 44_100, freq: 330, seed: 11 }));
  fileId = res.fileId;
  await waitForReady(audio, fileId, 90_000);
  browser = await launchBrowser();
});

afterAll(async () => {
  for (const p of pages) {
    if (p.errors.length) console.log(`browser errors:\n  ${p.errors.join("\n  ")}`);
    await p.close();
  }
  await browser?.close();
  await server?.stop();
});

async function newPage(viewport?: { width: number; height: number }): Promise<OpenedPage> {
  const p = await openPage(browser, server.webUrl, viewport);
  pages.push(p);
  return p;
}

function credentialInput(page: Page) {
  return page.getByLabel("API key or token", { exact: true });
}

async function signIn(page: Page, key: string) {
  await credentialInput(page).fill(key);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
}

async function storedCredential(page: Page): Promise<{ session: string | null; local: string[] }> {
  return page.evaluate((k) => ({ session: sessionStorage.getItem(k), local: Object.keys(localStorage).map((x) => `${x}=${localStorage.getItem(x)}`) }), CREDENTIAL_KEY);
}

async function sessionCookie(context: BrowserContext) {
  return (await context.cookies()).find((c) => c.name === "traum_session");
}

/** What the server's /api/session says to a POST with this credential. */
async function serverSays(credential: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`${server.webUrl}/api/session`, { method: "POST", headers: { authorization: `Bearer ${credential}` } });
  return { status: res.status, text: (await res.text()).trim() };
}

test("without a credential: the sign-in form, no RPC sent, no serious axe violation", async () => {
  const { page } = await newPage();
  const rpcs: string[] = [];
  page.on("request", (r) => {
    const path = new URL(r.url()).pathname;
    if (path.startsWith("/traum.v1.") || path.startsWith("/grpc.")) rpcs.push(path);
  });
  await page.goto("/");
  await expect.poll(() => page.getByRole("heading", { level: 1 }).textContent()).toBe("Sign in");
  expect(await credentialInput(page).getAttribute("type")).toBe("password");
  expect(await page.title()).toBe("Sign in · Traum");
  expect(await page.getByRole("grid", { name: "Library" }).count()).toBe(0);
  // The field has the focus: a key can be pasted at once.
  expect(await credentialInput(page).evaluate((el) => el === document.activeElement)).toBe(true);
  expect(await seriousA11yViolations(page)).toEqual([]);
  await saveScreenshot(page, "signin.png");
  expect(rpcs).toEqual([]);

  const phone = await newPage(PHONE);
  await phone.page.goto("/");
  await expect.poll(() => credentialInput(phone.page).count()).toBe(1);
  expect(await seriousA11yViolations(phone.page)).toEqual([]);
});

test("a wrong key: the server's message, announced, nothing kept", async () => {
  const { page, context } = await newPage();
  await page.goto("/");
  const wrong = "traum_0000000000000000000000000000000000000000000000000000000000000000";
  const expected = await serverSays(wrong);
  expect(expected.status).toBe(401);
  await signIn(page, wrong);
  const alert = page.getByTestId("signin-error");
  await expect.poll(() => alert.textContent()).toBe(`Sign-in refused: ${expected.text}`);
  expect(await alert.getAttribute("role")).toBe("alert");
  expect(await credentialInput(page).getAttribute("aria-invalid")).toBe("true");
  await saveScreenshot(page, "signin-error.png");
  expect(await storedCredential(page)).toEqual({ session: null, local: [] });
  expect(await sessionCookie(context)).toBeUndefined();
  // The form stays usable with the keyboard: Enter submits the corrected key.
  await credentialInput(page).fill("not a key at all");
  await credentialInput(page).press("Enter");
  const other = await serverSays("not a key at all");
  await expect.poll(() => alert.textContent()).toBe(`Sign-in refused: ${other.text}`);
  expect(await seriousA11yViolations(page)).toEqual([]);
});

test("a read key: the library without upload, audio plays through the cookie, a reload keeps the session, sign-out forgets it", async () => {
  const { page, context } = await newPage();
  const authorizations = new Set<string>();
  page.on("request", (r) => {
    if (new URL(r.url()).pathname.startsWith("/traum.v1.")) authorizations.add(r.headers()["authorization"] ?? "(none)");
  });
  await page.goto("/");
  await signIn(page, readKey.key);
  const grid = page.getByRole("grid", { name: "Library" });
  await expect.poll(() => grid.getByText(FILENAME, { exact: true }).count()).toBe(1);
  expect(await page.getByTestId("session-role").textContent()).toBe("Signed in · read");
  // No upload, no edits.
  expect(await page.getByRole("heading", { name: "Upload files" }).count()).toBe(0);
  expect(await page.getByLabel("Upload", { exact: true }).count()).toBe(0);
  expect(await page.getByTestId("dropzone").count()).toBe(0);
  await page.getByRole("checkbox", { name: `Select ${FILENAME}`, exact: true }).check();
  const toolbar = page.getByRole("toolbar", { name: "File actions" });
  expect(await toolbar.getByRole("button").count()).toBe(0);
  expect(await toolbar.getByRole("link", { name: "Download" }).count()).toBe(1);
  expect(await seriousA11yViolations(page)).toEqual([]);
  await saveScreenshot(page, "library-read.png");

  // Kept for the tab only, and the HttpOnly cookie for <audio src>.
  expect(await storedCredential(page)).toEqual({ session: readKey.key, local: [] });
  const cookie = await sessionCookie(context);
  expect(cookie?.httpOnly).toBe(true);
  expect(cookie?.sameSite).toBe("Strict");
  expect(cookie?.expires).toBe(-1); // a session cookie

  // The audio plays: the element sends the cookie, not the header.
  await page.goto(`/files/${fileId}`);
  await expect.poll(() => page.getByRole("heading", { level: 1 }).textContent()).toBe(FILENAME);
  expect(await page.getByRole("button", { name: "Edit tags" }).count()).toBe(0);
  expect(await page.getByRole("button", { name: "Reprocess" }).count()).toBe(0);
  const audio = page.locator("audio");
  expect(await audio.getAttribute("src")).toBe(`/api/files/${fileId}/audio`);
  await page.getByRole("button", { name: "Play", exact: true }).click();
  await expect
    .poll(() => audio.evaluate((a: HTMLAudioElement) => a.currentTime), { timeout: 20_000, interval: 100 })
    .toBeGreaterThan(0.2);
  await page.getByRole("button", { name: "Pause", exact: true }).click();
  expect((await page.request.get(`/api/files/${fileId}/audio`)).status()).toBe(200);

  // A reload keeps the session: no form, the same role.
  await page.reload();
  await expect.poll(() => page.getByRole("heading", { level: 1 }).textContent()).toBe(FILENAME);
  expect(await credentialInput(page).count()).toBe(0);
  expect(await page.getByTestId("session-role").textContent()).toBe("Signed in · read");

  // The System view: figures, and a note instead of the admin-only usage.
  await page.getByRole("link", { name: "System", exact: true }).click();
  await expect.poll(() => page.getByTestId("usage-note").count()).toBe(1);
  await expect.poll(() => page.getByRole("heading", { name: "Library", level: 2 }).count()).toBe(1);
  expect(authorizations).toEqual(new Set([`Bearer ${readKey.key}`]));

  // Sign out: the form again, the key gone from the tab and the cookie.
  await page.getByRole("button", { name: "Sign out", exact: true }).click();
  await expect.poll(() => page.getByRole("heading", { level: 1 }).textContent()).toBe("Sign in");
  expect(await page.getByTestId("signin-notice").textContent()).toBe("You signed out.");
  expect(await storedCredential(page)).toEqual({ session: null, local: [] });
  expect(await sessionCookie(context)).toBeUndefined();
  expect((await page.request.get(`/api/files/${fileId}/audio`)).status()).toBe(401);
  await page.reload();
  await expect.poll(() => credentialInput(page).count()).toBe(1);
});

test("a write key sees Upload and uploads through the browser with its key", async () => {
  const { page } = await newPage();
  await page.goto("/");
  await signIn(page, writeKey.key);
  await expect.poll(() => page.getByTestId("session-role").textContent()).toBe("Signed in · write");
  const input = page.getByLabel("Upload", { exact: true }).and(page.locator('input[type="file"]'));
  expect(await input.count()).toBe(1);
  const name = "uploaded with write.wav";
  await input.setInputFiles(payload(name, wav(2, { freq: 550, seed: 21 })));
  await waitForUploadStatus(page, name, /^Ready$/);
  await page.getByRole("checkbox", { name: `Select ${FILENAME}`, exact: true }).check();
  const toolbar = page.getByRole("toolbar", { name: "File actions" });
  expect(await toolbar.getByRole("button", { name: "Edit tags" }).count()).toBe(1);
  expect(await toolbar.getByRole("button", { name: "Delete" }).count()).toBe(1);
});

test("a key revoked while signed in brings back the form with the server's message", async () => {
  const doomed = createKey(server, "read", "e2e doomed");
  const { page } = await newPage();
  await page.goto("/");
  await signIn(page, doomed.key);
  const grid = page.getByRole("grid", { name: "Library" });
  await expect.poll(() => grid.getByText(FILENAME, { exact: true }).count()).toBe(1);
  revokeKey(server, doomed.id);
  const expected = await serverSays(doomed.key);
  expect(expected.status).toBe(401);
  // The next call (the list, refiltered) is refused.
  await page.getByLabel("State", { exact: true }).selectOption({ label: "Ready" });
  await expect.poll(() => page.getByTestId("signin-notice").textContent()).toBe(`Your session ended: ${expected.text}`);
  expect(await storedCredential(page)).toEqual({ session: null, local: [] });
});
