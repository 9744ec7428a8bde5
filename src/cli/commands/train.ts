import type { Command } from "commander";
import { ENGINES, TRL_DEFAULTS, TRL_KEYS } from "../../engines/trl/options.ts";
import { flagName, GRPO_DEFAULTS, GRPO_KEYS } from "../../train/config.ts";
import { UsageError } from "../../util/errors.ts";
import { computeDtypeOption, deviceOption } from "../options.ts";

const EXPLICIT = new Set(["model", "data", "reward"]);

function camel(key: string): string {
  return key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
}

export function register(program: Command): void {
  const cmd = program
    .command("train")
    .description(
      "GRPO training rewarded by labels (accuracy) or by the majority vote of the model's own samples (TTRL)",
    )
    .option("--model <dir>", "base model folder (HF layout)")
    .option("--data <file>", "training rows (JSONL: id, question, answer?)")
    .option("--reward <name>", "accuracy (needs labels) or majority (TTRL, no labels)")
    .option("--config <file>", "YAML (or JSON) file with any of the settings below (TRL GRPOConfig names)")
    .requiredOption(
      "--out <dir>",
      "run folder (config.json, train_log.jsonl, generations.jsonl, checkpoints/, final/)",
    )
    .option(
      "--resume",
      "continue the run in --out from its latest checkpoint (its saved settings; changing one that decides the weights is refused)",
    )
    .option("--overwrite", "start over in a used --out, deleting what it holds");
  for (const [key, spec] of Object.entries(GRPO_KEYS)) {
    if (EXPLICIT.has(key)) continue;
    const def = (GRPO_DEFAULTS as unknown as Record<string, unknown>)[key];
    const choices = spec.choices ? ` (${spec.choices.join("|")})` : "";
    const d = def === null ? "" : ` [default: ${Array.isArray(def) ? def.join(",") : String(def)}]`;
    if (spec.kind === "bool") cmd.option(`--${flagName(key)} [bool]`, `${spec.help}${d}`);
    else cmd.option(`--${flagName(key)} <value>`, `${spec.help}${choices}${d}`);
  }
  // Engine choice and the trl engine's own settings (TRL / accelerate / peft names).
  cmd.option("--engine <name>", `training engine (${ENGINES.join("|")}) [default: jax]`);
  for (const [key, spec] of Object.entries(TRL_KEYS)) {
    const def = (TRL_DEFAULTS as unknown as Record<string, unknown>)[key];
    const d = def === null ? "" : ` [default: ${Array.isArray(def) ? def.join(",") : String(def)}]`;
    const help = `engine trl: ${spec.help}${spec.choices ? ` (${spec.choices.join("|")})` : ""}${d}`;
    if (spec.kind === "bool") cmd.option(`--${flagName(key)} [bool]`, help);
    else cmd.option(`--${flagName(key)} <value>`, help);
  }
  cmd.addHelpText(
    "after",
    `
Settings: defaults < --config file < flags. Names and defaults follow TRL's GRPOConfig where one exists.
Examples:
  ttrl train --model models/tr-math-base --data data/tr-math/train.jsonl --reward majority --out runs/ttrl
  ttrl train --model models/tr-math-base --data data/tr-math/train.jsonl --reward accuracy --config train.yml --out runs/gt
  ttrl train --out runs/ttrl --resume
`,
  );
  cmd.addOption(deviceOption());
  cmd.addOption(computeDtypeOption());
  cmd.action(async (o: Record<string, unknown>) => {
    const flags: Record<string, unknown> = {};
    for (const key of [...Object.keys(GRPO_KEYS), "engine", ...Object.keys(TRL_KEYS)]) {
      const v = o[camel(key)];
      if (v === undefined) continue;
      flags[key] = v === true ? "true" : v;
    }
    const out = String(o.out);
    const resume = Boolean(o.resume);
    if (resume && o.overwrite) throw new UsageError("--resume and --overwrite exclude each other");
    const configFile = o.config === undefined ? undefined : String(o.config);
    const { resolveTrainSettings, readSettingsFile, runGrpo } = await import("../../train/run.ts");
    const settings = resolveTrainSettings({ out, resume, configFile, flags });
    const fileReward = configFile === undefined ? undefined : readSettingsFile(configFile).reward;
    if (!resume && flags.reward === undefined && fileReward === undefined)
      throw new UsageError("--reward is required: accuracy or majority");
    // --device picks the device of ttrl's own engine; the trl engine trains on torch's devices.
    if (settings.engine === "trl" && o.device !== undefined && o.device !== "wasm")
      throw new UsageError(
        `--device ${String(o.device)} is an option of engine jax only; engine trl runs on torch's devices (CUDA when present: num_processes, accelerate_config)`,
      );
    if (settings.engine === "trl" && o.computeDtype !== undefined && o.computeDtype !== "float32")
      throw new UsageError(
        `--compute-dtype ${String(o.computeDtype)} is an option of engine jax only; engine trl computes in torch's dtypes (its bf16 option)`,
      );
    const res = await runGrpo({ ...settings, out, resume, overwrite: Boolean(o.overwrite) });
    const cfg = settings.config;
    const last = res.log[res.log.length - 1] ?? {};
    const f = (k: string) => (typeof last[k] === "number" ? (last[k] as number).toFixed(3) : "-");
    const where =
      res.engine === "trl"
        ? `on engine trl in ${res.seconds.toFixed(1)} s (reward service ${res.reward?.seconds.toFixed(2)} s over ${res.reward?.requests} requests)`
        : `in ${res.seconds.toFixed(1)} s, ${res.threads} thread(s)`;
    process.stderr.write(
      `trained ${res.steps} steps (${res.log.length} in this run) on ${res.rows} rows with reward ${cfg.reward} ${where}; last step: reward ${f("reward")}, accuracy_reward ${f("accuracy_reward")}, majority_ratio ${f("majority_ratio")}\nfinal model: ${res.finalDir}\n`,
    );
  });
}
