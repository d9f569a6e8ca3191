// The colour theme: dark by default, light on request, remembered in localStorage.
import { useEffect, useState } from "react";

type Theme = "dark" | "light";
const THEME_KEY = "traum.theme";

export function initialTheme(): Theme {
  try {
    const t = localStorage.getItem(THEME_KEY);
    if (t === "light" || t === "dark") return t;
  } catch {
    // Storage disabled.
  }
  return "dark";
}

export function ThemeToggle() {
  const [theme, setTheme] = useState<Theme>(initialTheme);
  useEffect(() => {
    document.documentElement.dataset.theme = theme;
  }, [theme]);
  return (
    <button
      type="button"
      className="theme-toggle"
      aria-pressed={theme === "light"}
      onClick={() => {
        const next = theme === "light" ? "dark" : "light";
        setTheme(next);
        try {
          localStorage.setItem(THEME_KEY, next);
        } catch {
          // Storage disabled: the choice lasts for this page only.
        }
      }}
    >
      Light theme
    </button>
  );
}
