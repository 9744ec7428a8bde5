import { type Command, Option } from "commander";
import { selectComputeDtype, selectDevice } from "../../runtime/device.ts";
import { UsageError } from "../../util/errors.ts";
import { computeDtypeOption, deviceOption } from "../options.ts";

export function register(program: Command): void {
  program
    .command("experiment")
    .description(
      "The seed's study in one resumable command: evaluate the base model, train with accuracy and with majority (TTRL) rewards, SLERP-merge the two, evaluate all four, write the report and print a summary",
    )
    .argument(
      "[config]",
      "experiment YAML (deep-merged over the preset; default: the shipped data and base model)",
    )
    .addOption(
      new Option("--preset <name>", "settings preset").choices(["default", "quick"]).default("default"),
    )
    .option("--out <dir>", "run folder, required (re-running the same command skips finished stages)")
    .option("--force", "reuse a run folder made with another config (stages whose inputs changed run again)")
    .option("--print-config", "print the resolved config as YAML and exit")
    .addHelpText(
      "after",
      "\nExamples:\n  ttrl experiment --out runs/tr-math            # the default study (< 15 min on 2 cores)\n  ttrl experiment --preset quick --out runs/smoke # about a minute, for smoke tests\n  ttrl experiment my.yml --out runs/mine         # my.yml overrides any preset key (train:, eval:, merge:, ...)\n",
    )
    .addOption(deviceOption())
    .addOption(computeDtypeOption())
    .action(
      async (
        config: string | undefined,
        o: {
          preset: "default" | "quick";
          out?: string;
          force?: boolean;
          printConfig?: boolean;
          device?: string;
          computeDtype?: string;
        },
      ) => {
        const { loadExperimentConfig } = await import("../../experiment/config.ts");
        const cfg = loadExperimentConfig(config, o.preset);
        if (o.device === undefined && cfg.device) selectDevice(cfg.device); // --device wins over the config
        if (o.computeDtype === undefined && cfg.compute_dtype) selectComputeDtype(cfg.compute_dtype); // so does --compute-dtype
        if (o.printConfig) {
          const YAML = (await import("yaml")).default;
          process.stdout.write(YAML.stringify(cfg));
          return;
        }
        if (!o.out) throw new UsageError("--out DIR is required (the run folder)");
        const { runExperiment, formatSummary } = await import("../../experiment/index.ts");
        const { fmtTime } = await import("../../util/progress.ts");
        const r = await runExperiment({ config: cfg, out: o.out, force: o.force });
        const ran = r.stages.filter((s) => s.status !== "skipped").length;
        process.stdout.write(
          `\nexperiment ${cfg.name}: ${r.stages.length} stages (${ran} run, ${r.stages.length - ran} skipped) in ${fmtTime(r.seconds)} → ${r.out}\n` +
            (r.report ? `report: ${r.report}\n` : "") +
            `\n${formatSummary(r.summary, r.k)}` +
            (r.findings?.length ? `\n${r.findings.join("\n")}\n` : ""),
        );
      },
    );
}
