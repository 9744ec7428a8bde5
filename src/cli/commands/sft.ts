import type { Command } from "commander";
import { SCHEDULER_TYPES } from "../../train/optim.ts";
import { SFT_DEFAULTS, type SftConfig } from "../../train/sft.ts";
import { UsageError } from "../../util/errors.ts";
import {
  computeDtypeOption,
  deviceOption,
  parseChoice,
  parseFloatOption,
  parseIntOption,
} from "../options.ts";

export function register(program: Command): void {
  const d = SFT_DEFAULTS;
  program
    .command("sft")
    .description("Supervised fine-tuning on {question, solution} (prompt masked) or {text} rows")
    .requiredOption("--model <dir>", "base model folder (HF layout)")
    .requiredOption("--data <file>", "JSONL rows {question, solution} or {text}")
    .requiredOption("--out <dir>", "run folder (config.json, train_log.jsonl, checkpoints/, final/)")
    .option(
      "--resume",
      "continue the run in --out from its latest checkpoint (its saved settings; changing one that decides the weights is refused)",
    )
    .option("--overwrite", "start over in a used --out, deleting what it holds")
    .option("--prompt-template <name>", "prompt template for question rows", d.prompt_template)
    .option("--batch-size <n>", "rows per optimizer step", parseIntOption("--batch-size", 1), d.batch_size)
    .option(
      "--gradient-accumulation-steps <n>",
      "micro-batches per optimizer step",
      parseIntOption("--gradient-accumulation-steps", 1),
      d.gradient_accumulation_steps,
    )
    .option(
      "--learning-rate <x>",
      "peak learning rate",
      parseFloatOption("--learning-rate", 0),
      d.learning_rate,
    )
    .option("--weight-decay <x>", "AdamW weight decay", parseFloatOption("--weight-decay", 0), d.weight_decay)
    .option(
      "--lr-scheduler-type <name>",
      `schedule (${SCHEDULER_TYPES.join("|")})`,
      parseChoice("--lr-scheduler-type", SCHEDULER_TYPES),
      d.lr_scheduler_type,
    )
    .option(
      "--warmup-ratio <x>",
      "warmup share of all steps",
      parseFloatOption("--warmup-ratio", 0, 1),
      d.warmup_ratio,
    )
    .option(
      "--warmup-steps <n>",
      "warmup steps (overrides --warmup-ratio when > 0)",
      parseIntOption("--warmup-steps", 0),
      d.warmup_steps,
    )
    .option(
      "--max-grad-norm <x>",
      "gradient clipping (0: off)",
      parseFloatOption("--max-grad-norm", 0),
      d.max_grad_norm,
    )
    .option(
      "--num-train-epochs <x>",
      "epochs (when --max-steps is -1)",
      parseFloatOption("--num-train-epochs", 0),
      d.num_train_epochs,
    )
    .option(
      "--max-steps <n>",
      "optimizer steps (-1: by epochs)",
      parseIntOption("--max-steps", -1),
      d.max_steps,
    )
    .option(
      "--max-length <n>",
      "longest example in tokens (0: model context)",
      parseIntOption("--max-length", 0),
      d.max_length,
    )
    .option(
      "--save-steps <n>",
      "checkpoint every n steps (0: only at the end)",
      parseIntOption("--save-steps", 0),
      d.save_steps,
    )
    .option(
      "--save-total-limit <n>",
      "checkpoints kept (0: all)",
      parseIntOption("--save-total-limit", 0),
      d.save_total_limit,
    )
    .option(
      "--save-dtype <d>",
      "dtype of final/ (F32|BF16|F16)",
      parseChoice("--save-dtype", ["F32", "BF16", "F16"] as const),
      d.save_dtype,
    )
    .option("--seed <n>", "data order seed", parseIntOption("--seed", 0), d.seed)
    .option(
      "--threads <n>",
      "engine threads (default: TTRL_THREADS or the CPU count)",
      parseIntOption("--threads", 1, 256),
    )
    .addHelpText(
      "after",
      "\nExample:\n  ttrl sft --model models/tiny --data data/sft.jsonl --out runs/sft --max-steps 200\n",
    )
    .addOption(deviceOption())
    .addOption(computeDtypeOption())
    .action(async (o, cmd: Command) => {
      let cfg: SftConfig = {
        ...d,
        model: o.model,
        data: o.data,
        seed: o.seed,
        prompt_template: o.promptTemplate,
        batch_size: o.batchSize,
        gradient_accumulation_steps: o.gradientAccumulationSteps,
        learning_rate: o.learningRate,
        weight_decay: o.weightDecay,
        lr_scheduler_type: o.lrSchedulerType,
        warmup_ratio: o.warmupRatio,
        warmup_steps: o.warmupSteps,
        max_grad_norm: o.maxGradNorm,
        num_train_epochs: o.numTrainEpochs,
        max_steps: o.maxSteps,
        max_length: o.maxLength,
        save_steps: o.saveSteps,
        save_total_limit: o.saveTotalLimit,
        save_dtype: o.saveDtype,
      };
      if (o.resume && o.overwrite) throw new UsageError("--resume and --overwrite exclude each other");
      const { resumeLayer, runSft } = await import("../../train/run.ts");
      if (o.resume) {
        // The saved run's settings, except those given on this command line.
        const saved = resumeLayer(o.out).values;
        const given = (k: string) =>
          cmd.getOptionValueSource(k.replace(/_([a-z])/g, (_, x: string) => x.toUpperCase())) === "cli";
        cfg = { ...cfg, ...Object.fromEntries(Object.entries(saved).filter(([k]) => k in d && !given(k))) };
      }
      if (cfg.max_steps === 0) throw new UsageError("--max-steps must be -1 or ≥ 1");
      if (cfg.batch_size % cfg.gradient_accumulation_steps !== 0)
        throw new UsageError(
          `--batch-size (${cfg.batch_size}) must be divisible by --gradient-accumulation-steps (${cfg.gradient_accumulation_steps})`,
        );
      const { getTemplate } = await import("../../prompts/index.ts");
      try {
        getTemplate(cfg.prompt_template);
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      const res = await runSft({
        config: cfg,
        out: o.out,
        resume: Boolean(o.resume),
        overwrite: Boolean(o.overwrite),
        threads: o.threads,
      });
      const last = res.log[res.log.length - 1];
      process.stderr.write(
        `sft: ${res.steps} steps (${res.log.length} in this run) on ${res.rows} rows in ${res.seconds.toFixed(1)} s, ${res.threads} thread(s); final loss ${last ? (last.loss as number).toFixed(4) : "-"}\nfinal model: ${o.out}/final\n`,
      );
    });
}
