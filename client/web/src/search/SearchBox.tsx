// The search box: role searchbox named "Search", live suggestions (Suggest,
// debounced 150 ms) plus recent searches (localStorage) in a listbox, chosen
// with ↓/↑/Enter, closed with Escape. The input keeps role searchbox and
// points at the listbox with aria-controls / aria-activedescendant /
// aria-autocomplete="list".
import { useEffect, useId, useRef, useState, type FormEvent, type KeyboardEvent } from "react";
import { useApi } from "../api/client";
import { SuggestionSource } from "../gen/traum/v1/search_pb";

const RECENT_KEY = "traum.recent-searches";
const MAX_RECENT = 8;

export function loadRecent(): string[] {
  try {
    const v = JSON.parse(localStorage.getItem(RECENT_KEY) ?? "[]");
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string").slice(0, MAX_RECENT) : [];
  } catch {
    return [];
  }
}

export function rememberSearch(q: string): void {
  const t = q.trim();
  if (!t) return;
  try {
    const next = [t, ...loadRecent().filter((x) => x !== t)].slice(0, MAX_RECENT);
    localStorage.setItem(RECENT_KEY, JSON.stringify(next));
  } catch {
    // Storage disabled.
  }
}

interface Option {
  text: string;
  kind: "recent" | "tag" | "filename" | "query";
}

const KIND_LABEL: Record<Option["kind"], string> = { recent: "Recent", tag: "Tag", filename: "Filename", query: "Past search" };

function sourceKind(s: SuggestionSource): Option["kind"] {
  return s === SuggestionSource.TAG ? "tag" : s === SuggestionSource.FILENAME ? "filename" : "query";
}

export function SearchBox({ value, onSubmit }: { value: string; onSubmit: (q: string) => void }) {
  const { search } = useApi();
  const listId = useId();
  const [text, setText] = useState(value);
  const [open, setOpen] = useState(false);
  const [active, setActive] = useState(-1);
  const [suggestions, setSuggestions] = useState<Option[]>([]);
  const [recent, setRecent] = useState<string[]>(loadRecent);
  const seq = useRef(0);

  useEffect(() => setText(value), [value]);

  // Debounced Suggest for the typed prefix.
  useEffect(() => {
    const prefix = text.trim();
    const my = ++seq.current;
    if (!prefix || !open) {
      setSuggestions([]);
      return;
    }
    const ac = new AbortController();
    const t = setTimeout(() => {
      search
        .suggest({ prefix, limit: 8 }, { signal: ac.signal })
        .then((res) => {
          if (my !== seq.current) return;
          setSuggestions(res.suggestions.map((s) => ({ text: s.text, kind: sourceKind(s.source) })));
        })
        .catch(() => {
          // Suggestions are optional; a failure just shows none.
          if (my === seq.current) setSuggestions([]);
        });
    }, 150);
    return () => {
      clearTimeout(t);
      ac.abort();
    };
  }, [text, open, search]);

  const lower = text.trim().toLowerCase();
  const recentOpts: Option[] = recent
    .filter((r) => !lower || (r.toLowerCase().includes(lower) && r.toLowerCase() !== lower))
    .slice(0, 5)
    .map((r) => ({ text: r, kind: "recent" }));
  const seen = new Set(recentOpts.map((o) => o.text.toLowerCase()));
  const options = [...recentOpts, ...suggestions.filter((s) => !seen.has(s.text.toLowerCase()) && (seen.add(s.text.toLowerCase()), true))];
  const expanded = open && options.length > 0;

  const submit = (q: string) => {
    setOpen(false);
    setActive(-1);
    setText(q);
    if (q.trim()) {
      rememberSearch(q);
      setRecent(loadRecent());
    }
    onSubmit(q.trim());
  };

  const onKey = (e: KeyboardEvent<HTMLInputElement>) => {
    if (e.key === "ArrowDown") {
      e.preventDefault();
      if (!open) setOpen(true);
      setActive((a) => (options.length ? (a + 1) % options.length : -1));
    } else if (e.key === "ArrowUp") {
      e.preventDefault();
      setActive((a) => (options.length ? (a <= 0 ? options.length - 1 : a - 1) : -1));
    } else if (e.key === "Escape") {
      if (expanded) {
        e.preventDefault();
        setOpen(false);
        setActive(-1);
      }
    } else if (e.key === "Enter") {
      if (expanded && active >= 0 && options[active]) {
        e.preventDefault();
        submit(options[active].text);
      }
    }
  };

  return (
    <form
      role="search"
      aria-label="Search by text"
      className="search-form"
      onSubmit={(e: FormEvent) => {
        e.preventDefault();
        submit(text);
      }}
    >
      <div className="search-box-wrap">
        <input
          id="search-box"
          type="search"
          aria-label="Search"
          placeholder="Describe a sound, e.g. warm analog pad (press / to focus)"
          value={text}
          autoComplete="off"
          spellCheck={false}
          aria-autocomplete="list"
          aria-keyshortcuts="/"
          aria-controls={listId}
          aria-activedescendant={expanded && active >= 0 ? `${listId}-${active}` : undefined}
          onChange={(e) => {
            setText(e.target.value);
            setOpen(true);
            setActive(-1);
          }}
          onFocus={() => setOpen(true)}
          onBlur={() => setOpen(false)}
          onKeyDown={onKey}
        />
        <ul id={listId} role="listbox" aria-label="Suggestions" className="suggestions" hidden={!expanded}>
          {expanded &&
            options.map((o, i) => (
              <li
                key={`${o.kind}:${o.text}`}
                id={`${listId}-${i}`}
                role="option"
                aria-selected={i === active}
                className={i === active ? "active" : undefined}
                onMouseDown={(e) => e.preventDefault()}
                onClick={() => submit(o.text)}
              >
                <span>{o.text}</span>
                <span className="muted suggestion-kind">{KIND_LABEL[o.kind]}</span>
              </li>
            ))}
        </ul>
      </div>
      <button type="submit" className="primary">
        Search text
      </button>
    </form>
  );
}
