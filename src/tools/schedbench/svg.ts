/**
 * Self-contained SVG bar charts (no scripts, no external fonts or styles): one chart per metric,
 * one panel per scenario (or per pool size for the cost chart), one horizontal bar per scheduler.
 * Bars may be stacked (segments) for shares and for disruption's necessary/collateral split.
 *
 * Every bar is a `<rect class="bar">` (a stacked bar is a `<g class="bar">` of segment rects)
 * carrying data-label and data-value, inside a `<g class="panel">`, so tests and scripts can read
 * the chart back.
 */

export interface Segment {
  readonly name: string;
  readonly value: number;
  readonly color: string;
}

export interface Bar {
  readonly label: string;
  /** Null or NaN = not applicable (drawn as "n/a"). */
  readonly value: number | null;
  readonly color: string;
  /** Stacked parts; their sum is the bar's length (value is then the total). */
  readonly segments?: readonly Segment[];
  /** Text after the bar (default: the formatted value). */
  readonly text?: string;
  /** A remark after the text, in a warning colour (e.g. "14% failed"). */
  readonly note?: string;
}

export interface Panel {
  readonly title: string;
  readonly subtitle?: string;
  readonly bars: readonly Bar[];
  /** Fixed axis maximum (e.g. 1 for shares); default: from the data. */
  readonly max?: number;
  /** Draw a reference line at this value (e.g. 1 for max/mean). */
  readonly ref?: number;
  /** Mark the best bar(s): the extreme value, and those within `tolerance` (relative) of it. */
  readonly better?: "lower" | "higher";
  readonly tolerance?: number;
  /** Which bars may be marked best (default: all). */
  readonly eligible?: readonly boolean[];
  /** Logarithmic axis (for values spanning decades, such as latency). */
  readonly log?: boolean;
}

export interface Chart {
  readonly title: string;
  readonly subtitle: string;
  readonly panels: readonly Panel[];
  readonly format: (v: number) => string;
  /** Axis tick labels (default: compact numbers). */
  readonly tickFormat?: (v: number) => string;
  readonly legend?: readonly { readonly name: string; readonly color: string }[];
  readonly columns?: number;
}

/** Distinguishable colours (Tableau 20 order, dark first), one per scheduler. */
export const PALETTE: readonly string[] = [
  "#1f77b4",
  "#ff7f0e",
  "#2ca02c",
  "#d62728",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#7f7f7f",
  "#bcbd22",
  "#17becf",
  "#aec7e8",
  "#ffbb78",
  "#98df8a",
  "#ff9896",
  "#c5b0d5",
  "#c49c94",
  "#f7b6d2",
  "#c7c7c7",
  "#dbdb8d",
  "#9edae5",
];

export function colorFor(i: number): string {
  return PALETTE[i % PALETTE.length]!;
}

export function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) =>
    c === "<" ? "&lt;" : c === ">" ? "&gt;" : c === "&" ? "&amp;" : c === '"' ? "&quot;" : "&apos;",
  );
}

const FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"';
const BAR_H = 14;
const BAR_GAP = 5;
const LABEL_W = 118;
const BAR_W = 230;
const VALUE_W = 150;
const PANEL_W = LABEL_W + BAR_W + VALUE_W + 20;
const PANEL_HEAD = 46;
const PANEL_FOOT = 22;
const MARGIN = 16;

/** A "nice" axis maximum and tick step at or above `max`. */
function niceScale(max: number): { top: number; step: number } {
  if (!(max > 0) || !Number.isFinite(max)) return { top: 1, step: 0.25 };
  const raw = max / 4;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  const step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * mag;
  return { top: Math.ceil(max / step - 1e-9) * step, step };
}

function tickText(v: number): string {
  if (v === 0) return "0";
  if (Math.abs(v) >= 1000) return `${+(v / 1000).toPrecision(3)}k`;
  return `${+v.toPrecision(3)}`;
}

function valid(v: number | null | undefined): v is number {
  return v !== null && v !== undefined && Number.isFinite(v);
}

interface Scale {
  /** Value → offset from the bar origin, 0..BAR_W. */
  readonly x: (v: number) => number;
  readonly ticks: readonly number[];
  /** Values above the axis maximum are clipped (and marked). */
  readonly top: number;
}

function linearScale(max: number): Scale {
  const { top, step } = niceScale(max);
  const ticks: number[] = [];
  for (let k = 0; k * step <= top + step / 2; k++) ticks.push(k * step);
  return { x: (v) => Math.max(0, Math.min(1, v / top)) * BAR_W, ticks, top };
}

/** 1, 2 or 5 times a power of ten: the largest at or below v (down) or the smallest at or above (up). */
function roundLog(v: number, up: boolean): number {
  const mag = 10 ** Math.floor(Math.log10(v));
  const steps = [1, 2, 5, 10];
  if (up) return mag * steps.find((f) => f * mag >= v * (1 - 1e-9))!;
  return mag * [...steps].reverse().find((f) => f * mag <= v * (1 + 1e-9))!;
}

/** A log axis from a 1-2-5 value at or below the smallest value to one at or above the largest. */
function logScale(min: number, max: number): Scale {
  const lo = roundLog(min, false);
  let hi = roundLog(max, true);
  if (hi <= lo) hi = lo * 10;
  const span = Math.log10(hi) - Math.log10(lo);
  const ticks: number[] = [];
  for (let d = 10 ** Math.floor(Math.log10(lo)); d <= hi * 1.0001; d *= 10) {
    for (const f of span <= 2.5 ? [1, 2, 5] : [1]) {
      const v = d * f;
      if (v >= lo * 0.9999 && v <= hi * 1.0001) ticks.push(v);
    }
  }
  return {
    x: (v) => (v <= lo ? 0 : Math.min(1, (Math.log10(v) - Math.log10(lo)) / span) * BAR_W),
    ticks,
    top: hi,
  };
}

function panelSvg(p: Panel, x0: number, y0: number, height: number, c: Chart): string {
  const fmt = c.format;
  const tickFmt = c.tickFormat ?? tickText;
  const out: string[] = [];
  const values = p.bars.map((b) => b.value).filter(valid);
  const positive = values.filter((v) => v > 0);
  const dataMax = values.length > 0 ? Math.max(...values, p.ref ?? 0) : 0;
  const scale =
    p.log === true && positive.length > 0
      ? logScale(Math.min(...positive), Math.max(...positive))
      : linearScale(p.max ?? dataMax);
  const bx = x0 + LABEL_W;
  const by = y0 + PANEL_HEAD;
  const plotH = p.bars.length * (BAR_H + BAR_GAP);
  // Best bar(s): among eligible bars with a value, the extreme one(s), unless all are equal.
  const bestSet = new Set<number>();
  if (p.better) {
    const cand = p.bars
      .map((b, i) => ({ v: b.value, i }))
      .filter((e): e is { v: number; i: number } => valid(e.v) && (p.eligible?.[e.i] ?? true));
    if (cand.length > 1) {
      const vs = cand.map((e) => e.v);
      const target = p.better === "lower" ? Math.min(...vs) : Math.max(...vs);
      if (Math.min(...values) !== Math.max(...values)) {
        const tol = Math.abs(target) * (p.tolerance ?? 0.01);
        for (const e of cand) if (Math.abs(e.v - target) <= tol) bestSet.add(e.i);
      }
    }
  }
  out.push(`<g class="panel" data-title="${escapeXml(p.title)}">`);
  out.push(
    `<rect x="${x0}" y="${y0}" width="${PANEL_W}" height="${height}" rx="6" fill="#ffffff" stroke="#d0d7de"/>`,
  );
  out.push(
    `<text x="${x0 + 10}" y="${y0 + 18}" font-size="13" font-weight="bold" ${FONT} fill="#1f2328">${escapeXml(p.title)}</text>`,
  );
  if (p.subtitle) {
    out.push(
      `<text x="${x0 + 10}" y="${y0 + 34}" font-size="10.5" ${FONT} fill="#57606a">${escapeXml(p.subtitle)}</text>`,
    );
  }
  for (const v of scale.ticks) {
    const x = bx + scale.x(v);
    out.push(
      `<line x1="${x.toFixed(1)}" y1="${by - 4}" x2="${x.toFixed(1)}" y2="${by + plotH}" stroke="#eaeef2"/>`,
    );
    out.push(
      `<text x="${x.toFixed(1)}" y="${by + plotH + 13}" font-size="9" text-anchor="middle" ${FONT} fill="#57606a">${escapeXml(tickFmt(v))}</text>`,
    );
  }
  p.bars.forEach((b, i) => {
    const y = by + i * (BAR_H + BAR_GAP);
    const isBest = bestSet.has(i);
    const weight = isBest ? ' font-weight="bold"' : "";
    out.push(
      `<text x="${bx - 6}" y="${y + BAR_H - 3}" font-size="11" text-anchor="end" ${FONT}${weight} fill="#1f2328">${escapeXml(b.label)}</text>`,
    );
    if (!valid(b.value)) {
      out.push(`<text x="${bx + 4}" y="${y + BAR_H - 3}" font-size="10" ${FONT} fill="#8c959f">n/a</text>`);
      return;
    }
    const tip = `${b.label}: ${b.text ?? fmt(b.value)}${b.note ? ` (${b.note})` : ""}`;
    if (b.segments && b.segments.length > 0) {
      out.push(`<g class="bar" data-label="${escapeXml(b.label)}" data-value="${b.value}">`);
      out.push(`<title>${escapeXml(tip)}</title>`);
      let acc = 0;
      for (const sg of b.segments) {
        const xa = scale.x(acc);
        acc += sg.value;
        const sw = scale.x(acc) - xa;
        if (sw > 0) {
          out.push(
            `<rect class="segment" data-name="${escapeXml(sg.name)}" x="${(bx + xa).toFixed(1)}" y="${y}" width="${sw.toFixed(1)}" height="${BAR_H}" fill="${sg.color}"/>`,
          );
        }
      }
      out.push("</g>");
    } else {
      out.push(
        `<rect class="bar" data-label="${escapeXml(b.label)}" data-value="${b.value}" x="${bx}" y="${y}" width="${scale.x(b.value).toFixed(1)}" height="${BAR_H}" rx="2" fill="${b.color}"><title>${escapeXml(tip)}</title></rect>`,
      );
    }
    const over = b.value > scale.top * 1.0001;
    const tx = bx + scale.x(b.value) + 4;
    const note = b.note ? ` <tspan fill="#bc4c00">· ${escapeXml(b.note)}</tspan>` : "";
    out.push(
      `<text x="${tx.toFixed(1)}" y="${y + BAR_H - 3}" font-size="10" ${FONT}${weight} fill="#1f2328">${escapeXml((over ? "» " : "") + (b.text ?? fmt(b.value)) + (isBest ? " ◀ best" : ""))}${note}</text>`,
    );
  });
  if (valid(p.ref) && p.ref <= scale.top) {
    const x = bx + scale.x(p.ref);
    out.push(
      `<line x1="${x.toFixed(1)}" y1="${by - 6}" x2="${x.toFixed(1)}" y2="${by + plotH}" stroke="#57606a" stroke-dasharray="3 3"/>`,
    );
  }
  out.push("</g>");
  return out.join("\n");
}

/** Render a chart as a standalone SVG document. */
export function renderChart(c: Chart): string {
  const cols = Math.max(1, Math.min(c.columns ?? 3, c.panels.length));
  const rows = Math.ceil(c.panels.length / cols);
  const maxBars = Math.max(1, ...c.panels.map((p) => p.bars.length));
  const panelH = PANEL_HEAD + maxBars * (BAR_H + BAR_GAP) + PANEL_FOOT;
  const head = 58 + (c.legend && c.legend.length > 0 ? 20 : 0);
  const width = MARGIN * 2 + cols * PANEL_W + (cols - 1) * MARGIN;
  const height = head + rows * panelH + (rows - 1) * MARGIN + MARGIN;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img">`,
  );
  out.push(`<title>${escapeXml(c.title)}</title>`);
  out.push(`<desc>${escapeXml(c.subtitle)}</desc>`);
  out.push(`<rect width="${width}" height="${height}" fill="#f6f8fa"/>`);
  out.push(
    `<text x="${MARGIN}" y="26" font-size="18" font-weight="bold" ${FONT} fill="#1f2328">${escapeXml(c.title)}</text>`,
  );
  out.push(
    `<text x="${MARGIN}" y="45" font-size="12" ${FONT} fill="#57606a">${escapeXml(c.subtitle)}</text>`,
  );
  if (c.legend && c.legend.length > 0) {
    let x = MARGIN;
    for (const l of c.legend) {
      out.push(`<rect x="${x}" y="56" width="11" height="11" fill="${l.color}"/>`);
      out.push(
        `<text x="${x + 15}" y="65.5" font-size="11" ${FONT} fill="#1f2328">${escapeXml(l.name)}</text>`,
      );
      x += 15 + l.name.length * 6.5 + 14;
    }
  }
  c.panels.forEach((p, i) => {
    const col = i % cols;
    const row = Math.floor(i / cols);
    const x = MARGIN + col * (PANEL_W + MARGIN);
    const y = head + row * (panelH + MARGIN);
    out.push(panelSvg(p, x, y, panelH, c));
  });
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}
