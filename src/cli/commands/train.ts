import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { parse as parseYaml } from "yaml";
import { ENGINES, splitEngineLayers, TRL_DEFAULTS, TRL_KEYS } from "../../engines/trl/options.ts";
import {
  flagName,
  GRPO_DEFAULTS,
  GRPO_KEYS,
  type GrpoConfig,
  resolveGrpoConfig,
} from "../../train/config.ts";
import { UsageError } from "../../util/errors.ts";
import { deviceOption } from "../options.ts";

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
    .option("--resume", "continue the run in --out from its latest checkpoint (same settings as saved)");
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
  cmd.action(async (o: Record<string, unknown>) => {
    const out = String(o.out);
    const layers: { where: string; values: Record<string, unknown> }[] = [];
    if (o.resume) {
      const saved = join(out, "config.json");
      if (!existsSync(saved)) throw new UsageError(`--resume: ${saved} not found (nothing to resume)`);
      const v = JSON.parse(readFileSync(saved, "utf8")) as Record<string, unknown>;
      delete v.total_steps;
      layers.push({ where: saved, values: v });
    }
    if (o.config) {
      const file = String(o.config);
      if (!existsSync(file)) throw new UsageError(`--config: ${file} not found`);
      let v: unknown;
      try {
        v = parseYaml(readFileSync(file, "utf8"));
      } catch (e) {
        throw new UsageError(`${file}: invalid YAML (${(e as Error).message})`);
      }
      if (v !== null && (typeof v !== "object" || Array.isArray(v)))
        throw new UsageError(`${file}: expected a mapping of settings`);
      layers.push({ where: file, values: (v ?? {}) as Record<string, unknown> });
    }
    const flags: Record<string, unknown> = {};
    for (const key of [...Object.keys(GRPO_KEYS), "engine", ...Object.keys(TRL_KEYS)]) {
      const v = o[camel(key)];
      if (v === undefined) continue;
      flags[key] = v === true ? "true" : v;
    }
    layers.push({ where: "command line", values: flags });
    const engine = splitEngineLayers(layers);
    const cfg: GrpoConfig = resolveGrpoConfig(engine.layers);
    if (!cfg.model) throw new UsageError("--model is required (or `model:` in --config)");
    if (!cfg.data) throw new UsageError("--data is required (or `data:` in --config)");
    if (!o.resume && !flags.reward && !layers.some((l) => l.values.reward !== undefined))
      throw new UsageError("--reward is required: accuracy or majority");

    const { readTrainRows } = await import("../../train/data.ts");
    const rows = await readTrainRows(cfg.data);
    if (engine.engine === "trl") {
      const { trainTrl } = await import("../../engines/trl/index.ts");
      const res = await trainTrl(
        { config: cfg, trl: engine.trl, rows, outDir: out, dataFile: cfg.data, resume: Boolean(o.resume) },
        engine.trlSetBy.has("num_processes"),
      );
      const last = res.log[res.log.length - 1] ?? {};
      const f = (k: string) => (typeof last[k] === "number" ? (last[k] as number).toFixed(3) : "-");
      process.stderr.write(
        `trained ${res.steps} steps (${res.log.length} in this run) on ${rows.length} rows with reward ${cfg.reward} on engine trl in ${res.wallSeconds.toFixed(1)} s (reward service ${res.reward.seconds.toFixed(2)} s over ${res.reward.requests} requests); last step: reward ${f("reward")}, accuracy_reward ${f("accuracy_reward")}, majority_ratio ${f("majority_ratio")}\nfinal model: ${res.finalDir}\n`,
      );
      return;
    }
    const { initRuntime, runtimeThreads } = await import("../../runtime/jax.ts");
    await initRuntime(cfg.threads > 0 ? { threads: cfg.threads } : undefined);
    const { loadPolicy } = await import("../../train/engine.ts");
    const { policy } = await loadPolicy(cfg.model, { temperature: cfg.temperature });
    const { trainGrpo } = await import("../../train/grpo.ts");
    const t0 = performance.now();
    const res = await trainGrpo({
      policy,
      rows,
      config: cfg,
      outDir: out,
      dataFile: cfg.data,
      resume: Boolean(o.resume),
    });
    const secs = (performance.now() - t0) / 1000;
    const last = res.log[res.log.length - 1] ?? {};
    const f = (k: string) => (typeof last[k] === "number" ? (last[k] as number).toFixed(3) : "-");
    process.stderr.write(
      `trained ${res.steps} steps (${res.log.length} in this run) on ${rows.length} rows with reward ${cfg.reward} in ${secs.toFixed(1)} s, ${runtimeThreads()} thread(s); last step: reward ${f("reward")}, accuracy_reward ${f("accuracy_reward")}, majority_ratio ${f("majority_ratio")}\nfinal model: ${res.finalDir}\n`,
    );
  });
}
