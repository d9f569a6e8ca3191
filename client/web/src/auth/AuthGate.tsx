// Shows the app once the session allows it: at once with auth off, after
// signing in with an API key or token when the server requires one. The app
// is mounted anew for every sign-in, so nothing of a previous session (its
// live stream, uploads, views) outlives a sign-out.
import { useEffect, useId, useMemo, useRef, useState, useSyncExternalStore, type FormEvent, type ReactNode } from "react";
import { ThemeToggle } from "../lib/theme";
import { SessionContext, type SessionView } from "./context";
import type { SessionStore } from "./session";

function Shell({ children }: { children: ReactNode }) {
  return (
    <>
      <header className="app-header">
        <span className="brand">Traum</span>
        <div className="header-end">
          <ThemeToggle />
        </div>
      </header>
      <main id="main" tabIndex={-1} className="signin-main">
        {children}
      </main>
    </>
  );
}

export function SignIn({ store, error, notice }: { store: SessionStore; error?: string; notice?: string }) {
  const [value, setValue] = useState("");
  const [busy, setBusy] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  const ids = useId();
  useEffect(() => {
    document.title = "Sign in · Traum";
  }, []);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (busy) return;
    setBusy(true);
    try {
      await store.signIn(value);
    } finally {
      setBusy(false);
      // Still here, so refused: the field gets the focus back, to correct or paste again.
      input.current?.focus();
    }
  };

  return (
    <section className="panel signin" aria-labelledby={`${ids}-heading`}>
      <h1 id={`${ids}-heading`}>Sign in</h1>
      <p className="muted">
        This Traum server needs an API key or token; its administrator creates keys with <code>traum-server keys create</code>. It is kept
        for this browser tab only and forgotten when you sign out or close the tab.
      </p>
      {notice && (
        <p role="status" className="signin-notice" data-testid="signin-notice">
          {notice}
        </p>
      )}
      <form className="stack" onSubmit={(e) => void submit(e)} noValidate>
        <label htmlFor={`${ids}-credential`}>API key or token</label>
        <input
          ref={input}
          id={`${ids}-credential`}
          name="credential"
          type="password"
          value={value}
          onChange={(e) => setValue(e.target.value)}
          autoComplete="off"
          autoCapitalize="off"
          spellCheck={false}
          autoFocus
          required
          aria-invalid={error ? true : undefined}
          aria-describedby={error ? `${ids}-error` : undefined}
        />
        {error && (
          <p role="alert" className="error-text" id={`${ids}-error`} data-testid="signin-error">
            {error}
          </p>
        )}
        <div>
          <button type="submit" className="primary" disabled={busy}>
            {busy ? "Signing in…" : "Sign in"}
          </button>
        </div>
      </form>
    </section>
  );
}

/** `children` gets the sign-in's generation, to key the app with. */
export function AuthGate({ store, children }: { store: SessionStore; children: (generation: number) => ReactNode }) {
  const state = useSyncExternalStore(store.subscribe, store.getState);
  useEffect(() => {
    void store.start();
  }, [store]);
  const info = state.status === "signed-in" ? state.info : null;
  const view = useMemo<SessionView | null>(
    () =>
      info && {
        auth: info.auth,
        role: info.role,
        principal: info.principal,
        signOut: info.auth === "required" ? () => store.signOut() : undefined,
      },
    [info, store],
  );

  if (state.status === "signed-in" && view)
    return <SessionContext.Provider value={view}>{children(state.generation)}</SessionContext.Provider>;
  if (state.status === "loading")
    return (
      <Shell>
        <p role="status">Loading…</p>
      </Shell>
    );
  if (state.status === "failed")
    return (
      <Shell>
        <h1>The server could not be reached</h1>
        <p className="error-text" role="alert">
          {state.message}
        </p>
        <button type="button" onClick={() => void store.retry()}>
          Try again
        </button>
      </Shell>
    );
  return (
    <Shell>
      <SignIn store={store} error={state.status === "signed-out" ? state.error : undefined} notice={state.status === "signed-out" ? state.notice : undefined} />
    </Shell>
  );
}
