/**
 * `ttrl train --engine trl`: ttrl stays the conductor and TRL's GRPOTrainer runs the training step.
 *
 * data (ttrl's seeded order, decided here) -> spec.json -> Python (python/ttrl_trl, one process or
 * `accelerate launch`) samples with transformers / vLLM -> whole groups posted to ttrl's reward service
 * (service.ts: the jax engine's rewards) -> TRL's update -> train_log.jsonl / generations.jsonl with the jax
 * engine's keys, checkpoints/checkpoint-<TRL step>/ every save_steps, final/ (HF layout, merged full weights)
 * written atomically, DONE last. `--resume` continues from the latest checkpoint in the same order.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { parse as parseYaml } from "yaml";
import { writeJsonAtomic } from "../../io/atomic.ts";
import { loadTokenizer } from "../../model/tokenizer.ts";
import { renderPrompt } from "../../prompts/index.ts";
import { type GrpoConfig, rewardFuncs } from "../../train/config.ts";
import { DataOrder, type TrainRow } from "../../train/data.ts";
import { totalSteps } from "../../train/grpo.ts";
import { TtrlError, UsageError } from "../../util/errors.ts";
import { createProgress } from "../../util/progress.ts";
import type { TrlOptions } from "./options.ts";
import { checkPython, findPython, pythonEnv } from "./python.ts";
import { createScorer, type RewardService, startRewardService } from "./service.ts";

export { splitEngineLayers, TRL_DEFAULTS, TRL_KEYS, type TrlOptions } from "./options.ts";
export { checkPython, findPython, SETUP_COMMAND } from "./python.ts";

export interface TrlRunOptions {
  config: GrpoConfig;
  trl: TrlOptions;
  rows: TrainRow[];
  outDir: string;
  dataFile?: string;
  resume?: boolean;
  /** Start over in a used run folder (deleting what it holds); without it a used folder is refused. */
  overwrite?: boolean;
  /** Stop (as if killed) right after the checkpoint of this step, without final/. For tests. */
  stopAfter?: number;
  onStep?: (entry: Record<string, unknown>) => void;
  progressLabel?: string;
}

export interface TrlRunResult {
  steps: number;
  finalDir: string | null;
  log: Record<string, unknown>[];
  /** Reward service time and requests (for the benchmark). */
  reward: { seconds: number; requests: number };
  wallSeconds: number;
}

/** Processes the run will have (num_processes, or the accelerate config's). */
export function worldSize(trl: TrlOptions, explicitProcesses: boolean): number {
  if (trl.accelerate_config && !explicitProcesses) {
    const file = trl.accelerate_config;
    if (!existsSync(file)) throw new UsageError(`accelerate_config: ${file} not found`);
    const v = parseYaml(readFileSync(file, "utf8")) as Record<string, unknown> | null;
    const n = Number(v?.num_processes ?? 1);
    return Number.isInteger(n) && n >= 1 ? n : 1;
  }
  return trl.num_processes;
}

/** Checks that need no Python: batch shapes TRL can run, files that must exist. */
export function validateTrl(c: GrpoConfig, trl: TrlOptions, world: number): void {
  const N = c.num_generations;
  const M = c.rewarded_count ?? N;
  const gas = c.gradient_accumulation_steps;
  const gen = c.prompts_per_step * N;
  if (N < 2)
    throw new UsageError("engine trl: num_generations must be ≥ 2 (TRL's GRPOTrainer needs a group)");
  if (gen % (world * gas) !== 0)
    throw new UsageError(
      `engine trl: prompts_per_step × num_generations (${gen}) must be divisible by processes × gradient_accumulation_steps (${world} × ${gas}): TRL's per-process batch is ${gen}/(${world}×${gas})`,
    );
  if (M < N && world > 1)
    throw new UsageError(
      `engine trl: rewarded_count (${M}) < num_generations (${N}) needs num_processes 1 (the trained subset is uneven across processes, which TRL's fixed per-process micro-batches cannot take)`,
    );
  if ((c.prompts_per_step * M) % gas !== 0)
    throw new UsageError(
      `engine trl: prompts_per_step × rewarded_count (${c.prompts_per_step * M}) must be divisible by gradient_accumulation_steps (${gas})`,
    );
  if (trl.deepspeed && !existsSync(trl.deepspeed))
    throw new UsageError(`deepspeed: ${trl.deepspeed} not found`);
  if (trl.lora_r > 0 && trl.lora_target_modules.length === 0)
    throw new UsageError("lora_target_modules: give at least one module name (e.g. q_proj,v_proj)");
  if (!existsSync(join(c.model, "config.json")))
    throw new TtrlError(`${c.model}: no config.json (expected a model folder in HF layout)`);
}

function latestTrlCheckpoint(outDir: string): string | null {
  const root = join(outDir, "checkpoints");
  if (!existsSync(root)) return null;
  let best: string | null = null;
  let n = -1;
  for (const d of readdirSync(root)) {
    const m = /^checkpoint-(\d+)$/.exec(d);
    if (m && existsSync(join(root, d, "trainer_state.json")) && Number(m[1]) > n) {
      n = Number(m[1]);
      best = join(root, d);
    }
  }
  return best;
}

function readLog(path: string): Record<string, unknown>[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** The GRPOConfig keyword arguments for one ttrl config (names are TRL's; batch shape from P, N, processes). */
export function grpoKwargs(
  c: GrpoConfig,
  trl: TrlOptions,
  world: number,
  steps: number,
): Record<string, unknown> {
  const N = c.num_generations;
  const gas = c.gradient_accumulation_steps;
  const kw: Record<string, unknown> = {
    seed: c.seed,
    num_generations: N,
    per_device_train_batch_size: (c.prompts_per_step * N) / (world * gas),
    gradient_accumulation_steps: gas,
    steps_per_generation: gas,
    num_iterations: c.num_iterations,
    max_steps: steps * c.num_iterations,
    temperature: c.temperature,
    top_p: c.top_p,
    top_k: c.top_k,
    max_completion_length: c.max_completion_length,
    scale_rewards: c.scale_rewards,
    epsilon: c.epsilon,
    epsilon_high: c.epsilon_high ?? c.epsilon,
    beta: c.beta,
    loss_type: c.loss_type,
    reward_weights: c.reward_weights ?? rewardFuncs(c).map(() => 1),
    learning_rate: c.learning_rate,
    weight_decay: c.weight_decay,
    adam_beta1: c.adam_beta1,
    adam_beta2: c.adam_beta2,
    adam_epsilon: c.adam_epsilon,
    warmup_steps: c.warmup_steps > 0 ? c.warmup_steps : c.warmup_ratio,
    lr_scheduler_type: c.lr_scheduler_type,
    max_grad_norm: c.max_grad_norm,
    save_steps: c.save_steps * c.num_iterations,
    save_total_limit: c.save_total_limit > 0 ? c.save_total_limit : null,
    bf16: trl.bf16,
    gradient_checkpointing: trl.gradient_checkpointing,
    use_vllm: trl.use_vllm,
  };
  if (trl.use_vllm) {
    kw.vllm_mode = trl.vllm_mode;
    kw.vllm_gpu_memory_utilization = trl.vllm_gpu_memory_utilization;
  }
  if (trl.deepspeed) kw.deepspeed = resolve(trl.deepspeed);
  return kw;
}

/** The command line that starts the Python side (one process, or accelerate launch for several). */
export function launchCommand(
  python: string,
  trl: TrlOptions,
  explicitProcesses: boolean,
  spec: string,
): string[] {
  const run = ["-m", "ttrl_trl.run", spec];
  if (!trl.accelerate_config && trl.num_processes === 1) return [python, ...run];
  // `accelerate launch --cpu --num_processes 2` starts only one process; --multi_gpu starts N (gloo on CPU).
  const launch = [python, "-m", "accelerate.commands.launch"];
  if (trl.accelerate_config) {
    launch.push("--config_file", resolve(trl.accelerate_config));
    if (explicitProcesses) launch.push("--num_processes", String(trl.num_processes));
  } else launch.push("--multi_gpu", "--num_processes", String(trl.num_processes), "--num_machines", "1");
  launch.push("--mixed_precision", trl.bf16 ? "bf16" : "no", "--dynamo_backend", "no");
  return [...launch, ...run];
}

function withoutPython(trl: TrlOptions): Omit<TrlOptions, "python"> {
  const { python: _python, ...rest } = trl;
  return rest;
}

/** Settings a resume may change: they do not change the weights. */
export const TRL_RESUME_MAY_CHANGE = ["save_steps", "save_total_limit", "log_completions_steps", "threads"];

/**
 * A resumed run keeps the settings that decide the weights (as the jax engine's resume does): a usage error
 * naming each changed one.
 */
export function checkResumeSettings(outDir: string, now: Record<string, unknown>): void {
  const p = join(outDir, "config.json");
  if (!existsSync(p)) return;
  const saved = JSON.parse(readFileSync(p, "utf8")) as Record<string, unknown>;
  const skip = new Set([...TRL_RESUME_MAY_CHANGE, "total_steps", "resumed_changes"]);
  const keys = [...new Set([...Object.keys(saved), ...Object.keys(now)])].filter((k) => !skip.has(k));
  const diff = keys.filter((k) => JSON.stringify(saved[k] ?? null) !== JSON.stringify(now[k] ?? null));
  if (diff.length)
    throw new UsageError(
      `--resume: ${diff.map((k) => `${k} ${JSON.stringify(saved[k])} → ${JSON.stringify(now[k])}`).join(", ")} differ from the run saved in ${p}; a resumed run keeps the settings that decide the weights (drop the changed flags, or start a new run with --out elsewhere or --overwrite)`,
    );
}

export async function trainTrl(o: TrlRunOptions, explicitProcesses = false): Promise<TrlRunResult> {
  const t0 = performance.now();
  const c = o.config;
  const trl = o.trl;
  const dataFile = o.dataFile ?? c.data;
  const world = worldSize(trl, explicitProcesses);
  validateTrl(c, trl, world);
  if (o.resume) checkResumeSettings(o.outDir, { ...c, engine: "trl", ...withoutPython(trl) });
  // Python and its modules before any work (exit 2 with the setup command when missing).
  const { python, source } = findPython(trl.python);
  checkPython(python, source);

  if (o.rows.length === 0) throw new TtrlError(`${dataFile}: no training rows`);
  const funcs = rewardFuncs(c);
  if (funcs.includes("accuracy")) {
    const bad = o.rows.find((r) => r.answer === undefined || r.answer === null || r.answer === "");
    if (bad)
      throw new TtrlError(
        `${dataFile}:${bad.line}: row "${bad.id}" has no answer; --reward accuracy needs a label on every row (use --reward majority for unlabeled data)`,
      );
  }
  // Prompts as the jax engine renders them; lengths checked against the model's context.
  const tokenizer = loadTokenizer(c.model);
  const prompts = o.rows.map((r) => renderPrompt(r.question, c.prompt_template, tokenizer as never));
  const mcfg = JSON.parse(readFileSync(join(c.model, "config.json"), "utf8")) as Record<string, unknown>;
  const maxCtx = Number(mcfg.max_position_embeddings ?? Number.POSITIVE_INFINITY);
  prompts.forEach((p, i) => {
    const n = tokenizer.encode(p, { addSpecialTokens: true }).length;
    if (n + c.max_completion_length > maxCtx)
      throw new TtrlError(
        `${dataFile}:${o.rows[i].line}: prompt of row "${o.rows[i].id}" has ${n} tokens; with max_completion_length ${c.max_completion_length} that exceeds the model's context of ${maxCtx}`,
      );
  });

  const P = c.prompts_per_step;
  const steps = totalSteps(c, o.rows.length);
  const order = new DataOrder(o.rows.length, c.seed, c.shuffle_dataset);
  const rowAt = (step: number, pi: number) => order.index(step * P + pi);
  const specPrompts: { prompt: string; prompt_id: string; step: number; pi: number }[] = [];
  for (let s = 0; s < steps; s++)
    for (let pi = 0; pi < P; pi++) {
      const ri = rowAt(s, pi);
      specPrompts.push({ prompt: prompts[ri], prompt_id: o.rows[ri].id, step: s, pi });
    }

  const out = resolve(o.outDir);
  if (!o.resume && existsSync(out) && readdirSync(out).length > 0) {
    if (!o.overwrite)
      throw new UsageError(
        `${o.outDir} already holds a run; use --resume to continue it or --overwrite to delete it and start over`,
      );
    rmSync(out, { recursive: true, force: true });
  }
  mkdirSync(out, { recursive: true });
  // An earlier run's final/ must not look like this run's result.
  rmSync(join(out, "DONE"), { force: true });
  rmSync(join(out, "final"), { recursive: true, force: true });
  if (!o.resume) rmSync(join(out, "checkpoints"), { recursive: true, force: true });
  await writeJsonAtomic(join(out, "config.json"), {
    ...c,
    engine: "trl",
    ...withoutPython(trl),
    total_steps: steps,
  });

  const scorer = createScorer({ config: c, rows: o.rows, prompts, rowAt });
  const svc: RewardService = await startRewardService(scorer);
  const specPath = join(out, "trl_spec.json");
  const spec = {
    model: resolve(c.model),
    out,
    resume: Boolean(o.resume),
    steps,
    num_rows: o.rows.length,
    prompts_per_step: P,
    num_generations: c.num_generations,
    rewarded_count: c.rewarded_count ?? c.num_generations,
    num_iterations: c.num_iterations,
    beta: c.beta,
    reward_funcs: funcs,
    reward_url: svc.url,
    stop: c.stop,
    mask_truncated_completions: c.mask_truncated_completions,
    log_completions_steps: c.log_completions_steps,
    save_dtype: c.save_dtype,
    threads: c.threads,
    stop_after: o.stopAfter ?? null,
    lora:
      trl.lora_r > 0
        ? {
            r: trl.lora_r,
            alpha: trl.lora_alpha,
            dropout: trl.lora_dropout,
            target_modules: trl.lora_target_modules,
          }
        : null,
    grpo: grpoKwargs(c, trl, world, steps),
    prompts: specPrompts,
  };
  writeFileSync(specPath, JSON.stringify(spec));

  const progress = createProgress({
    label: o.progressLabel ?? "train (trl)",
    total: steps,
    unit: "step",
    fields: ["reward", "acc", "kl", "loss"],
  });
  const verbose = Boolean(process.env.TTRL_VERBOSE);
  const tail: string[] = [];
  const keep = (line: string) => {
    tail.push(line);
    if (tail.length > 40) tail.shift();
    if (verbose) process.stderr.write(`${line}\n`);
  };
  let pyError: { kind: string; message: string } | null = null;
  let done = false;
  const logPath = join(out, "train_log.jsonl");
  const log: Record<string, unknown>[] = [];
  const cmd = launchCommand(python, trl, explicitProcesses, specPath);
  const threads: Record<string, string> = c.threads > 0 ? { OMP_NUM_THREADS: String(c.threads) } : {};
  const child = spawn(cmd[0], cmd.slice(1), {
    env: pythonEnv({ TTRL_REWARD_TOKEN: svc.token, TTRL_PARENT_PID: String(process.pid), ...threads }),
    stdio: ["ignore", "pipe", "pipe"],
  });
  const onSignal = () => child.kill("SIGTERM");
  process.once("SIGTERM", onSignal);
  const stdoutDone = new Promise<void>((ok) => {
    const rl = createInterface({ input: child.stdout });
    rl.on("line", (line) => {
      const m = /^TTRL_([A-Z]+) (.*)$/.exec(line);
      if (!m) return keep(line);
      let v: Record<string, unknown>;
      try {
        v = JSON.parse(m[2]);
      } catch {
        return keep(line);
      }
      if (m[1] === "START") progress.update(Number(v.resume_step ?? 0));
      else if (m[1] === "STEP") {
        const entries = readLog(logPath);
        const e = entries.find((x) => x.step === v.step);
        if (e) {
          log.push(e);
          o.onStep?.(e);
        }
        progress.update(Number(v.step), {
          reward: Number(v.reward),
          acc: typeof v.acc === "number" ? v.acc : "",
          kl: Number(v.kl),
          loss: Number(v.loss),
        });
      } else if (m[1] === "ERROR") pyError ??= v as { kind: string; message: string };
      else if (m[1] === "DONE") done = true;
    });
    rl.on("close", () => ok());
  });
  const stderrDone = new Promise<void>((ok) => {
    const rl = createInterface({ input: child.stderr });
    rl.on("line", keep);
    rl.on("close", () => ok());
  });
  const code: number | null = await new Promise((ok) => {
    child.on("error", (e) => {
      keep(String(e));
      ok(-1);
    });
    child.on("close", (c2) => ok(c2));
  });
  await Promise.all([stdoutDone, stderrDone]);
  process.removeListener("SIGTERM", onSignal);
  progress.stop();
  await svc.close();
  const reward = { ...svc.stats };

  if (o.stopAfter !== undefined && !done) {
    return { steps: o.stopAfter, finalDir: null, log, reward, wallSeconds: (performance.now() - t0) / 1000 };
  }
  const finalDir = join(out, "final");
  if (code !== 0 || !done || !existsSync(join(finalDir, "config.json"))) {
    const ck = latestTrlCheckpoint(out);
    const last = `last good checkpoint: ${ck ?? "none (no checkpoint was written yet)"}`;
    let msg: string;
    if (svc.error) msg = `reward service: ${svc.error.message}`;
    else if (pyError) msg = (pyError as { message: string }).message;
    else
      msg = `the trl engine's Python process exited with ${code === null ? "a signal" : `code ${code}`}; its last lines:\n  ${tail.slice(-12).join("\n  ")}`;
    throw new TtrlError(`engine trl: ${msg}\n${last}`);
  }
  writeFileSync(join(out, "DONE"), `${new Date().toISOString()}\n`);
  return { steps, finalDir, log, reward, wallSeconds: (performance.now() - t0) / 1000 };
}
