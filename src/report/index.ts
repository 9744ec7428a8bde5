/**
 * `ttrl report`: eval folders and train run folders → one self-contained report.html plus a PNG of every chart.
 *
 *   const r = await buildReport({ runs: ["runs/exp"], out: "runs/exp/report" });
 *   // r.html = ".../report.html", r.pngs = [".../png/valid_generation_ratios.png", ...]
 */
import { rm } from "node:fs/promises";
import { join, relative } from "node:path";
import { writeFileAtomic } from "../io/atomic.ts";
import { createProgress } from "../util/progress.ts";
import { buildHtml, type PageChart } from "./html.ts";
import { type LoadedRuns, type LoadOptions, loadRuns } from "./load.ts";
import { svgToPng, toSvg, toVega } from "./render.ts";
import { buildCharts, CHART_IDS, type ChartSpec } from "./specs.ts";
import { type EvalStats, evalStats } from "./stats.ts";

export { discoverRuns, loadRuns } from "./load.ts";
export { buildCharts } from "./specs.ts";
export { evalStats, findings } from "./stats.ts";
export type { ChartSpec, EvalStats, LoadedRuns };

export interface ReportOptions extends LoadOptions {
  /** Eval folders, train run folders, or parents of either (searched recursively). */
  runs: string[];
  /** Output folder: report.html and png/<chart>.png. */
  out: string;
  title?: string;
  /** PNG pixels per SVG pixel (default 2). */
  pngScale?: number;
  /** Skip the PNGs (HTML only). */
  noPng?: boolean;
}

export interface ReportResult {
  html: string;
  pngs: { id: string; path: string; width: number; height: number }[];
  charts: ChartSpec[];
  notes: string[];
  evals: string[];
  trains: string[];
  /** Question-level bootstrap statistics of the labelled evals (null without any). */
  stats: EvalStats | null;
}

/** Bootstrap statistics of the evals that have labels (base first), or null with a note why not. */
export async function statsFor(runs: LoadedRuns, notes: string[]): Promise<EvalStats | null> {
  const labelled = runs.evals.filter((e) => e.metrics.flexible.accuracy !== null);
  if (labelled.length === 0) return null;
  try {
    return await evalStats(labelled.map((e) => ({ label: e.label, dir: e.dir })));
  } catch (e) {
    notes.push(
      `No confidence intervals: the per-question results could not be read (${(e as Error).message}).`,
    );
    return null;
  }
}

export async function buildReport(opts: ReportOptions): Promise<ReportResult> {
  const runs = await loadRuns(opts.runs, opts);
  const statNotes: string[] = [];
  const stats = await statsFor(runs, statNotes);
  const { charts, notes } = buildCharts(runs, stats);
  notes.push(...statNotes);
  const pngs: ReportResult["pngs"] = [];
  const pageCharts: PageChart[] = [];
  const bar = createProgress({ label: "report", total: charts.length, unit: "charts", fields: ["chart"] });
  try {
    for (const c of charts) {
      const vg = toVega(c.id, c.spec);
      let png: string | null = null;
      if (!opts.noPng) {
        const svg = await toSvg(c.id, vg);
        const img = svgToPng(svg, opts.pngScale ?? 2);
        const path = join(opts.out, "png", `${c.id}.png`);
        await writeFileAtomic(path, img.png);
        pngs.push({ id: c.id, path, width: img.width, height: img.height });
        png = relative(opts.out, path).split("\\").join("/");
      }
      pageCharts.push({ id: c.id, title: c.title, description: c.description, vega: vg, png });
      bar.tick(1, { chart: c.id });
    }
  } finally {
    bar.stop();
  }
  const html = buildHtml({
    title: opts.title ?? "TTRL report",
    runs,
    charts: pageCharts,
    notes,
    stats,
    generatedAt: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
  });
  const htmlPath = join(opts.out, "report.html");
  await writeFileAtomic(htmlPath, html);
  // a PNG of ours from an earlier report whose chart is not in this one would be stale: remove it
  const made = new Set(pngs.map((p) => `${p.id}.png`));
  for (const id of CHART_IDS)
    if (!made.has(`${id}.png`)) await rm(join(opts.out, "png", `${id}.png`), { force: true });
  return {
    html: htmlPath,
    pngs,
    charts,
    notes,
    evals: runs.evals.map((e) => e.dir),
    trains: runs.trains.map((t) => t.dir),
    stats,
  };
}
