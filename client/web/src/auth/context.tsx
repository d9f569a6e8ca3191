// The session as the views see it: the role, to hide what it cannot do, and
// sign-out. Without a provider (auth off, the unit tests of the views) the
// page may do everything, as before sign-in existed.
import { createContext, useContext } from "react";
import { hasRole, type AuthMode, type Role } from "./session";

export interface SessionView {
  auth: AuthMode;
  role: Role | null;
  principal: string | null;
  /** Present when auth is required. */
  signOut?: () => Promise<void>;
}

const OPEN: SessionView = { auth: "off", role: "admin", principal: null };

export const SessionContext = createContext<SessionView>(OPEN);

export function useSession(): SessionView {
  return useContext(SessionContext);
}

/** Whether this session's role includes `needed`. */
export function useCan(needed: Role): boolean {
  return hasRole(useContext(SessionContext).role, needed);
}
