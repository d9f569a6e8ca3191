// Minimal History API router: `/`, `/search`, `/files/:id`, `/collections`, `/collections/:id`, `/system`.
import { useSyncExternalStore, type AnchorHTMLAttributes, type MouseEvent } from "react";

const NAV_EVENT = "traum:navigate";

function subscribe(fn: () => void) {
  window.addEventListener("popstate", fn);
  window.addEventListener(NAV_EVENT, fn);
  return () => {
    window.removeEventListener("popstate", fn);
    window.removeEventListener(NAV_EVENT, fn);
  };
}

export function navigate(to: string, replace = false, scroll = true) {
  if (to === window.location.pathname + window.location.search) return;
  if (replace) window.history.replaceState(null, "", to);
  else window.history.pushState(null, "", to);
  window.dispatchEvent(new Event(NAV_EVENT));
  if (scroll) window.scrollTo?.(0, 0);
}

export function usePath(): string {
  return useSyncExternalStore(subscribe, () => window.location.pathname);
}

/** The query string ("?a=b" or ""), re-rendering on navigation. */
export function useSearchString(): string {
  return useSyncExternalStore(subscribe, () => window.location.search);
}

export type Route =
  | { name: "library" }
  | { name: "search" }
  | { name: "file"; id: string }
  | { name: "collections" }
  | { name: "collection"; id: string }
  | { name: "system" }
  | { name: "notFound" };

export function matchRoute(path: string): Route {
  if (path === "/" || path === "") return { name: "library" };
  if (path === "/system" || path === "/system/") return { name: "system" };
  if (path === "/search" || path === "/search/") return { name: "search" };
  if (path === "/collections" || path === "/collections/") return { name: "collections" };
  const c = /^\/collections\/([^/]+)\/?$/.exec(path);
  if (c) return { name: "collection", id: decodeURIComponent(c[1]) };
  const m = /^\/files\/([^/]+)\/?$/.exec(path);
  if (m) return { name: "file", id: decodeURIComponent(m[1]) };
  return { name: "notFound" };
}

export function Link({ to, onClick, ...rest }: AnchorHTMLAttributes<HTMLAnchorElement> & { to: string }) {
  const handle = (e: MouseEvent<HTMLAnchorElement>) => {
    onClick?.(e);
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(to);
  };
  return <a href={to} onClick={handle} {...rest} />;
}
