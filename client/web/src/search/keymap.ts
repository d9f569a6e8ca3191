// Keyboard audition on the results list. Plain functions, no React.

export type AuditionAction =
  | "toggle"
  | "previous"
  | "next"
  | "back"
  | "pause"
  | "forward"
  | "help"
  | "focusSearch";

export const SHORTCUTS: { keys: string; action: AuditionAction; description: string }[] = [
  { keys: "/", action: "focusSearch", description: "Focus the search box" },
  { keys: "Space", action: "toggle", description: "Play or pause the current hit" },
  { keys: "↓", action: "next", description: "Next hit (plays it)" },
  { keys: "↑", action: "previous", description: "Previous hit (plays it)" },
  { keys: "J", action: "back", description: "Back 5 seconds" },
  { keys: "K", action: "pause", description: "Pause" },
  { keys: "L", action: "forward", description: "Forward 5 seconds" },
  { keys: "?", action: "help", description: "Show this list of shortcuts" },
];

export interface KeyLike {
  key: string;
  ctrlKey?: boolean;
  metaKey?: boolean;
  altKey?: boolean;
  target?: EventTarget | null;
}

/** True for elements where keys type text or move a value (the shortcuts stay out of their way). */
export function isTypingTarget(t: EventTarget | null | undefined): boolean {
  if (!t || typeof (t as Element).tagName !== "string") return false;
  const el = t as HTMLElement;
  const tag = el.tagName.toLowerCase();
  if (tag === "textarea" || tag === "select") return true;
  if (el.isContentEditable) return true;
  if (tag === "input") {
    const type = ((el as HTMLInputElement).type || "text").toLowerCase();
    return !["button", "submit", "reset", "checkbox", "radio", "file", "image"].includes(type);
  }
  const role = el.getAttribute?.("role");
  return role === "slider" || role === "combobox" || role === "textbox" || role === "searchbox";
}

function isActivatable(t: EventTarget | null | undefined): boolean {
  if (!t || typeof (t as Element).tagName !== "string") return false;
  const el = t as HTMLElement;
  const tag = el.tagName.toLowerCase();
  return tag === "button" || tag === "a" || tag === "summary" || tag === "input";
}

/** The audition action of a key press, or null when the key is not ours here. */
export function actionForKey(e: KeyLike): AuditionAction | null {
  if (e.ctrlKey || e.metaKey || e.altKey) return null;
  if (isTypingTarget(e.target)) return null;
  switch (e.key) {
    case "/":
      return "focusSearch";
    case " ":
    case "Spacebar":
      // Space on a focused button activates the button, not the shortcut.
      return isActivatable(e.target) ? null : "toggle";
    case "ArrowDown":
      return "next";
    case "ArrowUp":
      return "previous";
    case "j":
    case "J":
      return "back";
    case "k":
    case "K":
      return "pause";
    case "l":
    case "L":
      return "forward";
    case "?":
      return "help";
    default:
      return null;
  }
}
