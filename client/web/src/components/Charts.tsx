// Hand-written SVG charts (no chart library).

export interface Bar {
  label: string;
  values: number[];
}

/** Horizontal grouped bars; each series gets a colour class `series-N`. */
export function HBarChart({ title, bars, series, format = String }: { title: string; bars: Bar[]; series: string[]; format?: (n: number) => string }) {
  const max = Math.max(1, ...bars.flatMap((b) => b.values));
  const rowH = 14 * series.length + 10;
  return (
    <figure className="chart">
      <figcaption>{title}</figcaption>
      <ul className="legend" aria-hidden="true">
        {series.map((s, i) => (
          <li key={s}>
            <span className={`swatch series-${i}`} /> {s}
          </li>
        ))}
      </ul>
      <div className="hbar">
        {bars.map((b) => (
          <div key={b.label} className="hbar-row">
            <span className="hbar-label" title={b.label}>
              {b.label}
            </span>
            <svg viewBox={`0 0 100 ${rowH - 6}`} preserveAspectRatio="none" role="img" aria-label={`${b.label}: ${series.map((s, i) => `${s} ${format(b.values[i] ?? 0)}`).join(", ")}`}>
              {b.values.map((v, i) => (
                <rect key={i} className={`series-${i}`} x={0} y={i * 14} width={Math.max(v > 0 ? 0.5 : 0, (v / max) * 100)} height={12} />
              ))}
            </svg>
            <span className="hbar-values">{b.values.map((v) => format(v)).join(" / ")}</span>
          </div>
        ))}
      </div>
    </figure>
  );
}

/** Vertical bars over time. */
export function TimeBars({ title, points, format = String }: { title: string; points: { label: string; value: number }[]; format?: (n: number) => string }) {
  const max = Math.max(1, ...points.map((p) => p.value));
  const n = Math.max(1, points.length);
  const w = 600;
  const h = 120;
  const bw = w / n;
  const total = points.reduce((s, p) => s + p.value, 0);
  return (
    <figure className="chart">
      <figcaption>
        {title} <span className="muted">(total {format(total)}, peak {format(Math.max(0, ...points.map((p) => p.value)))})</span>
      </figcaption>
      <svg className="timebars" viewBox={`0 0 ${w} ${h + 16}`} preserveAspectRatio="none" role="img" aria-label={`${title}: ${points.length} buckets, total ${format(total)}`}>
        <line x1={0} y1={h} x2={w} y2={h} className="axis" />
        {points.map((p, i) => {
          const bh = (p.value / max) * h;
          return (
            <rect key={i} className="series-0" x={i * bw + bw * 0.1} y={h - bh} width={Math.max(0.5, bw * 0.8)} height={bh}>
              <title>{`${p.label}: ${format(p.value)}`}</title>
            </rect>
          );
        })}
      </svg>
      <div className="timebars-axis muted" aria-hidden="true">
        <span>{points[0]?.label}</span>
        <span>{points[points.length - 1]?.label}</span>
      </div>
    </figure>
  );
}
