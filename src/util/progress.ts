/** Progress bars (rate and ETA) on stderr, and quiet mode for tests and pipes. */
import cliProgress from "cli-progress";

export interface Progress {
  /** Advance by `n` (default 1) and optionally update named payload fields shown after the bar. */
  tick(n?: number, payload?: Record<string, string | number>): void;
  /** Set the absolute value. */
  update(value: number, payload?: Record<string, string | number>): void;
  stop(): void;
}

export interface ProgressOptions {
  /** Label before the bar. */
  label: string;
  total: number;
  /** Unit shown with the rate, e.g. "it", "rows", "tok". */
  unit?: string;
  /** Payload keys to show after the bar, in order. */
  fields?: string[];
  /** Force on/off; default: on when stderr is a TTY and TTRL_QUIET is unset. */
  enabled?: boolean;
}

const noop: Progress = { tick() {}, update() {}, stop() {} };

function fmtPayload(fields: string[], payload: Record<string, unknown>): string {
  return fields
    .filter((f) => payload[f] !== undefined && payload[f] !== "")
    .map((f) => {
      const v = payload[f];
      return `${f}=${typeof v === "number" ? (Number.isInteger(v) ? v : v.toFixed(3)) : v}`;
    })
    .join(" ");
}

export function progressEnabledByDefault(): boolean {
  return Boolean(process.stderr.isTTY) && !process.env.TTRL_QUIET;
}

/** A progress bar with rate and ETA; a no-op when disabled. */
export function createProgress(opts: ProgressOptions): Progress {
  const enabled = opts.enabled ?? progressEnabledByDefault();
  if (!enabled) return noop;
  const unit = opts.unit ?? "it";
  const fields = opts.fields ?? [];
  const start = Date.now();
  let value = 0;
  let payload: Record<string, string | number> = {};
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      hideCursor: false,
      clearOnComplete: false,
      etaBuffer: 50,
      format: (options, params) => {
        const width = options.barsize ?? 30;
        const done = Math.round(params.progress * width);
        const elapsed = (Date.now() - start) / 1000;
        const rate = elapsed > 0 ? value / elapsed : 0;
        const eta = params.eta;
        const etaStr = Number.isFinite(eta) && eta >= 0 ? fmtTime(eta) : "?";
        return `${opts.label} [${"█".repeat(done)}${"░".repeat(width - done)}] ${value}/${params.total} ${rate.toFixed(rate < 10 ? 2 : 0)} ${unit}/s ETA ${etaStr} ${fmtPayload(fields, payload)}`;
      },
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(opts.total, 0);
  return {
    tick(n = 1, p) {
      value += n;
      if (p) payload = { ...payload, ...p };
      bar.update(value);
    },
    update(v, p) {
      value = v;
      if (p) payload = { ...payload, ...p };
      bar.update(value);
    },
    stop() {
      bar.stop();
    },
  };
}

export function fmtTime(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}
