// Signing in to a server that requires a credential (`--auth required`).
// Plain TypeScript (no React); every dependency is injectable so it can be
// unit-tested.
//
// The server's `/api/session` says whether it requires a credential and which
// role the presented one has; `POST` checks one and keeps it in an HttpOnly
// session cookie (what `<audio src>` and download links send), `DELETE`
// clears that cookie. The credential itself is kept in sessionStorage, never
// localStorage: it ends with the browser tab, survives a reload, and every RPC
// carries it as `authorization: Bearer …` (authInterceptor).
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

export type Role = "read" | "write" | "admin";
export type AuthMode = "off" | "required";

export interface SessionInfo {
  auth: AuthMode;
  /** What the credential may do; with auth off, everything ("admin"). */
  role: Role | null;
  /** Whom the credential names (e.g. "key 0190…"), for display. */
  principal: string | null;
}

const RANK: Record<Role, number> = { read: 1, write: 2, admin: 3 };

/** True when `role` includes `needed` (admin ⊃ write ⊃ read). */
export function hasRole(role: Role | null | undefined, needed: Role): boolean {
  return !!role && RANK[role] >= RANK[needed];
}

function isRole(v: unknown): v is Role {
  return v === "read" || v === "write" || v === "admin";
}

/** The JSON of `/api/session`; throws on anything else. */
export function parseSession(json: unknown): SessionInfo {
  if (!json || typeof json !== "object") throw new Error("the session answer is no JSON object");
  const o = json as Record<string, unknown>;
  if (o.auth !== "off" && o.auth !== "required") throw new Error(`unknown auth mode ${JSON.stringify(o.auth)}`);
  if (o.role !== null && o.role !== undefined && !isRole(o.role)) throw new Error(`unknown role ${JSON.stringify(o.role)}`);
  const role = isRole(o.role) ? o.role : null;
  return {
    auth: o.auth,
    // With auth off the server grants everything, whatever it says.
    role: o.auth === "off" ? (role ?? "admin") : role,
    principal: typeof o.principal === "string" ? o.principal : null,
  };
}

/** The server refused the credential; `message` is its own text. */
export class SignInRefused extends Error {}

export interface SessionHttp {
  /** `GET /api/session` (no credential: whether one is required). */
  get(): Promise<SessionInfo>;
  /** `POST /api/session`: checks the credential and sets the session cookie; throws SignInRefused when refused. */
  signIn(credential: string): Promise<SessionInfo>;
  /** `DELETE /api/session`: clears the session cookie. */
  signOut(): Promise<void>;
}

type FetchFn = (input: string, init?: RequestInit) => Promise<Response>;

async function errorText(res: Response): Promise<string> {
  const text = (await res.text().catch(() => "")).trim();
  return text || `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ""}`;
}

async function sessionOf(res: Response): Promise<SessionInfo> {
  let json: unknown;
  try {
    json = await res.json();
  } catch {
    throw new Error(`the session answer (HTTP ${res.status}) is no JSON`);
  }
  return parseSession(json);
}

/** `/api/session` of the page's own origin, over fetch. */
export function fetchSessionHttp(fetchFn: FetchFn = (i, init) => fetch(i, init), path = "/api/session"): SessionHttp {
  const opts: RequestInit = { credentials: "same-origin", cache: "no-store" };
  return {
    async get() {
      const res = await fetchFn(path, { ...opts, headers: { accept: "application/json" } });
      if (!res.ok) throw new Error(`the session check failed: ${await errorText(res)}`);
      return sessionOf(res);
    },
    async signIn(credential) {
      const res = await fetchFn(path, {
        ...opts,
        method: "POST",
        headers: { accept: "application/json", authorization: `Bearer ${credential}` },
      });
      // 401 (unknown, revoked, expired), 429 (too many failed attempts), …: the server's words.
      if (res.status >= 400 && res.status < 500) throw new SignInRefused(await errorText(res));
      if (!res.ok) throw new Error(`signing in failed: ${await errorText(res)}`);
      return sessionOf(res);
    },
    async signOut() {
      const res = await fetchFn(path, { ...opts, method: "DELETE" });
      if (!res.ok && res.status !== 404) throw new Error(`signing out failed: ${await errorText(res)}`);
    },
  };
}

/** Where the credential is kept between reloads of one tab. */
export interface CredentialStorage {
  get(): string | null;
  set(credential: string): void;
  clear(): void;
}

export const CREDENTIAL_KEY = "traum.credential";

/** sessionStorage (per tab, gone with it); in memory only where storage is disabled. */
export function sessionCredentialStorage(storage: Pick<Storage, "getItem" | "setItem" | "removeItem"> | null = browserSessionStorage()): CredentialStorage {
  let memory: string | null = null;
  return {
    get() {
      try {
        return storage?.getItem(CREDENTIAL_KEY) ?? memory;
      } catch {
        return memory;
      }
    },
    set(credential) {
      memory = credential;
      try {
        storage?.setItem(CREDENTIAL_KEY, credential);
      } catch {
        // Storage disabled or full: the credential lasts for this page only.
      }
    },
    clear() {
      memory = null;
      try {
        storage?.removeItem(CREDENTIAL_KEY);
      } catch {
        // Nothing kept.
      }
    },
  };
}

function browserSessionStorage(): Storage | null {
  try {
    return typeof sessionStorage === "undefined" ? null : sessionStorage;
  } catch {
    return null;
  }
}

export type SessionState =
  | { status: "loading" }
  /** The session check itself failed (server unreachable): `message` says why. */
  | { status: "failed"; message: string }
  /**
   * A credential is needed. `error`: why the last one was refused (the
   * server's message); `notice`: what happened (signed out, session ended).
   */
  | { status: "signed-out"; error?: string; notice?: string }
  /** `credential` is null with auth off. `generation` changes with every sign-in. */
  | { status: "signed-in"; info: SessionInfo; credential: string | null; generation: number };

export interface SessionStoreOptions {
  http: SessionHttp;
  storage: CredentialStorage;
}

/** The sign-in state of the page; the app renders from `getState`. */
export class SessionStore {
  private state: SessionState = { status: "loading" };
  private readonly listeners = new Set<() => void>();
  private started = false;
  private generation = 0;

  constructor(private readonly opts: SessionStoreOptions) {}

  subscribe = (fn: () => void): (() => void) => {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  };

  getState = (): SessionState => this.state;

  private set(s: SessionState) {
    this.state = s;
    for (const l of [...this.listeners]) l();
  }

  private signedIn(info: SessionInfo, credential: string | null) {
    this.set({ status: "signed-in", info, credential, generation: ++this.generation });
  }

  /** The credential RPCs carry now; null when there is none (or auth is off). */
  getCredential = (): string | null => (this.state.status === "signed-in" ? this.state.credential : null);

  /**
   * Finds out where the page stands: a credential kept from before this
   * reload is checked again (which also renews the session cookie, which
   * another tab's sign-out may have cleared); without one, asks the server
   * whether it needs one at all. Runs once; `retry` after a failure.
   */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const kept = this.opts.storage.get();
    try {
      if (kept) {
        try {
          const info = await this.opts.http.signIn(kept);
          this.accept(info, kept);
        } catch (err) {
          if (!(err instanceof SignInRefused)) throw err;
          this.opts.storage.clear();
          this.set({ status: "signed-out", notice: `Your session ended: ${err.message}` });
        }
        return;
      }
      const info = await this.opts.http.get();
      if (info.auth === "off") this.signedIn(info, null);
      else this.set({ status: "signed-out" });
    } catch (err) {
      this.started = false;
      this.set({ status: "failed", message: err instanceof Error ? err.message : String(err) });
    }
  }

  /** After a failed start. */
  retry(): Promise<void> {
    this.set({ status: "loading" });
    return this.start();
  }

  private accept(info: SessionInfo, credential: string) {
    if (info.auth === "off") {
      // No credential needed after all: keep none.
      this.opts.storage.clear();
      this.signedIn(info, null);
      return;
    }
    if (!info.role) throw new Error("the server accepted the credential but named no role");
    this.opts.storage.set(credential);
    this.signedIn(info, credential);
  }

  /** Signs in with an API key or token; a refusal becomes the state's `error`. */
  async signIn(input: string): Promise<void> {
    const credential = input.trim();
    if (!credential) {
      this.set({ status: "signed-out", error: "Enter an API key or token." });
      return;
    }
    try {
      this.accept(await this.opts.http.signIn(credential), credential);
    } catch (err) {
      const error = err instanceof SignInRefused ? `Sign-in refused: ${err.message}` : `Signing in failed: ${err instanceof Error ? err.message : String(err)}`;
      this.set({ status: "signed-out", error });
    }
  }

  /** Forgets the credential here and in the session cookie. */
  async signOut(): Promise<void> {
    this.opts.storage.clear();
    try {
      await this.opts.http.signOut();
    } catch {
      // The cookie ends with the browser session anyway.
    }
    this.set({ status: "signed-out", notice: "You signed out." });
  }

  /**
   * An RPC sent with `credential` was answered UNAUTHENTICATED (a revoked
   * key, an expired token): back to the sign-in form, unless the page has
   * signed in anew since that call went out.
   */
  expire(credential: string | null, message: string) {
    if (this.state.status !== "signed-in" || this.state.credential !== credential) return;
    this.opts.storage.clear();
    this.set({ status: "signed-out", notice: `Your session ended: ${message || "the server no longer accepts the credential"}` });
    // Clear the cookie holding the refused credential too.
    this.opts.http.signOut().catch(() => {});
  }
}

/** What the interceptor needs of the session. */
export interface CredentialSource {
  getCredential(): string | null;
  expire(credential: string | null, message: string): void;
}

async function* reportingErrors<T>(messages: AsyncIterable<T>, report: (err: unknown) => void): AsyncIterable<T> {
  try {
    yield* messages;
  } catch (err) {
    report(err);
    throw err;
  }
}

/**
 * Adds `authorization: Bearer <credential>` to every call, and reports an
 * UNAUTHENTICATED answer (of a unary call, or of a stream at any point).
 */
export function authInterceptor(session: CredentialSource): Interceptor {
  return (next) => async (req) => {
    const credential = session.getCredential();
    if (credential) req.header.set("authorization", `Bearer ${credential}`);
    const report = (err: unknown) => {
      if (err instanceof ConnectError && err.code === Code.Unauthenticated) session.expire(credential, err.rawMessage);
    };
    try {
      const res = await next(req);
      if (!res.stream) return res;
      return { ...res, message: reportingErrors(res.message, report) };
    } catch (err) {
      report(err);
      throw err;
    }
  };
}
