// The filter editor (applied with "Apply filters") and the applied filters as
// removable chips.
import { useEffect, useId, useState, type FormEvent } from "react";
import { KeyMode } from "../gen/traum/v1/audio_pb";
import { TagInput } from "../components/TagInput";
import { formatKey, formatName } from "../lib/format";
import { FORMAT_CODES, keyCode, validateFilters, type Filters, type KeyFilter, type SearchState } from "./url-state";

interface Draft {
  minDuration: string;
  maxDuration: string;
  minBpm: string;
  maxBpm: string;
  minScore: string;
  keys: KeyFilter[];
  tagsAll: string[];
  tagsAny: string[];
  tagsNone: string[];
  formats: Filters["formats"];
  keywords: string;
  weight: number;
}

const s = (n: number | undefined) => (n === undefined ? "" : String(n));
const n = (t: string) => (t.trim() === "" || !Number.isFinite(Number(t)) ? undefined : Number(t));

function toDraft(st: SearchState): Draft {
  const f = st.filters;
  return {
    minDuration: s(f.minDuration),
    maxDuration: s(f.maxDuration),
    minBpm: s(f.minBpm),
    maxBpm: s(f.maxBpm),
    minScore: s(f.minScore),
    keys: f.keys,
    tagsAll: f.tagsAll,
    tagsAny: f.tagsAny,
    tagsNone: f.tagsNone,
    formats: f.formats,
    keywords: f.keywords,
    weight: st.keywordWeight,
  };
}

function fromDraft(d: Draft): Filters {
  const f: Filters = {
    keys: d.keys,
    tagsAll: d.tagsAll,
    tagsAny: d.tagsAny,
    tagsNone: d.tagsNone,
    formats: d.formats,
    keywords: d.keywords.trim(),
  };
  const set = (k: "minDuration" | "maxDuration" | "minBpm" | "maxBpm" | "minScore", v: string) => {
    const x = n(v);
    if (x !== undefined) f[k] = x;
  };
  set("minDuration", d.minDuration);
  set("maxDuration", d.maxDuration);
  set("minBpm", d.minBpm);
  set("maxBpm", d.maxBpm);
  set("minScore", d.minScore);
  return f;
}

const ALL_KEYS: KeyFilter[] = [];
for (const mode of [KeyMode.MAJOR, KeyMode.MINOR]) for (let pc = 0; pc < 12; pc++) ALL_KEYS.push({ pitchClass: pc, mode });

function NumberField({ label, value, onChange, step = "any", min = 0 }: { label: string; value: string; onChange: (v: string) => void; step?: string; min?: number }) {
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <input id={id} type="number" inputMode="decimal" min={min} step={step} value={value} onChange={(e) => onChange(e.target.value)} />
    </div>
  );
}

export function FiltersPanel({ state, onApply }: { state: SearchState; onApply: (filters: Filters, weight: number) => void }) {
  const [draft, setDraft] = useState<Draft>(() => toDraft(state));
  const [tried, setTried] = useState(false);
  // Open on wide screens; folded on phones, where it would push the results far down.
  const [initiallyOpen] = useState(() => typeof window.matchMedia !== "function" || window.matchMedia("(min-width: 701px)").matches);
  const keySelectId = useId();
  const weightId = useId();
  const stateKey = JSON.stringify([state.filters, state.keywordWeight]);
  useEffect(() => {
    setDraft(toDraft(state));
    setTried(false);
    // Reset the editor whenever the applied filters change (URL, chips).
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [stateKey]);

  const up = (patch: Partial<Draft>) => setDraft((d) => ({ ...d, ...patch }));
  const problems = validateFilters(fromDraft(draft));
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setTried(true);
    if (problems.length) return;
    onApply(fromDraft(draft), draft.weight);
  };

  return (
    <details className="panel search-filters" open={initiallyOpen}>
      <summary>
        <h2>Filters</h2>
      </summary>
    <form aria-label="Filters" onSubmit={submit} noValidate>
      <div className="filter-grid">
        <NumberField label="Minimum duration (s)" value={draft.minDuration} onChange={(v) => up({ minDuration: v })} />
        <NumberField label="Maximum duration (s)" value={draft.maxDuration} onChange={(v) => up({ maxDuration: v })} />
        <NumberField label="Minimum BPM" value={draft.minBpm} onChange={(v) => up({ minBpm: v })} />
        <NumberField label="Maximum BPM" value={draft.maxBpm} onChange={(v) => up({ maxBpm: v })} />
        <div className="field">
          <label htmlFor={keySelectId}>Add key</label>
          <select
            id={keySelectId}
            value=""
            onChange={(e) => {
              const k = ALL_KEYS.find((x) => keyCode(x) === e.target.value);
              if (k && !draft.keys.some((x) => keyCode(x) === keyCode(k))) up({ keys: [...draft.keys, k] });
            }}
          >
            <option value="">Any key</option>
            {ALL_KEYS.map((k) => (
              <option key={keyCode(k)} value={keyCode(k)}>
                {formatKey(k)}
              </option>
            ))}
          </select>
          {draft.keys.length > 0 && (
            <ul className="chips" aria-label="Keys to filter by">
              {draft.keys.map((k) => (
                <li key={keyCode(k)} className="chip">
                  <span>{formatKey(k)}</span>
                  <button
                    type="button"
                    className="chip-remove"
                    aria-label={`Remove key ${formatKey(k)}`}
                    onClick={() => up({ keys: draft.keys.filter((x) => keyCode(x) !== keyCode(k)) })}
                  >
                    ×
                  </button>
                </li>
              ))}
            </ul>
          )}
        </div>
        <NumberField label="Minimum score" min={-1} step="0.01" value={draft.minScore} onChange={(v) => up({ minScore: v })} />
        <TagInput label="All of these tags" tags={draft.tagsAll} onChange={(t) => up({ tagsAll: t })} />
        <TagInput label="Any of these tags" tags={draft.tagsAny} onChange={(t) => up({ tagsAny: t })} />
        <TagInput label="None of these tags" tags={draft.tagsNone} onChange={(t) => up({ tagsNone: t })} />
        <fieldset className="formats">
          <legend>Formats</legend>
          {FORMAT_CODES.map(([f, code]) => (
            <label key={code} className="checkbox-field">
              <input
                type="checkbox"
                checked={draft.formats.includes(f)}
                onChange={(e) => up({ formats: e.target.checked ? [...draft.formats, f] : draft.formats.filter((x) => x !== f) })}
              />
              {formatName(f)}
            </label>
          ))}
        </fieldset>
        <div className="field">
          <label htmlFor={`${weightId}-kw`}>Keywords</label>
          <input id={`${weightId}-kw`} type="text" value={draft.keywords} onChange={(e) => up({ keywords: e.target.value })} />
        </div>
        <div className="field">
          <label htmlFor={weightId}>Keyword weight</label>
          <div className="range-row">
            <input
              id={weightId}
              type="range"
              min={0}
              max={1}
              step={0.05}
              value={draft.weight}
              aria-valuetext={draft.weight.toFixed(2)}
              onChange={(e) => up({ weight: Number(e.target.value) })}
            />
            <output htmlFor={weightId}>{draft.weight.toFixed(2)}</output>
          </div>
        </div>
      </div>
      {problems.length > 0 && (
        <ul className="error-text validation" role={tried ? "alert" : undefined} data-testid="filter-validation">
          {problems.map((p) => (
            <li key={p}>{p}</li>
          ))}
        </ul>
      )}
      <div className="row-buttons">
        <button type="submit" className="primary">
          Apply filters
        </button>
      </div>
    </form>
    </details>
  );
}

/** The applied filters, each a chip with a remove button. */
export function FilterChips({ state, onChange }: { state: SearchState; onChange: (next: SearchState) => void }) {
  const f = state.filters;
  const chips: { label: string; remove: () => SearchState }[] = [];
  const withF = (patch: Partial<Filters>): SearchState => ({ ...state, filters: { ...f, ...patch } });
  const drop = (k: "minDuration" | "maxDuration" | "minBpm" | "maxBpm" | "minScore"): SearchState => {
    const nf = { ...f };
    delete nf[k];
    return { ...state, filters: nf };
  };
  if (f.minDuration !== undefined) chips.push({ label: `Duration ≥ ${f.minDuration} s`, remove: () => drop("minDuration") });
  if (f.maxDuration !== undefined) chips.push({ label: `Duration ≤ ${f.maxDuration} s`, remove: () => drop("maxDuration") });
  if (f.minBpm !== undefined) chips.push({ label: `BPM ≥ ${f.minBpm}`, remove: () => drop("minBpm") });
  if (f.maxBpm !== undefined) chips.push({ label: `BPM ≤ ${f.maxBpm}`, remove: () => drop("maxBpm") });
  for (const k of f.keys) chips.push({ label: `Key: ${formatKey(k)}`, remove: () => withF({ keys: f.keys.filter((x) => keyCode(x) !== keyCode(k)) }) });
  for (const t of f.tagsAll) chips.push({ label: `Tag: ${t}`, remove: () => withF({ tagsAll: f.tagsAll.filter((x) => x !== t) }) });
  for (const t of f.tagsAny) chips.push({ label: `Any tag: ${t}`, remove: () => withF({ tagsAny: f.tagsAny.filter((x) => x !== t) }) });
  for (const t of f.tagsNone) chips.push({ label: `Without tag: ${t}`, remove: () => withF({ tagsNone: f.tagsNone.filter((x) => x !== t) }) });
  for (const x of f.formats) chips.push({ label: `Format: ${formatName(x)}`, remove: () => withF({ formats: f.formats.filter((y) => y !== x) }) });
  if (f.keywords) chips.push({ label: `Keywords: ${f.keywords}`, remove: () => withF({ keywords: "" }) });
  if (f.minScore !== undefined) chips.push({ label: `Score ≥ ${f.minScore}`, remove: () => drop("minScore") });
  if (state.keywordWeight > 0) chips.push({ label: `Keyword weight ${state.keywordWeight}`, remove: () => ({ ...state, keywordWeight: 0 }) });
  if (state.good.length || state.bad.length)
    chips.push({ label: `Refined: ${state.good.length} good, ${state.bad.length} bad`, remove: () => ({ ...state, good: [], bad: [] }) });
  if (!chips.length) return null;
  return (
    <ul className="chips filter-chips" aria-label="Active filters">
      {chips.map((c) => (
        <li key={c.label} className="chip">
          <span>{c.label}</span>
          <button type="button" className="chip-remove" aria-label={`Remove filter ${c.label}`} onClick={() => onChange(c.remove())}>
            ×
          </button>
        </li>
      ))}
      {chips.length > 1 && (
        <li>
          <button type="button" className="small" onClick={() => onChange({ ...state, filters: { keys: [], tagsAll: [], tagsAny: [], tagsNone: [], formats: [], keywords: "" }, keywordWeight: 0, good: [], bad: [] })}>
            Clear all filters
          </button>
        </li>
      )}
    </ul>
  );
}
