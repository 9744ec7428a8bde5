/**
 * Vega-Lite specs of the report's charts, built from loaded runs. Every spec carries its data inline and the
 * report theme, so the same spec renders in the browser (report.html) and headless in Node (PNG).
 */
import type { EvalRun, LoadedRuns, LogRow, Mode, TrainRun } from "./load.ts";
import { MODES } from "./load.ts";
import type { EvalStats } from "./stats.ts";

export type VlSpec = Record<string, unknown>;

export interface ChartSpec {
  /** File-name-safe id: the PNG is `<id>.png`. */
  id: string;
  title: string;
  /** One sentence shown under the chart in the HTML report. */
  description: string;
  spec: VlSpec;
}

export interface ChartSet {
  charts: ChartSpec[];
  /** Charts left out and why (e.g. no labels, so no correctness). */
  notes: string[];
}

/** Every chart id buildCharts can make (the PNG names under png/). */
export const CHART_IDS = [
  "valid_generation_ratios",
  "correct_generation_ratios",
  "k_sampling_metrics_strict",
  "k_sampling_metrics_flexible",
  "ttrl_diagnostics",
  "training_logs",
] as const;

export const FONT_FAMILY = "DejaVu Sans";
export const MODE_COLORS: Record<Mode, string> = { strict: "#3b6ea8", flexible: "#e8853d" };
/** Colours of models/runs, in order (Tableau 10, reordered so neighbours contrast). */
export const SERIES_COLORS = [
  "#4e79a7",
  "#f28e2b",
  "#59a14f",
  "#e15759",
  "#b07aa1",
  "#76b7b2",
  "#edc948",
  "#9c755f",
  "#ff9da7",
  "#bab0ac",
];

export const THEME = {
  font: FONT_FAMILY,
  background: "white",
  padding: 16,
  title: {
    fontSize: 16,
    fontWeight: "bold",
    anchor: "start",
    color: "#222",
    subtitleFontSize: 12,
    subtitleColor: "#666",
    subtitlePadding: 6,
    offset: 14,
  },
  axis: {
    labelFontSize: 11,
    titleFontSize: 12,
    titleFontWeight: "normal",
    titleColor: "#444",
    labelColor: "#333",
    gridColor: "#ececec",
    domainColor: "#999",
    tickColor: "#999",
  },
  legend: { labelFontSize: 12, titleFontSize: 12, labelLimit: 420, symbolType: "square", symbolSize: 140 },
  header: { labelFontSize: 13, labelFontWeight: "bold", labelColor: "#333", titleFontSize: 0 },
  view: { stroke: null },
  text: { fontSize: 11, color: "#222" },
};

const SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json";

function base(title: string, subtitle: string | undefined, extra: VlSpec): VlSpec {
  return {
    $schema: SCHEMA,
    title: subtitle ? { text: title, subtitle } : { text: title },
    config: THEME,
    ...extra,
  };
}

function colorScale(labels: string[]): { domain: string[]; range: string[] } {
  return { domain: labels, range: labels.map((_, i) => SERIES_COLORS[i % SERIES_COLORS.length]) };
}

/** Horizontal grouped bars: one group per model, one bar per mode, the value written at the bar's end. */
function ratioBars(
  rows: { model: string; mode: Mode; value: number; lo?: number; hi?: number }[],
  models: string[],
  opts: { title: string; subtitle?: string; axisTitle: string; withCi: boolean },
): VlSpec {
  const data = rows.map((r) => ({
    ...r,
    // the label sits right of the bar, or right of its error bar
    labelAt: opts.withCi && r.hi !== undefined ? r.hi : r.value,
  }));
  const y = {
    field: "model",
    type: "nominal",
    sort: models,
    title: null,
    axis: { labelLimit: 320, labelFontSize: 12 },
  };
  const yOffset = { field: "mode", type: "nominal", sort: MODES };
  const tooltip = [
    { field: "model", title: "model" },
    { field: "mode", title: "parsing" },
    { field: "value", title: opts.axisTitle, format: ".2%" },
    ...(opts.withCi
      ? [
          { field: "lo", title: "95% CI low", format: ".2%" },
          { field: "hi", title: "95% CI high", format: ".2%" },
        ]
      : []),
  ];
  const layers: VlSpec[] = [
    {
      mark: { type: "bar", cornerRadiusEnd: 3, height: { band: 0.9 } },
      encoding: {
        x: {
          field: "value",
          type: "quantitative",
          scale: { domain: [0, 1] },
          axis: { format: "%", title: opts.axisTitle, tickCount: 5 },
        },
        color: {
          field: "mode",
          type: "nominal",
          title: "parsing",
          scale: { domain: MODES, range: MODES.map((m) => MODE_COLORS[m]) },
          legend: { orient: "top", direction: "horizontal", title: null },
        },
        tooltip,
      },
    },
  ];
  if (opts.withCi)
    layers.push({
      transform: [{ filter: "isValid(datum.lo) && isValid(datum.hi)" }],
      mark: { type: "rule", color: "#333", strokeWidth: 1.2 },
      encoding: { x: { field: "lo", type: "quantitative" }, x2: { field: "hi" } },
    });
  layers.push({
    mark: { type: "text", align: "left", baseline: "middle", dx: 5, fontSize: 11 },
    encoding: {
      x: { field: "labelAt", type: "quantitative" },
      text: { field: "value", type: "quantitative", format: ".1%" },
    },
  });
  return base(opts.title, opts.subtitle, {
    data: { values: data },
    width: 520,
    height: { step: 20, for: "offset" },
    encoding: { y, yOffset },
    layer: layers,
  });
}

function kSorted(rec: Record<string, number | null> | null): string[] {
  return rec ? Object.keys(rec).sort((a, b) => Number(a) - Number(b)) : [];
}

function validChart(evals: EvalRun[]): ChartSpec | null {
  const rows = evals.flatMap((e) =>
    MODES.flatMap((mode) => {
      const v = e.metrics[mode].valid_ratio;
      return v === null ? [] : [{ model: e.label, mode, value: v }];
    }),
  );
  if (rows.length === 0) return null;
  return {
    id: "valid_generation_ratios",
    title: "Valid generation ratios",
    description:
      "Share of all sampled completions whose answer could be parsed. Strict: the whole completion follows the reasoning/answer format; flexible: the last closed answer tag anywhere.",
    spec: ratioBars(
      rows,
      evals.map((e) => e.label),
      {
        title: "Valid generation ratios",
        subtitle: "completions whose answer parses, strict vs flexible format",
        axisTitle: "valid completions",
        withCi: false,
      },
    ),
  };
}

function correctChart(evals: EvalRun[]): { chart: ChartSpec | null; unlabeled: string[] } {
  const unlabeled: string[] = [];
  const rows = evals.flatMap((e) => {
    const out = MODES.flatMap((mode) => {
      const m = e.metrics[mode];
      if (m.accuracy === null) return [];
      const ci = m.ci95?.accuracy ?? null;
      return [{ model: e.label, mode, value: m.accuracy, ...(ci ? { lo: ci[0], hi: ci[1] } : {}) }];
    });
    if (out.length === 0) unlabeled.push(e.label);
    return out;
  });
  if (rows.length === 0) return { chart: null, unlabeled };
  const models = evals.filter((e) => !unlabeled.includes(e.label)).map((e) => e.label);
  const subtitle =
    "completions whose answer equals the label; black lines: 95% bootstrap CI over questions" +
    (unlabeled.length > 0 ? ` (no labels, left out: ${unlabeled.join(", ")})` : "");
  return {
    unlabeled,
    chart: {
      id: "correct_generation_ratios",
      title: "Correct generation ratios",
      description:
        "Accuracy: the share of all sampled completions whose parsed answer equals the label, for strict and flexible parsing, with 95% bootstrap confidence intervals.",
      spec: ratioBars(rows, models, {
        title: "Correct generation ratios",
        subtitle,
        axisTitle: "correct completions",
        withCi: true,
      }),
    },
  };
}

function kChart(evals: EvalRun[], mode: Mode, stats: EvalStats | null = null): ChartSpec | null {
  const rows: Record<string, unknown>[] = [];
  const models: string[] = [];
  let withCi = false;
  for (const e of evals) {
    const m = e.metrics[mode];
    const st = stats?.models.find((s) => s.label === e.label)?.modes[mode] ?? null;
    let any = false;
    for (const metric of ["pass@k", "cons@k"] as const) {
      const rec = m[metric];
      const first = m[`${metric}_first`];
      for (const k of kSorted(rec)) {
        const v = rec?.[k] ?? null;
        if (v === null) continue;
        any = true;
        const ci = st?.[metric === "pass@k" ? "pass" : "cons"][k] ?? null;
        if (ci) withCi = true;
        rows.push({
          model: e.label,
          metric,
          k: Number(k),
          value: v,
          first: first?.[k] ?? null,
          ...(ci ? { lo: ci.lo, hi: ci.hi } : {}),
        });
      }
    }
    if (any) models.push(e.label);
  }
  if (rows.length === 0) return null;
  const ks = [...new Set(rows.map((r) => r.k as number))].sort((a, b) => a - b);
  // narrower bars when there are many models, so a facet stays about 320 px wide
  const step = Math.max(10, Math.min(24, Math.floor(300 / (ks.length * Math.max(1, models.length)))));
  const inner: VlSpec = {
    width: { step, for: "offset" },
    height: 300,
    encoding: {
      x: {
        field: "k",
        type: "ordinal",
        sort: ks,
        title: "k (samples per question)",
        axis: { labelAngle: 0 },
      },
      xOffset: { field: "model", type: "nominal", sort: models },
    },
    layer: [
      {
        mark: { type: "bar", cornerRadiusEnd: 2, width: { band: 0.92 } },
        encoding: {
          y: {
            field: "value",
            type: "quantitative",
            scale: { domain: [0, 1] },
            axis: { format: "%", title: null, tickCount: 5 },
          },
          color: {
            field: "model",
            type: "nominal",
            title: null,
            scale: colorScale(models),
            legend: { orient: "top", direction: "horizontal", columns: 2 },
          },
          tooltip: [
            { field: "model" },
            { field: "metric" },
            { field: "k" },
            { field: "value", title: "unbiased / all subsets", format: ".2%" },
            { field: "first", title: "first k samples", format: ".2%" },
            ...(withCi
              ? [
                  { field: "lo", title: "95% CI low", format: ".2%" },
                  { field: "hi", title: "95% CI high", format: ".2%" },
                ]
              : []),
          ],
        },
      },
      ...(withCi
        ? [
            {
              transform: [{ filter: "isValid(datum.lo) && isValid(datum.hi)" }],
              mark: { type: "rule", color: "#222", strokeWidth: 1.2 },
              encoding: { y: { field: "lo", type: "quantitative" }, y2: { field: "hi" } },
            },
          ]
        : []),
      {
        mark: {
          type: "text",
          angle: 270,
          align: "left",
          baseline: "middle",
          dx: 4,
          fontSize: step >= 16 ? 10 : 9,
        },
        encoding: {
          // the label sits above the bar, or above its error bar
          y: { field: withCi ? "labelAt" : "value", type: "quantitative" },
          text: { field: "value", type: "quantitative", format: ".1%" },
        },
      },
    ],
  };
  if (withCi) for (const r of rows) r.labelAt = typeof r.hi === "number" ? r.hi : r.value;
  return {
    id: `k_sampling_metrics_${mode}`,
    title: `pass@k and cons@k (${mode})`,
    description:
      `${mode === "strict" ? "Strict" : "Flexible"} parsing. pass@k: chance that at least one of k samples is correct (unbiased estimator); ` +
      "cons@k: the majority answer of k samples is correct (averaged over subsets of the samples; invalid answers do not vote)." +
      (withCi ? " Black lines: 95% percentile-bootstrap intervals over questions." : ""),
    spec: base(
      `pass@k and cons@k vs k — ${mode} parsing`,
      `k samples per question; bars grouped by model${withCi ? "; black lines: 95% bootstrap CI over questions" : ""}`,
      {
        data: { values: rows },
        facet: { column: { field: "metric", type: "nominal", sort: ["pass@k", "cons@k"], title: null } },
        spec: inner,
      },
    ),
  };
}

/** Train-log keys plotted, in panel order, with their panel titles; `rewards/<name>/mean` slot in after `reward`. */
const LOG_PANELS: [string, string][] = [
  ["reward", "total reward"],
  ["accuracy_reward", "accuracy vs labels"],
  ["majority_ratio", "majority ratio"],
  ["label_accuracy", "label accuracy (pseudo-label = label)"],
  ["reward_accuracy", "reward accuracy"],
  ["kl", "KL to reference"],
  ["completion_length/mean", "completion length (tokens)"],
  ["entropy", "entropy"],
  ["truncated_ratio", "truncated ratio"],
];

/** Longest train log plotted point by point; longer logs are averaged over consecutive steps. */
export const MAX_LOG_POINTS = 1000;

/** Average consecutive rows (non-null values per key) so that at most `max` rows remain; step = last step. */
export function binLog(log: LogRow[], max: number): LogRow[] {
  if (log.length <= max) return log;
  const size = Math.ceil(log.length / max);
  const out: LogRow[] = [];
  for (let i = 0; i < log.length; i += size) {
    const bucket = log.slice(i, i + size);
    const sums = new Map<string, [number, number]>();
    for (const r of bucket)
      for (const [k, v] of Object.entries(r))
        if (typeof v === "number" && Number.isFinite(v)) {
          const e = sums.get(k) ?? [0, 0];
          sums.set(k, [e[0] + v, e[1] + 1]);
        }
    const row: LogRow = {};
    for (const [k, [sum, n]] of sums) row[k] = sum / n;
    row.step = bucket[bucket.length - 1].step ?? null;
    out.push(row);
  }
  return out;
}

/** One point of a per-step chart: a run's logged value of one panel at one step. */
type LogPoint = { run: string; step: number; panel: string; value: number };

/**
 * The points of the per-step charts: every finite value of each `[key, title]` panel in every run's
 * (binned) train log, the panels present (in `panels` order) and the runs that have points.
 */
function logRows(
  trains: TrainRun[],
  panels: [string, string][],
): { rows: LogPoint[]; order: string[]; runs: string[] } {
  const rows: LogPoint[] = [];
  for (const t of trains)
    for (const row of binLog(t.log, MAX_LOG_POINTS)) {
      const step = row.step;
      if (step === null || step === undefined) continue;
      for (const [key, title] of panels) {
        const v = row[key];
        if (typeof v === "number" && Number.isFinite(v))
          rows.push({ run: t.label, step, panel: title, value: v });
      }
    }
  const present = new Set(rows.map((r) => r.panel));
  const order = panels.map((p) => p[1]).filter((p) => present.has(p));
  const runs = trains.filter((t) => rows.some((r) => r.run === t.label)).map((t) => t.label);
  return { rows, order, runs };
}

/** Half-width of the centred moving mean drawn over a run of `steps` points (0: no smoothing). */
function smoothWindow(steps: number): number {
  return steps > 30 ? Math.max(2, Math.round(steps / 25)) : 0;
}

/** The per-step charts' colour by run, with a legend of line strokes on top. */
function runColor(runs: string[]) {
  return {
    field: "run",
    type: "nominal",
    title: null,
    scale: colorScale(runs),
    legend: {
      orient: "top",
      direction: "horizontal",
      symbolType: "stroke",
      symbolStrokeWidth: 3,
      symbolOpacity: 1,
      symbolSize: 300,
    },
  };
}

/** The per-step charts' x axis. */
const STEP_X = { field: "step", type: "quantitative", title: "step", axis: { tickMinStep: 1, format: "d" } };

function trainChart(trains: TrainRun[]): ChartSpec | null {
  const rewardKeys = new Set<string>();
  for (const t of trains)
    for (const row of t.log)
      for (const k of Object.keys(row)) if (/^rewards\/.+\/mean$/.test(k)) rewardKeys.add(k);
  const panels: [string, string][] = [
    LOG_PANELS[0],
    ...[...rewardKeys].sort().map((k): [string, string] => [k, `reward: ${k.slice(8, -5)}`]),
    ...LOG_PANELS.slice(1),
  ];
  const maxSteps = Math.max(0, ...trains.map((t) => Math.min(t.log.length, MAX_LOG_POINTS)));
  const binned = trains.some((t) => t.log.length > MAX_LOG_POINTS);
  const { rows, order, runs } = logRows(trains, panels);
  if (rows.length === 0) return null;
  const smooth = smoothWindow(maxSteps);
  const color = runColor(runs);
  const x = STEP_X;
  const yAxis = {
    title: null,
    tickCount: 4,
    labelFlush: true, // end labels stay inside the plot's height, so panel titles line up
    // short labels whatever the range: 0.0125, 1.2e-5 → 1.2e-5, 12345 → 12.3k, a flat series' 0 → 0
    labelExpr: "abs(datum.value) >= 10000 ? format(datum.value, '.3~s') : format(datum.value, '.4~g')",
  };
  const layer: VlSpec[] =
    smooth > 0
      ? [
          {
            mark: { type: "line", strokeWidth: 1, opacity: 0.3, clip: true },
            encoding: {
              x,
              y: { field: "value", type: "quantitative", title: null, axis: yAxis, scale: { zero: false } },
              color,
            },
          },
          {
            transform: [
              {
                window: [{ op: "mean", field: "value", as: "smoothed" }],
                frame: [-smooth, smooth],
                groupby: ["run"],
                sort: [{ field: "step", order: "ascending" }],
              },
            ],
            mark: { type: "line", strokeWidth: 2.2, clip: true },
            encoding: {
              x,
              y: { field: "smoothed", type: "quantitative" },
              color,
              tooltip: [{ field: "run" }, { field: "step" }, { field: "value", format: ".4~g" }],
            },
          },
        ]
      : [
          {
            mark: { type: "line", strokeWidth: 2, point: { size: 30 } },
            encoding: {
              x,
              y: { field: "value", type: "quantitative", title: null, axis: yAxis, scale: { zero: false } },
              color,
              tooltip: [{ field: "run" }, { field: "step" }, { field: "value", format: ".4~g" }],
            },
          },
        ];
  return {
    id: "training_logs",
    title: "Training logs",
    description:
      "The runs' train_log.jsonl side by side, one panel per quantity" +
      (binned ? `; logs longer than ${MAX_LOG_POINTS} steps are averaged over consecutive steps` : "") +
      (smooth > 0
        ? `; thin lines are per ${binned ? "point" : "step"}, thick lines a centred moving mean over ${2 * smooth + 1} points.`
        : "."),
    spec: base("Training logs", runs.length > 1 ? `runs side by side: ${runs.join(" vs ")}` : undefined, {
      data: { values: rows },
      facet: { field: "panel", type: "nominal", sort: order, title: null, header: { labelFontSize: 12 } },
      columns: Math.min(3, order.length),
      bounds: "flush", // align panels (and their titles) by plot area, not by axis-label extents
      spacing: { row: 36, column: 52 },
      spec: { width: 280, height: 160, layer },
      resolve: { scale: { y: "independent" } },
    }),
  };
}

/** TTRL diagnostics: how good the majority vote was as a label, per step, for every run that logged it. */
export const DIAGNOSTIC_PANELS: [string, string][] = [
  ["label_accuracy", "pseudo-label accuracy (majority vote = label)"],
  ["majority_ratio", "majority ratio (samples agreeing with the vote)"],
  ["reward_accuracy", "reward accuracy (majority reward = label reward)"],
  ["accuracy_reward", "accuracy of the samples vs labels"],
];

function diagnosticsChart(trains: TrainRun[]): ChartSpec | null {
  const { rows, order, runs } = logRows(trains, DIAGNOSTIC_PANELS);
  // the chart is about the vote: without pseudo-label accuracy or majority ratio there is nothing to show
  if (!rows.some((r) => r.panel === DIAGNOSTIC_PANELS[0][1] || r.panel === DIAGNOSTIC_PANELS[1][1]))
    return null;
  const maxSteps = Math.max(
    ...runs.map((r) => rows.filter((x) => x.run === r && x.panel === order[0]).length),
  );
  const smooth = smoothWindow(maxSteps);
  const color = runColor(runs);
  const x = STEP_X;
  const y = {
    field: "value",
    type: "quantitative",
    title: null,
    scale: { domain: [0, 1] },
    axis: { format: "%", tickCount: 5 },
  };
  const tooltip = [
    { field: "run" },
    { field: "step" },
    { field: "panel", title: "quantity" },
    { field: "value", format: ".1%" },
  ];
  const layer: VlSpec[] =
    smooth > 0
      ? [
          { mark: { type: "line", strokeWidth: 1, opacity: 0.3 }, encoding: { x, y, color } },
          {
            transform: [
              {
                window: [{ op: "mean", field: "value", as: "smoothed" }],
                frame: [-smooth, smooth],
                groupby: ["run"],
                sort: [{ field: "step", order: "ascending" }],
              },
            ],
            mark: { type: "line", strokeWidth: 2.2 },
            encoding: { x, y: { ...y, field: "smoothed" }, color, tooltip },
          },
        ]
      : [{ mark: { type: "line", strokeWidth: 2, point: { size: 30 } }, encoding: { x, y, color, tooltip } }];
  return {
    id: "ttrl_diagnostics",
    title: "TTRL diagnostics",
    description:
      "Per training step, for each run (the label-trained run computes the same vote without using it): how often the majority vote of a prompt's samples equalled the label (pseudo-label accuracy), the share of samples that agreed with the vote (majority ratio), how often a sample's majority reward equalled the reward the label would have given (reward accuracy), and the samples' accuracy against the labels." +
      (smooth > 0
        ? ` Thin lines per step, thick lines a centred moving mean over ${2 * smooth + 1} points.`
        : ""),
    spec: base("TTRL diagnostics", "how good the majority vote was as a label, per step", {
      data: { values: rows },
      facet: { field: "panel", type: "nominal", sort: order, title: null, header: { labelFontSize: 12 } },
      columns: Math.min(2, order.length),
      bounds: "flush",
      spacing: { row: 36, column: 52 },
      spec: { width: 320, height: 170, layer },
    }),
  };
}

/** All charts for the loaded runs; charts without data are left out with a note. */
export function buildCharts(runs: LoadedRuns, stats: EvalStats | null = null): ChartSet {
  const charts: ChartSpec[] = [];
  const notes: string[] = [];
  const { evals, trains } = runs;
  if (evals.length > 0) {
    const v = validChart(evals);
    if (v) charts.push(v);
    else notes.push("No valid ratios in the eval folders' metrics.json: no validity chart.");
    const c = correctChart(evals);
    if (c.chart) charts.push(c.chart);
    else
      notes.push(
        "No eval folder has labels, so correctness metrics are absent: no correctness or pass@k/cons@k charts.",
      );
    if (c.chart && c.unlabeled.length > 0)
      notes.push(`No labels (correctness absent, not zero) for: ${c.unlabeled.join(", ")}.`);
    for (const mode of MODES) {
      const k = kChart(evals, mode, stats);
      if (k) charts.push(k);
    }
  } else notes.push("No eval folders (metrics.json) among the runs: no evaluation charts.");
  if (trains.length > 0) {
    const d = diagnosticsChart(trains);
    if (d) charts.push(d);
    else notes.push("No train log has pseudo-label accuracy or majority ratio: no TTRL diagnostics chart.");
    const t = trainChart(trains);
    if (t) charts.push(t);
    else notes.push("The train logs hold no plottable values: no training chart.");
  } else notes.push("No train run folders (train_log.jsonl) among the runs: no training-log chart.");
  return { charts, notes };
}
