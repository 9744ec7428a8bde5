/**
 * The self-contained report page: the vega runtime, the shipped font and every chart's compiled spec with its
 * data are inlined, so report.html opens offline from anywhere.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { EvalRun, LoadedRuns, TrainRun } from "./load.ts";
import { FONT_FILES } from "./render.ts";
import { FONT_FAMILY, SERIES_COLORS } from "./specs.ts";
import { type DiffMetric, type EvalStats, findDiff, findings } from "./stats.ts";

export interface PageChart {
  id: string;
  title: string;
  description: string;
  vega: unknown;
  png: string | null;
}

export function escapeHtml(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c,
  );
}

/** JSON safe to put inside a <script> element. */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, "\\u003c")
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");
}

let vegaSource: string | null = null;
/** The browser build of vega (UMD, defines `window.vega`) from the installed package. */
export function vegaBrowserScript(): string {
  if (vegaSource === null) {
    const req = createRequire(import.meta.url);
    const entry = req.resolve("vega"); // …/vega/build/vega.module.js
    vegaSource = readFileSync(join(dirname(entry), "vega.min.js"), "utf8").replace(
      /<\/script/gi,
      "<\\/script",
    );
  }
  return vegaSource;
}

function fontFace(weight: number, file: string): string {
  const b64 = readFileSync(file).toString("base64");
  return `@font-face{font-family:"${FONT_FAMILY}";font-weight:${weight};font-style:normal;src:url(data:font/ttf;base64,${b64}) format("truetype");}`;
}

const pct = (v: number | null | undefined, digits = 1) =>
  v === null || v === undefined
    ? '<span class="absent" title="absent (no labels)">—</span>'
    : `${(v * 100).toFixed(digits)}%`;

function maxK(rec: Record<string, number | null> | null): string | null {
  if (!rec) return null;
  const ks = Object.keys(rec)
    .filter((k) => rec[k] !== null)
    .map(Number)
    .sort((a, b) => a - b);
  return ks.length ? String(ks[ks.length - 1]) : null;
}

function summaryTable(evals: EvalRun[], stats: EvalStats | null = null): string {
  if (evals.length === 0) return "";
  const kMax =
    maxK(evals.map((e) => e.metrics.strict["cons@k"]).find((r) => maxK(r) !== null) ?? null) ?? null;
  const head = [
    "model",
    "questions",
    "samples / q",
    "valid",
    "accuracy",
    "pass@1",
    ...(kMax ? [`cons@${kMax}`] : []),
    ...(stats ? ["accuracy | valid"] : []),
  ];
  const pair = (a: number | null | undefined, b: number | null | undefined) =>
    `${pct(a)}<span class="sep"> / </span>${pct(b)}`;
  const rows = evals.map((e, i) => {
    const m = e.metrics;
    const perQ = m.n_questions && m.n_completions ? (m.n_completions / m.n_questions).toFixed(0) : "—";
    const cells = [
      `<span class="swatch" style="background:${SERIES_COLORS[i % SERIES_COLORS.length]}"></span>${escapeHtml(e.label)}`,
      m.n_questions ?? "—",
      perQ,
      pair(m.strict.valid_ratio, m.flexible.valid_ratio),
      pair(m.strict.accuracy, m.flexible.accuracy),
      pair(m.strict["pass@k"]?.["1"], m.flexible["pass@k"]?.["1"]),
      ...(kMax ? [pair(m.strict["cons@k"]?.[kMax], m.flexible["cons@k"]?.[kMax])] : []),
      ...(stats
        ? (() => {
            const st = stats.models.find((x) => x.label === e.label);
            return [
              pair(st?.modes.strict.accuracyGivenValid?.value, st?.modes.flexible.accuracyGivenValid?.value),
            ];
          })()
        : []),
    ];
    return `<tr>${cells.map((c, j) => `<td${j > 0 ? ' class="num"' : ""}>${c}</td>`).join("")}</tr>`;
  });
  return `<section><h2>Summary</h2><div class="table-wrap"><table class="summary"><thead><tr>${head
    .map((h, j) => `<th${j > 0 ? ' class="num"' : ""}>${escapeHtml(h)}</th>`)
    .join("")}</tr></thead><tbody>${rows.join("")}</tbody></table></div>
<p class="note">Each cell: strict / flexible parsing. Accuracy is over all sampled completions; pass@k and cons@k as defined by <code>ttrl grade</code>${stats ? "; accuracy | valid: correct answers among the completions whose answer parsed (the gain that is not format)" : ""}. — marks a metric that is absent (no labels), not zero.</p></section>`;
}

const signedPts = (x: number) => {
  const t = (Math.abs(x) * 100).toFixed(1);
  return `${x < 0 && t !== "0.0" ? "−" : "+"}${t}`;
};

/** Each model minus the base with its paired-bootstrap 95% interval, flexible and strict. */
function diffsTable(stats: EvalStats | null): string {
  if (!stats || stats.models.length < 2 || stats.diffs.length === 0) return "";
  const kMax = stats.ks[stats.ks.length - 1];
  const metrics: [DiffMetric, string][] = [
    ["pass@1", "pass@1"],
    ...(kMax > 1 ? ([[`cons@${kMax}`, `cons@${kMax}`]] as [DiffMetric, string][]) : []),
    ["valid", "valid"],
    ["accuracy|valid", "accuracy | valid"],
  ];
  const rows: string[] = [];
  stats.models.slice(1).forEach((m, i) => {
    for (const mode of ["flexible", "strict"] as const) {
      const cells = metrics.map(([metric]) => {
        const d = findDiff(stats, m.label, mode, metric);
        if (!d) return '<span class="absent">—</span>';
        const cls = d.excludesZero ? (d.diff > 0 ? "up" : "down") : "flat";
        return `<span class="diff ${cls}">${signedPts(d.diff)}</span> <span class="ci">[${signedPts(d.lo)}, ${signedPts(d.hi)}]</span>`;
      });
      rows.push(
        `<tr><td>${mode === "flexible" ? `<span class="swatch" style="background:${SERIES_COLORS[(i + 1) % SERIES_COLORS.length]}"></span>${escapeHtml(m.label)}` : ""}</td><td>${mode}</td>${cells.map((c) => `<td class="num">${c}</td>`).join("")}</tr>`,
      );
    }
  });
  return `<section><h2>Differences from the base model</h2><div class="table-wrap"><table class="diffs"><thead><tr><th>model</th><th>parsing</th>${metrics
    .map(([, h]) => `<th class="num">Δ ${escapeHtml(h)} (points)</th>`)
    .join("")}</tr></thead><tbody>${rows.join("")}</tbody></table></div>
<p class="note">Model minus ${escapeHtml(stats.models[0].label)} on the same ${stats.models[1]?.nQuestions ?? ""} questions, in percentage points, with the 95% interval of a paired bootstrap over questions (${stats.resamples} resamples: the same questions drawn for both models). Bold green / red: the interval excludes 0. Valid: completions whose answer parses (the format); accuracy | valid: correct among those.</p></section>`;
}

function findingsSection(stats: EvalStats | null): string {
  if (!stats) return "";
  const lines = findings(stats);
  if (lines.length === 0) return "";
  return `<section class="findings"><h2>Findings</h2><div class="card">${lines.map((l) => `<p>${escapeHtml(l)}</p>`).join("")}</div></section>`;
}

function clip(text: string, n: number): string {
  return text.length <= n ? text : `${text.slice(0, n)}…`;
}

function completionCell(text: string): string {
  const short = clip(text, 260);
  if (short === text) return `<pre class="gen">${escapeHtml(text)}</pre>`;
  return `<details><summary><pre class="gen">${escapeHtml(short)}</pre></summary><pre class="gen full">${escapeHtml(text)}</pre></details>`;
}

function verdict(c: boolean | null | undefined): string {
  if (c === true) return '<span class="tag ok">correct</span>';
  if (c === false) return '<span class="tag bad">wrong</span>';
  return '<span class="absent">—</span>';
}

function answerCell(
  g: { valid: boolean; answer: string | null; correct: boolean | null } | undefined,
): string {
  if (!g) return '<span class="absent">—</span>';
  if (!g.valid) return '<span class="tag invalid">invalid</span>';
  return `<code>${escapeHtml(g.answer ?? "")}</code> ${verdict(g.correct)}`;
}

/** Flexible answers of all k samples with their counts, most voted first; the label's answer marked. */
function votesCell(ex: EvalRun["examples"][number]): string {
  const counts = new Map<string, { n: number; correct: boolean }>();
  let invalid = 0;
  let parsed = 0;
  for (const c of ex.completions) {
    const f = c.flexible;
    if (!f) continue;
    parsed++;
    if (!f.valid || f.answer === null) {
      invalid++;
      continue;
    }
    const e = counts.get(f.answer) ?? { n: 0, correct: false };
    counts.set(f.answer, { n: e.n + 1, correct: e.correct || f.correct === true });
  }
  if (parsed === 0) return '<span class="absent">—</span>';
  const parts = [...counts]
    .sort((a, b) => b[1].n - a[1].n)
    .map(
      ([a, { n, correct }]) =>
        `<span class="vote${correct ? " ok" : ""}"><code>${escapeHtml(a)}</code>&nbsp;×${n}</span>`,
    );
  if (invalid > 0) parts.push(`<span class="vote invalid">invalid&nbsp;×${invalid}</span>`);
  return parts.join(" ");
}

function evalExamples(evals: EvalRun[], perModel: number): string {
  if (!evals.some((e) => e.examples.length > 0)) return "";
  // the same questions for every model, in the order of the first model's file
  const ids: string[] = [];
  for (const e of evals)
    for (const ex of e.examples) if (!ids.includes(ex.id) && ids.length < perModel) ids.push(ex.id);
  const rows: string[] = [];
  for (const id of ids)
    evals.forEach((e, i) => {
      const ex = e.examples.find((x) => x.id === id);
      if (!ex || ex.completions.length === 0) return;
      const c = ex.completions[0];
      rows.push(
        `<tr><td><code>${escapeHtml(id)}</code></td><td><span class="swatch" style="background:${SERIES_COLORS[i % SERIES_COLORS.length]}"></span>${escapeHtml(e.label)}</td><td class="num"><code>${escapeHtml(ex.label ?? "—")}</code></td><td>${completionCell(c.text)}</td><td>${answerCell(c.strict)}</td><td>${answerCell(c.flexible)}</td><td class="votes">${votesCell(ex)}</td></tr>`,
      );
    });
  return `<h3>Evaluation: first sample per question, and the votes of all samples</h3><div class="table-wrap"><table class="examples"><thead><tr><th>question</th><th>model</th><th>label</th><th>completion</th><th>strict answer</th><th>flexible answer</th><th title="flexible answers of all samples of the question, most voted first; green: equals the label">votes (all samples)</th></tr></thead><tbody>${rows.join("")}</tbody></table></div>`;
}

function fmtNum(v: number | null): string {
  if (v === null) return "—";
  return Number.isInteger(v) ? String(v) : v.toFixed(3);
}

function trainExamples(trains: TrainRun[]): string {
  if (!trains.some((t) => t.examples.length > 0)) return "";
  const rows: string[] = [];
  trains.forEach((t, i) => {
    for (const ex of t.examples) {
      const rewards = Object.entries(ex.rewards)
        .map(([k, v]) => `<span class="kv">${escapeHtml(k)}&nbsp;${fmtNum(v)}</span>`)
        .join(" ");
      rows.push(
        `<tr><td><span class="swatch" style="background:${SERIES_COLORS[i % SERIES_COLORS.length]}"></span>${escapeHtml(t.label)}</td><td class="num">${fmtNum(ex.step)}</td><td${ex.prompt ? ` title="${escapeHtml(ex.prompt)}"` : ""}><code>${escapeHtml(ex.promptId ?? "—")}</code></td><td>${completionCell(ex.completion)}</td><td class="num"><code>${escapeHtml(ex.answer ?? "—")}</code></td><td class="num"><code>${escapeHtml(ex.pseudoLabel ?? "—")}</code></td><td class="num"><code>${escapeHtml(ex.label ?? "—")}</code></td><td>${rewards || "—"}</td><td class="num">${fmtNum(ex.advantage)}</td></tr>`,
      );
    }
  });
  return `<h3>Training: generations of the last logged step</h3><div class="table-wrap"><table class="examples"><thead><tr><th>run</th><th>step</th><th>prompt</th><th>completion</th><th>parsed answer</th><th>pseudo-label</th><th>label</th><th>rewards</th><th>advantage</th></tr></thead><tbody>${rows.join("")}</tbody></table></div>`;
}

const CSS = `
*{box-sizing:border-box}
body{margin:0;background:#f5f6f8;color:#222;font-family:"${FONT_FAMILY}",system-ui,sans-serif;font-size:14px;line-height:1.45}
header{background:#1f2a3a;color:#fff;padding:22px 32px}
header h1{margin:0 0 4px;font-size:24px}
header p{margin:0;color:#c9d3e0;font-size:13px}
main{max-width:1280px;margin:0 auto;padding:8px 24px 48px}
section{margin-top:24px}
h2{font-size:19px;margin:0 0 10px;color:#1f2a3a}
h3{font-size:15px;margin:18px 0 8px;color:#333}
.card{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.08);padding:16px 18px;margin:0 0 20px}
.card p.desc{margin:8px 0 0;color:#555;font-size:13px;max-width:900px}
.sep{color:#aaa}
.chart{overflow-x:auto;min-height:40px}
.card .links{font-size:12px;color:#777}
.table-wrap{overflow-x:auto;background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.08)}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:7px 10px;border-bottom:1px solid #eceef1;text-align:left;vertical-align:top}
th{background:#f0f2f5;font-weight:bold;white-space:nowrap}
table.summary td:first-child{white-space:nowrap}
td.num,th.num{text-align:right;white-space:nowrap}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px;vertical-align:baseline}
pre.gen{margin:0;white-space:pre-wrap;word-break:break-word;font-family:"DejaVu Sans Mono",ui-monospace,monospace;font-size:12px;max-width:560px;display:inline}
pre.gen.full{display:block;margin-top:6px;padding-top:6px;border-top:1px dashed #ccc}
details summary{cursor:pointer}
.tag{display:inline-block;padding:0 6px;border-radius:9px;font-size:11px}
.tag.ok{background:#dcf2dc;color:#1d6b1d}.tag.bad{background:#fbe0e0;color:#9b1c1c}.tag.invalid{background:#eee;color:#666}
.kv{display:inline-block;background:#eef2f8;border-radius:4px;padding:0 5px;margin:1px 0;font-size:12px;white-space:nowrap}
.absent{color:#999}
.vote{display:inline-block;background:#f0f2f5;border-radius:4px;padding:0 5px;margin:1px 0;font-size:12px;white-space:nowrap}.vote.ok{background:#dcf2dc;color:#1d6b1d}.vote.invalid{color:#888}
td.votes{min-width:140px}
.note{color:#666;font-size:12.5px}
ul.notes{color:#8a5a00;background:#fff8e6;border-radius:6px;padding:8px 12px 8px 28px}
code{font-family:"DejaVu Sans Mono",ui-monospace,monospace;font-size:12px}
#ttrl-tooltip{position:fixed;display:none;z-index:10;pointer-events:none;background:rgba(255,255,255,.97);border:1px solid #ccd;border-radius:6px;box-shadow:0 2px 8px rgba(0,0,0,.15);padding:6px 8px;font-size:12px}
#ttrl-tooltip table{width:auto;font-size:12px}#ttrl-tooltip th,#ttrl-tooltip td{padding:1px 6px;border:0;background:none}#ttrl-tooltip th{color:#666;font-weight:normal;text-align:right}
footer{color:#888;font-size:12px;text-align:center;padding:16px}
.findings .card p{margin:0 0 8px;max-width:1000px}.findings .card p:last-child{margin:0}
.diff.up{color:#1d6b1d;font-weight:bold}.diff.down{color:#9b1c1c;font-weight:bold}.diff.flat{color:#555}
.ci{color:#888;font-size:12px}
`;

const BOOT = `
(async function () {
  var data = JSON.parse(document.getElementById("report-data").textContent);
  try {
    await Promise.all([document.fonts.load('12px "${FONT_FAMILY}"'), document.fonts.load('bold 12px "${FONT_FAMILY}"')]);
  } catch (e) {}
  var tip = document.createElement("div");
  tip.id = "ttrl-tooltip";
  document.body.appendChild(tip);
  function esc(v) {
    return String(v).replace(/[&<>"]/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c];
    });
  }
  function tooltip(handler, event, item, value) {
    if (value == null || value === "" || !event) {
      tip.style.display = "none";
      return;
    }
    tip.innerHTML =
      "<table>" +
      (typeof value === "object"
        ? Object.keys(value).map(function (k) {
            return "<tr><th>" + esc(k) + "</th><td>" + esc(value[k]) + "</td></tr>";
          }).join("")
        : "<tr><td>" + esc(value) + "</td></tr>") +
      "</table>";
    tip.style.display = "block";
    var x = event.clientX + 14, y = event.clientY + 14;
    if (x + tip.offsetWidth > window.innerWidth - 8) x = event.clientX - tip.offsetWidth - 14;
    if (y + tip.offsetHeight > window.innerHeight - 8) y = event.clientY - tip.offsetHeight - 14;
    tip.style.left = Math.max(4, x) + "px";
    tip.style.top = Math.max(4, y) + "px";
  }
  var results = [];
  for (var i = 0; i < data.charts.length; i++) {
    var c = data.charts[i];
    var el = document.getElementById("chart-" + c.id);
    try {
      var view = new vega.View(vega.parse(c.vega), { renderer: "svg", container: el, hover: true, tooltip: tooltip });
      await view.runAsync();
      results.push({ id: c.id, ok: true });
    } catch (err) {
      el.textContent = "This chart failed to render: " + (err && err.message ? err.message : err);
      console.error("chart " + c.id + ":", err);
      results.push({ id: c.id, ok: false, error: String(err) });
    }
  }
  window.__ttrlReport = { done: true, results: results };
  document.documentElement.setAttribute("data-rendered", "true");
})();
`;

export function buildHtml(opts: {
  title: string;
  runs: LoadedRuns;
  charts: PageChart[];
  notes: string[];
  generatedAt: string;
  examplesPerModel?: number;
  stats?: EvalStats | null;
}): string {
  const { runs, charts } = opts;
  const runList = [
    ...runs.evals.map((e) => `eval: ${e.label}`),
    ...runs.trains.map((t) => `train: ${t.label}${t.reward ? ` (${t.reward} reward)` : ""}`),
  ];
  const chartCards = charts
    .map(
      (c) =>
        `<div class="card" id="card-${escapeHtml(c.id)}"><div class="chart" id="chart-${escapeHtml(c.id)}" data-chart-id="${escapeHtml(c.id)}" aria-label="${escapeHtml(c.title)}"></div><p class="desc">${escapeHtml(c.description)}${
          c.png
            ? ` <span class="links">Static image: <a href="${escapeHtml(c.png)}">${escapeHtml(c.png)}</a></span>`
            : ""
        }</p></div>`,
    )
    .join("\n");
  const notes = opts.notes.length
    ? `<ul class="notes">${opts.notes.map((n) => `<li>${escapeHtml(n)}</li>`).join("")}</ul>`
    : "";
  const ex = evalExamples(runs.evals, opts.examplesPerModel ?? 3) + trainExamples(runs.trains);
  const skipped = runs.trains.filter((t) => t.skippedLogLines > 0);
  const skippedNote = skipped.length
    ? `<p class="note">Malformed train-log lines skipped: ${skipped.map((t) => `${escapeHtml(t.label)} ${t.skippedLogLines}`).join(", ")}.</p>`
    : "";
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="ttrl report">
<title>${escapeHtml(opts.title)}</title>
<style>${fontFace(400, FONT_FILES.regular)}${fontFace(700, FONT_FILES.bold)}${CSS}</style>
<script>${vegaBrowserScript()}</script>
</head>
<body>
<header><h1>${escapeHtml(opts.title)}</h1><p>${escapeHtml(runList.join(" · "))}</p></header>
<main>
${findingsSection(opts.stats ?? null)}
${notes}
${summaryTable(runs.evals, opts.stats ?? null)}
${diffsTable(opts.stats ?? null)}
<section><h2 style="margin-bottom:14px">Charts</h2>
${chartCards || '<p class="note">No charts: see the notes above.</p>'}
</section>
${ex ? `<section><h2>Example generations</h2>${ex}</section>` : ""}
${skippedNote}
</main>
<footer>Made by ttrl report on ${escapeHtml(opts.generatedAt)} · charts: Vega ${escapeHtml(vegaVersion())}</footer>
<script type="application/json" id="report-data">${scriptJson({ charts: charts.map((c) => ({ id: c.id, vega: c.vega })) })}</script>
<script>${BOOT}</script>
</body>
</html>
`;
}

function vegaVersion(): string {
  try {
    const req = createRequire(import.meta.url);
    const entry = req.resolve("vega");
    return (
      JSON.parse(readFileSync(join(dirname(entry), "..", "package.json"), "utf8")) as { version: string }
    ).version;
  } catch {
    return "";
  }
}
