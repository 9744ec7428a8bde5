/** `ttrl report --runs DIR... --out DIR [--title T]`: the HTML report and PNG charts of evals and train runs. */
import type { Command } from "commander";
import { parseFloatOption } from "../options.ts";

export function register(program: Command): void {
  program
    .command("report")
    .description(
      "Make one self-contained report.html (opens offline) and a PNG of every chart from eval folders " +
        "(metrics.json, eval_config.json, generations.jsonl, details.jsonl) and train run folders " +
        "(train_log.jsonl, config.json, generations.jsonl); a parent folder is searched for both",
    )
    .requiredOption(
      "--runs <dir...>",
      "eval folders, train run folders, or folders holding them (e.g. an experiment)",
    )
    .requiredOption("--out <dir>", "output folder: report.html and png/<chart>.png")
    .option("--title <text>", "report title", "TTRL report")
    .option("--png-scale <x>", "PNG pixels per chart pixel", parseFloatOption("--png-scale", 0.25, 8), 2)
    .option("--no-png", "write only report.html")
    .action(async (o: { runs: string[]; out: string; title: string; pngScale: number; png: boolean }) => {
      const { buildReport } = await import("../../report/index.ts");
      const r = await buildReport({
        runs: o.runs,
        out: o.out,
        title: o.title,
        pngScale: o.pngScale,
        noPng: !o.png,
      });
      const lines = [
        `report: ${r.evals.length} eval folder(s), ${r.trains.length} train run(s), ${r.charts.length} chart(s)`,
        `  html: ${r.html}`,
        ...r.pngs.map((p) => `  png:  ${p.path} (${p.width}x${p.height})`),
        ...r.notes.map((n) => `  note: ${n}`),
      ];
      process.stdout.write(`${lines.join("\n")}\n`);
    });
}
