/**
 * A progress bar on stderr for long runs: shown only when the stream is a terminal, and only once
 * the run has taken longer than `delayMs` (short runs print nothing). Work is measured in
 * estimated units so that the bar moves evenly across simulations and cost measurements.
 */

export interface ProgressStream {
  readonly isTTY?: boolean;
  readonly columns?: number;
  write(s: string): boolean;
}

export class Progress {
  private total = 0;
  private doneUnits = 0;
  /** Fraction of the current step completed (0..1) and its size. */
  private stepUnits = 0;
  private stepFrac = 0;
  private label = "";
  private readonly start = Date.now();
  private lastDraw = 0;
  private shown = false;
  private readonly enabled: boolean;

  constructor(
    private readonly stream: ProgressStream = process.stderr,
    enabled = stream.isTTY === true,
    private readonly delayMs = 2000,
  ) {
    this.enabled = enabled;
  }

  addTotal(units: number): void {
    this.total += units;
  }

  /** Start a step of `units` called `label` (the previous step counts as done). */
  step(label: string, units: number): void {
    this.doneUnits += this.stepUnits;
    this.stepUnits = units;
    this.stepFrac = 0;
    this.label = label;
    this.draw(false);
  }

  /** Progress within the current step. */
  within(fraction: number): void {
    this.stepFrac = Math.max(0, Math.min(1, fraction));
    this.draw(false);
  }

  /** Erase the bar. */
  done(): void {
    this.doneUnits += this.stepUnits;
    this.stepUnits = 0;
    if (this.shown) this.stream.write("\r\x1b[2K");
    this.shown = false;
  }

  /** The line that would be drawn (for tests). */
  render(width = 80): string {
    const done = this.doneUnits + this.stepUnits * this.stepFrac;
    const frac = this.total > 0 ? Math.min(1, done / this.total) : 0;
    const elapsed = (Date.now() - this.start) / 1000;
    const eta = frac > 0.02 ? Math.max(0, elapsed / frac - elapsed) : Number.NaN;
    const pct = `${Math.floor(frac * 100)}`.padStart(3);
    const tail = ` ${pct}% ${elapsed.toFixed(0)}s${Number.isFinite(eta) ? ` eta ${eta.toFixed(0)}s` : ""} ${this.label}`;
    const barW = Math.max(10, Math.min(40, width - tail.length - 14));
    const full = Math.round(frac * barW);
    const line = `schedbench [${"#".repeat(full)}${"-".repeat(barW - full)}]${tail}`;
    return line.length > width - 1 ? line.slice(0, width - 1) : line;
  }

  private draw(force: boolean): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (!force && (now - this.start < this.delayMs || now - this.lastDraw < 100)) return;
    this.lastDraw = now;
    this.shown = true;
    this.stream.write(`\r\x1b[2K${this.render(this.stream.columns || 80)}`);
  }
}
