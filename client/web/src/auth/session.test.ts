import { describe, expect, it } from "vitest";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { AudioService, FileSchema, LibraryEventSchema } from "../gen/traum/v1/audio_pb";
import {
  authInterceptor,
  CREDENTIAL_KEY,
  fetchSessionHttp,
  hasRole,
  parseSession,
  sessionCredentialStorage,
  SessionStore,
  SignInRefused,
  type SessionHttp,
  type SessionInfo,
  type SessionState,
} from "./session";

/** A sessionStorage stand-in that records what is kept. */
function memoryStorage() {
  const map = new Map<string, string>();
  return {
    map,
    getItem: (k: string) => map.get(k) ?? null,
    setItem: (k: string, v: string) => void map.set(k, v),
    removeItem: (k: string) => void map.delete(k),
  };
}

/** The server's /api/session, with keys and their roles. */
function fakeServer(auth: "off" | "required", keys: Record<string, "read" | "write" | "admin"> = {}) {
  const calls: string[] = [];
  let down = false;
  const http: SessionHttp = {
    async get() {
      calls.push("GET");
      if (down) throw new TypeError("Failed to fetch");
      return auth === "off" ? { auth, role: "admin", principal: null } : { auth, role: null, principal: null };
    },
    async signIn(credential) {
      calls.push(`POST ${credential}`);
      if (down) throw new TypeError("Failed to fetch");
      if (auth === "off") return { auth, role: "admin", principal: null };
      const role = keys[credential];
      if (!role) throw new SignInRefused(credential.startsWith("traum_") ? "the API key is unknown or revoked" : "the credential is neither a Traum API key (`traum_…`) nor a JWT");
      return { auth, role, principal: `key ${credential.slice(-4)}` };
    },
    async signOut() {
      calls.push("DELETE");
    },
  };
  return {
    http,
    calls,
    setDown(d: boolean) {
      down = d;
    },
    revoke(k: string) {
      delete keys[k];
    },
  };
}

function signedIn(s: SessionState): Extract<SessionState, { status: "signed-in" }> {
  if (s.status !== "signed-in") throw new Error(`not signed in: ${JSON.stringify(s)}`);
  return s;
}

function setup(auth: "off" | "required", keys: Record<string, "read" | "write" | "admin"> = {}, kept?: string) {
  const server = fakeServer(auth, keys);
  const storage = memoryStorage();
  if (kept) storage.setItem(CREDENTIAL_KEY, kept);
  const store = new SessionStore({ http: server.http, storage: sessionCredentialStorage(storage) });
  return { server, storage, store };
}

describe("roles", () => {
  it("admin includes write includes read; no role includes nothing", () => {
    expect(hasRole("read", "read")).toBe(true);
    expect(hasRole("read", "write")).toBe(false);
    expect(hasRole("read", "admin")).toBe(false);
    expect(hasRole("write", "read")).toBe(true);
    expect(hasRole("write", "write")).toBe(true);
    expect(hasRole("write", "admin")).toBe(false);
    expect(hasRole("admin", "read")).toBe(true);
    expect(hasRole("admin", "admin")).toBe(true);
    expect(hasRole(null, "read")).toBe(false);
  });

  it("parses the server's session JSON; auth off grants everything", () => {
    expect(parseSession({ auth: "off", role: "admin", principal: null })).toEqual({ auth: "off", role: "admin", principal: null });
    expect(parseSession({ auth: "off" })).toEqual({ auth: "off", role: "admin", principal: null });
    expect(parseSession({ auth: "required", role: null, principal: null })).toEqual({ auth: "required", role: null, principal: null });
    expect(parseSession({ auth: "required", role: "read", principal: "key 1" })).toEqual({ auth: "required", role: "read", principal: "key 1" });
    expect(() => parseSession({ auth: "maybe", role: null })).toThrow(/auth mode/);
    expect(() => parseSession({ auth: "required", role: "owner" })).toThrow(/role/);
    expect(() => parseSession("<!doctype html>")).toThrow();
  });
});

describe("SessionStore", () => {
  it("with auth off needs no sign-in and keeps no credential", async () => {
    const { store, server, storage } = setup("off");
    await store.start();
    const s = store.getState();
    expect(s.status).toBe("signed-in");
    if (s.status !== "signed-in") return;
    expect(s.info.role).toBe("admin");
    expect(s.credential).toBeNull();
    expect(store.getCredential()).toBeNull();
    expect(server.calls).toEqual(["GET"]);
    expect(storage.map.size).toBe(0);
  });

  it("with auth required and nothing kept asks for a credential", async () => {
    const { store } = setup("required");
    await store.start();
    expect(store.getState()).toEqual({ status: "signed-out" });
    // StrictMode runs effects twice: one start only.
    await store.start();
  });

  it("a refused credential shows the server's message and is not kept", async () => {
    const { store, storage } = setup("required", { traum_good: "read" });
    await store.start();
    await store.signIn("traum_bad");
    expect(store.getState()).toEqual({ status: "signed-out", error: "Sign-in refused: the API key is unknown or revoked" });
    await store.signIn("not a key");
    expect(store.getState()).toEqual({ status: "signed-out", error: "Sign-in refused: the credential is neither a Traum API key (`traum_…`) nor a JWT" });
    await store.signIn("   ");
    expect(store.getState()).toEqual({ status: "signed-out", error: "Enter an API key or token." });
    expect(storage.map.size).toBe(0);
    expect(store.getCredential()).toBeNull();
  });

  it("a good credential is kept in session storage (trimmed) and names the role", async () => {
    const { store, storage, server } = setup("required", { traum_good: "read" });
    await store.start();
    await store.signIn("  traum_good\n");
    const s = store.getState();
    expect(s.status).toBe("signed-in");
    if (s.status !== "signed-in") return;
    expect(s.info).toEqual({ auth: "required", role: "read", principal: "key good" });
    expect(s.credential).toBe("traum_good");
    expect(storage.map.get("traum.credential")).toBe("traum_good");
    expect(store.getCredential()).toBe("traum_good");
    expect(server.calls).toEqual(["GET", "POST traum_good"]);
  });

  it("after a reload signs in again with the kept credential (renewing the cookie), without the form", async () => {
    const { store, server } = setup("required", { traum_w: "write" }, "traum_w");
    await store.start();
    const s = store.getState();
    expect(s.status === "signed-in" && s.info.role).toBe("write");
    expect(server.calls).toEqual(["POST traum_w"]);
  });

  it("a kept credential the server no longer accepts is dropped, with a notice", async () => {
    const { store, storage } = setup("required", {}, "traum_revoked");
    await store.start();
    expect(store.getState()).toEqual({ status: "signed-out", notice: "Your session ended: the API key is unknown or revoked" });
    expect(storage.map.size).toBe(0);
  });

  it("a kept credential on a server with auth off is dropped", async () => {
    const { store, storage } = setup("off", {}, "traum_old");
    await store.start();
    const s = store.getState();
    expect(s.status === "signed-in" && s.credential).toBeNull();
    expect(storage.map.size).toBe(0);
  });

  it("sign-out forgets the credential here and clears the cookie", async () => {
    const { store, storage, server } = setup("required", { traum_a: "admin" }, "traum_a");
    await store.start();
    await store.signOut();
    expect(store.getState()).toEqual({ status: "signed-out", notice: "You signed out." });
    expect(storage.map.size).toBe(0);
    expect(store.getCredential()).toBeNull();
    expect(server.calls).toEqual(["POST traum_a", "DELETE"]);
  });

  it("UNAUTHENTICATED for the current credential ends the session; a stale call's does not", async () => {
    const { store, storage, server } = setup("required", { traum_1: "read", traum_2: "write" });
    await store.start();
    await store.signIn("traum_1");
    const first = signedIn(store.getState());
    await store.signOut();
    await store.signIn("traum_2");
    const second = signedIn(store.getState());
    // A new sign-in is a new generation (the app is mounted afresh).
    expect(second.generation).toBeGreaterThan(first.generation);
    // A call sent with the old credential comes back refused: nothing changes.
    store.expire("traum_1", "the API key is unknown or revoked");
    expect(store.getState()).toBe(second);
    server.revoke("traum_2");
    store.expire("traum_2", "the API key is unknown or revoked");
    expect(store.getState()).toEqual({ status: "signed-out", notice: "Your session ended: the API key is unknown or revoked" });
    expect(storage.map.size).toBe(0);
    expect(server.calls[server.calls.length - 1]).toBe("DELETE");
  });

  it("an unreachable server is a failure to retry, not a sign-in form", async () => {
    const { store, server } = setup("required");
    server.setDown(true);
    await store.start();
    expect(store.getState()).toEqual({ status: "failed", message: "Failed to fetch" });
    server.setDown(false);
    await store.retry();
    expect(store.getState()).toEqual({ status: "signed-out" });
  });
});

describe("fetchSessionHttp", () => {
  function fakeFetch(answer: (url: string, init: RequestInit) => Response) {
    const seen: { url: string; init: RequestInit }[] = [];
    const fn = async (url: string, init?: RequestInit) => {
      seen.push({ url, init: init ?? {} });
      return answer(url, init ?? {});
    };
    return { fn, seen };
  }
  const json = (body: SessionInfo) => new Response(JSON.stringify(body), { status: 200, headers: { "content-type": "application/json" } });

  it("GETs without a credential, POSTs it as a bearer token, DELETEs to sign out", async () => {
    const f = fakeFetch((_url, init) =>
      init.method === "DELETE" ? new Response(null, { status: 204 }) : json({ auth: "required", role: init.method === "POST" ? "write" : null, principal: null }),
    );
    const http = fetchSessionHttp(f.fn);
    expect((await http.get()).role).toBeNull();
    expect(new Headers(f.seen[0].init.headers).get("authorization")).toBeNull();
    expect((await http.signIn("traum_k")).role).toBe("write");
    expect(f.seen[1].url).toBe("/api/session");
    expect(f.seen[1].init.method).toBe("POST");
    expect(new Headers(f.seen[1].init.headers).get("authorization")).toBe("Bearer traum_k");
    expect(f.seen[1].init.credentials).toBe("same-origin");
    await http.signOut();
    expect(f.seen[2].init.method).toBe("DELETE");
  });

  it("a 401 is a refusal in the server's words; a 5xx is a failure", async () => {
    let status = 401;
    const http = fetchSessionHttp(fakeFetch(() => new Response(status === 401 ? "the API key is unknown or revoked\n" : "", { status })).fn);
    const refused = await http.signIn("traum_x").catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(SignInRefused);
    expect((refused as Error).message).toBe("the API key is unknown or revoked");
    status = 502;
    const failed = await http.signIn("traum_x").catch((e: unknown) => e);
    expect(failed).not.toBeInstanceOf(SignInRefused);
    expect((failed as Error).message).toBe("signing in failed: HTTP 502");
    await expect(http.get()).rejects.toThrow("the session check failed: HTTP 502");
  });
});

describe("authInterceptor", () => {
  function setupRpc(credential: string | null) {
    const expired: [string | null, string][] = [];
    const seen: (string | null)[] = [];
    let current = credential;
    let refuse: Code | null = null;
    const transport = createRouterTransport(
      ({ service }) => {
        service(AudioService, {
          getFile(_req, ctx) {
            seen.push(ctx.requestHeader.get("authorization"));
            if (refuse !== null) throw new ConnectError("this call needs the `write` role", refuse);
            return create(FileSchema, { fileId: "f" });
          },
          async *watchLibrary(_req, ctx) {
            seen.push(ctx.requestHeader.get("authorization"));
            yield create(LibraryEventSchema, { change: { case: "resync", value: true } });
            throw new ConnectError("the API key is unknown or revoked", Code.Unauthenticated);
          },
        });
      },
      {
        transport: {
          interceptors: [authInterceptor({ getCredential: () => current, expire: (c, m) => void expired.push([c, m]) })],
        },
      },
    );
    return {
      client: createClient(AudioService, transport),
      expired,
      seen,
      refuseWith(c: Code | null) {
        refuse = c;
      },
      setCredential(c: string | null) {
        current = c;
      },
    };
  }

  it("sends the credential as a bearer token, and none when there is none", async () => {
    const t = setupRpc("traum_k");
    await t.client.getFile({ fileId: "f" });
    t.setCredential(null);
    await t.client.getFile({ fileId: "f" });
    expect(t.seen).toEqual(["Bearer traum_k", null]);
    expect(t.expired).toEqual([]);
  });

  it("reports UNAUTHENTICATED with the credential the call carried; PERMISSION_DENIED is no sign-out", async () => {
    const t = setupRpc("traum_k");
    t.refuseWith(Code.PermissionDenied);
    await expect(t.client.getFile({ fileId: "f" })).rejects.toThrow(/write/);
    expect(t.expired).toEqual([]);
    t.refuseWith(Code.Unauthenticated);
    await expect(t.client.getFile({ fileId: "f" })).rejects.toThrow();
    expect(t.expired).toEqual([["traum_k", "this call needs the `write` role"]]);
  });

  it("reports UNAUTHENTICATED that ends a stream midway", async () => {
    const t = setupRpc("traum_s");
    const got: string[] = [];
    await expect(
      (async () => {
        for await (const ev of t.client.watchLibrary({})) got.push(ev.change.case ?? "");
      })(),
    ).rejects.toThrow(/revoked/);
    expect(got).toEqual(["resync"]);
    expect(t.seen).toEqual(["Bearer traum_s"]);
    expect(t.expired).toEqual([["traum_s", "the API key is unknown or revoked"]]);
  });
});
