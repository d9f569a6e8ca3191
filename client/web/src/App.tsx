import { lazy, Suspense, useEffect, useState, type ReactNode } from "react";
import { ApiProvider, type Api } from "./api/client";
import { AuthGate } from "./auth/AuthGate";
import { useSession } from "./auth/context";
import type { SessionStore } from "./auth/session";
import { LiveProvider, useLiveStatus } from "./live/context";
import { LibraryStream } from "./live/library-stream";
import { ToastProvider } from "./lib/toasts";
import { Link, matchRoute, navigate, usePath } from "./lib/router";
import { ThemeToggle } from "./lib/theme";
import { UploadProvider } from "./upload/context";
import { UploadQueue } from "./upload/queue";
import Library from "./views/Library";

const FileDetail = lazy(() => import("./views/FileDetail"));
const System = lazy(() => import("./views/System"));
const Search = lazy(() => import("./views/Search"));
const Collections = lazy(() => import("./views/Collections"));

/**
 * `/` focuses the search box from anywhere (opening the search view first),
 * except while typing, and not on the sign-in form. Listens while the session
 * is still being checked, too, so that a `/` pressed right after the page
 * loaded is not lost.
 */
function useSlashToSearch(session?: SessionStore) {
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key !== "/" || e.ctrlKey || e.metaKey || e.altKey || e.defaultPrevented) return;
      const status = session?.getState().status;
      if (status === "signed-out" || status === "failed") return;
      const t = e.target as HTMLElement | null;
      const tag = t?.tagName?.toLowerCase();
      if (tag === "input" || tag === "textarea" || tag === "select" || t?.isContentEditable) return;
      if (document.querySelector("dialog[open]")) return;
      e.preventDefault();
      const focus = (tries: number) => {
        const box = document.getElementById("search-box");
        if (box) box.focus();
        else if (tries > 0) setTimeout(() => focus(tries - 1), 50);
      };
      if (window.location.pathname !== "/search") navigate("/search");
      focus(40);
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [session]);
}

function ConnectionIndicator() {
  const s = useLiveStatus();
  const text =
    s.state === "live" ? "Live" : s.state === "reconnecting" ? "Reconnecting…" : s.state === "connecting" ? "Connecting…" : "Offline";
  return (
    <p className={`connection connection-${s.state}`} role="status" data-testid="connection-status" data-state={s.state} title={s.error}>
      <span className="dot" aria-hidden="true" />
      <span>{text}</span>
      {s.state === "reconnecting" && s.error && <span className="visually-hidden"> ({s.error})</span>}
    </p>
  );
}

/** With auth required: the session's role, and sign-out. */
function SessionControls() {
  const session = useSession();
  const [busy, setBusy] = useState(false);
  if (session.auth !== "required" || !session.signOut) return null;
  const signOut = session.signOut;
  return (
    <div className="session-controls">
      <p className="session-role" data-testid="session-role" title={session.principal ?? undefined}>
        Signed in · <span className="role-name">{session.role}</span>
      </p>
      <button
        type="button"
        disabled={busy}
        onClick={() => {
          setBusy(true);
          void signOut().finally(() => setBusy(false));
        }}
      >
        Sign out
      </button>
    </div>
  );
}

function NavLink({ to, current, children }: { to: string; current: boolean; children: ReactNode }) {
  return (
    <Link to={to} aria-current={current ? "page" : undefined} className="nav-link">
      {children}
    </Link>
  );
}

function Routes() {
  const path = usePath();
  const route = matchRoute(path);
  useEffect(() => {
    const titles: Record<string, string> = { library: "Library", search: "Search", file: "File", collections: "Collections", collection: "Collection", system: "System", notFound: "Not found" };
    document.title = `${titles[route.name]} · Traum`;
  }, [route.name]);
  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="app-header">
        <Link to="/" className="brand">
          Traum
        </Link>
        <nav aria-label="Main">
          <NavLink to="/" current={route.name === "library"}>
            Library
          </NavLink>
          <NavLink to="/search" current={route.name === "search"}>
            Search
          </NavLink>
          <NavLink to="/collections" current={route.name === "collections" || route.name === "collection"}>
            Collections
          </NavLink>
          <NavLink to="/system" current={route.name === "system"}>
            System
          </NavLink>
        </nav>
        <div className="header-end">
          <ConnectionIndicator />
          <SessionControls />
          <ThemeToggle />
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <Suspense fallback={<p role="status">Loading…</p>}>
          {route.name === "library" && <Library />}
          {route.name === "file" && <FileDetail key={route.id} id={route.id} />}
          {route.name === "search" && <Search />}
          {route.name === "collections" && <Collections />}
          {route.name === "collection" && <Collections key={route.id} id={route.id} />}
          {route.name === "system" && <System />}
          {route.name === "notFound" && (
            <>
              <h1>Page not found</h1>
              <p>
                <Link to="/">Go to the library</Link>
              </p>
            </>
          )}
        </Suspense>
      </main>
    </>
  );
}

/**
 * The app; with `session`, behind its sign-in (main.tsx), without it as if
 * auth were off (the unit tests).
 */
export function App({ api, session }: { api: Api; session?: SessionStore }) {
  useSlashToSearch(session);
  if (!session) return <SignedIn api={api} />;
  return <AuthGate store={session}>{(generation) => <SignedIn key={generation} api={api} />}</AuthGate>;
}

function SignedIn({ api }: { api: Api }) {
  const [stream] = useState(() => new LibraryStream({ client: api.audio }));
  const [queue] = useState(
    () => new UploadQueue({ client: api.audio, storage: typeof localStorage === "undefined" ? null : localStorage }),
  );
  return (
    <ApiProvider api={api}>
      <ToastProvider>
        <LiveProvider stream={stream}>
          <UploadProvider queue={queue}>
            <Routes />
          </UploadProvider>
        </LiveProvider>
      </ToastProvider>
    </ApiProvider>
  );
}
