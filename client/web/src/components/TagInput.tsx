import { useId, useState, type KeyboardEvent } from "react";

export function normaliseTag(t: string): string {
  return t.trim().toLowerCase();
}

/** A chips input: Enter or comma adds a tag, Backspace on empty removes the last. */
export function TagInput({
  label,
  tags,
  onChange,
  placeholder,
}: {
  label: string;
  tags: string[];
  onChange: (tags: string[]) => void;
  placeholder?: string;
}) {
  const id = useId();
  const [text, setText] = useState("");
  const commit = () => {
    const parts = text.split(",").map(normaliseTag).filter(Boolean);
    if (parts.length) onChange([...new Set([...tags, ...parts])]);
    setText("");
  };
  const onKey = (e: KeyboardEvent<HTMLInputElement>) => {
    if (e.key === "Enter" || e.key === ",") {
      e.preventDefault();
      commit();
    } else if (e.key === "Backspace" && !text && tags.length) {
      onChange(tags.slice(0, -1));
    }
  };
  return (
    <div className="tag-input">
      <label htmlFor={id}>{label}</label>
      <div className="tag-input-box">
        <ul className="chips" aria-label={`${label}: selected`}>
          {tags.map((t) => (
            <li key={t} className="chip">
              <span>{t}</span>
              <button type="button" className="chip-remove" aria-label={`Remove tag ${t}`} onClick={() => onChange(tags.filter((x) => x !== t))}>
                ×
              </button>
            </li>
          ))}
        </ul>
        <input
          id={id}
          type="text"
          value={text}
          placeholder={placeholder ?? "Type a tag, press Enter"}
          onChange={(e) => setText(e.target.value)}
          onKeyDown={onKey}
          onBlur={commit}
          autoComplete="off"
        />
      </div>
    </div>
  );
}
