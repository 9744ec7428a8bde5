/**
 * `ttrl train` settings. Names and defaults follow TRL's GRPOConfig (and transformers' TrainingArguments)
 * where one exists, so TRL users can bring their settings; TTRL-specific keys are documented here.
 * Precedence: defaults < `--config train.yml` < command-line flags (`--num-generations 8` for
 * `num_generations`).
 */
import { REWARD_NAMES, type RegisteredReward } from "../rewards/index.ts";
import { UsageError } from "../util/errors.ts";
import { SCHEDULER_TYPES, type SchedulerType } from "./optim.ts";

export type LossType = "grpo" | "dr_grpo" | "dapo" | "bnpo";
export type ScaleRewards = "group" | "batch" | "none";
/** A reward function `reward_funcs` may name: the registry in src/rewards (a new reward is added there). */
export type RewardName = RegisteredReward;

export interface GrpoConfig {
  model: string;
  data: string;
  reward: "accuracy" | "majority";
  seed: number;
  // prompts
  prompt_template: string;
  answer_format: string;
  locale: "tr-TR" | "en-US";
  /** strict | flexible answer extraction for rewards. */
  reward_mode: "strict" | "flexible";
  // batch and sampling
  /** P: prompts per step (TRL: generation_batch_size / num_generations). */
  prompts_per_step: number;
  /** N: completions sampled per prompt (the votes for the majority reward). */
  num_generations: number;
  /** M ≤ N completions per prompt used for the update (TTRL); default N. */
  rewarded_count: number | null;
  rewarded_pick: "first" | "random";
  tie: "random" | "first" | "none";
  temperature: number;
  top_p: number;
  top_k: number;
  max_completion_length: number;
  stop: string[];
  // loss
  scale_rewards: ScaleRewards;
  epsilon: number;
  epsilon_high: number | null;
  num_iterations: number;
  beta: number;
  loss_type: LossType;
  mask_truncated_completions: boolean;
  reward_funcs: RewardName[] | null;
  reward_weights: number[] | null;
  // optimisation
  learning_rate: number;
  weight_decay: number;
  adam_beta1: number;
  adam_beta2: number;
  adam_epsilon: number;
  warmup_ratio: number;
  warmup_steps: number;
  lr_scheduler_type: SchedulerType;
  max_grad_norm: number;
  gradient_accumulation_steps: number;
  /** Rows per forward/backward pass; 0 = (P × M) / gradient_accumulation_steps. */
  micro_batch_size: number;
  // length of the run
  max_steps: number;
  num_train_epochs: number;
  shuffle_dataset: boolean;
  // outputs
  save_steps: number;
  save_total_limit: number;
  log_completions_steps: number;
  save_dtype: "F32" | "BF16" | "F16";
  /** Compute threads for the engine (0 = engine default). */
  threads: number;
}

export const GRPO_DEFAULTS: GrpoConfig = {
  model: "",
  data: "",
  reward: "majority",
  seed: 42,
  prompt_template: "plain-tr",
  answer_format: "mantik-cevap",
  locale: "tr-TR",
  reward_mode: "strict",
  prompts_per_step: 8,
  num_generations: 8,
  rewarded_count: null,
  rewarded_pick: "first",
  tie: "random",
  temperature: 1.0,
  top_p: 1.0,
  top_k: 0,
  max_completion_length: 256,
  stop: ["</cevap>", "</answer>"],
  scale_rewards: "group",
  epsilon: 0.2,
  epsilon_high: null,
  num_iterations: 1,
  beta: 0.0,
  loss_type: "dapo",
  mask_truncated_completions: false,
  reward_funcs: null,
  reward_weights: null,
  learning_rate: 1e-6,
  weight_decay: 0.0,
  adam_beta1: 0.9,
  adam_beta2: 0.999,
  adam_epsilon: 1e-8,
  warmup_ratio: 0.0,
  warmup_steps: 0,
  lr_scheduler_type: "linear",
  max_grad_norm: 1.0,
  gradient_accumulation_steps: 1,
  micro_batch_size: 0,
  max_steps: -1,
  num_train_epochs: 1,
  shuffle_dataset: true,
  save_steps: 50,
  save_total_limit: 2,
  log_completions_steps: 1,
  save_dtype: "F32",
  threads: 0,
};

type Kind = "int" | "float" | "string" | "bool" | "float?" | "int?" | "list" | "floatlist";
interface KeySpec {
  kind: Kind;
  help: string;
  choices?: readonly string[];
  min?: number;
}

export const GRPO_KEYS: Record<keyof GrpoConfig, KeySpec> = {
  model: { kind: "string", help: "base model folder (HF layout)" },
  data: { kind: "string", help: "training rows (JSONL: id, question, answer?)" },
  reward: {
    kind: "string",
    help: "accuracy (labels) or majority (TTRL, no labels)",
    choices: ["accuracy", "majority"],
  },
  seed: { kind: "int", help: "seed for data order, sampling and tie-breaking" },
  prompt_template: { kind: "string", help: "prompt template (plain-tr, plain-en, chat-tr, chat-en)" },
  answer_format: { kind: "string", help: "answer format for rewards (mantik-cevap, reasoning-answer)" },
  locale: { kind: "string", help: "number locale for answers", choices: ["tr-TR", "en-US"] },
  reward_mode: { kind: "string", help: "answer extraction for rewards", choices: ["strict", "flexible"] },
  prompts_per_step: { kind: "int", help: "P: prompts per step", min: 1 },
  num_generations: { kind: "int", help: "N: completions per prompt (majority votes)", min: 1 },
  rewarded_count: {
    kind: "int?",
    help: "M ≤ N completions per prompt used for the update (default N)",
    min: 1,
  },
  rewarded_pick: {
    kind: "string",
    help: "which M completions: first or random",
    choices: ["first", "random"],
  },
  tie: { kind: "string", help: "majority tie policy", choices: ["random", "first", "none"] },
  temperature: { kind: "float", help: "sampling temperature", min: 0 },
  top_p: { kind: "float", help: "nucleus sampling", min: 0 },
  top_k: { kind: "int", help: "top-k sampling (0 = off)", min: 0 },
  max_completion_length: { kind: "int", help: "max new tokens per completion", min: 1 },
  stop: { kind: "list", help: "stop strings (comma-separated)" },
  scale_rewards: { kind: "string", help: "advantage scaling", choices: ["group", "batch", "none"] },
  epsilon: { kind: "float", help: "lower clip range", min: 0 },
  epsilon_high: { kind: "float?", help: "upper clip range (default epsilon)", min: 0 },
  num_iterations: { kind: "int", help: "updates per generation batch (μ)", min: 1 },
  beta: { kind: "float", help: "KL coefficient to the frozen reference (0: no reference)", min: 0 },
  loss_type: { kind: "string", help: "loss aggregation", choices: ["grpo", "dr_grpo", "dapo", "bnpo"] },
  mask_truncated_completions: { kind: "bool", help: "exclude truncated completions from the loss" },
  reward_funcs: {
    kind: "list",
    help: `reward functions (${REWARD_NAMES.join(", ")}); default: the --reward one`,
  },
  reward_weights: { kind: "floatlist", help: "weights for reward_funcs (default all 1)" },
  learning_rate: { kind: "float", help: "peak learning rate", min: 0 },
  weight_decay: { kind: "float", help: "AdamW weight decay", min: 0 },
  adam_beta1: { kind: "float", help: "AdamW beta1", min: 0 },
  adam_beta2: { kind: "float", help: "AdamW beta2", min: 0 },
  adam_epsilon: { kind: "float", help: "AdamW epsilon", min: 0 },
  warmup_ratio: { kind: "float", help: "warmup as a share of all optimizer steps", min: 0 },
  warmup_steps: { kind: "int", help: "warmup steps (overrides warmup_ratio when > 0)", min: 0 },
  lr_scheduler_type: { kind: "string", help: "learning-rate schedule", choices: SCHEDULER_TYPES },
  max_grad_norm: { kind: "float", help: "global-norm gradient clipping (0: off)", min: 0 },
  gradient_accumulation_steps: { kind: "int", help: "micro-batches per optimizer step", min: 1 },
  micro_batch_size: { kind: "int", help: "rows per forward/backward (0: P×M / accumulation)", min: 0 },
  max_steps: { kind: "int", help: "steps to run (-1: num_train_epochs over the data)" },
  num_train_epochs: { kind: "float", help: "epochs over the data when max_steps is -1", min: 0 },
  shuffle_dataset: { kind: "bool", help: "shuffle the data order (seeded)" },
  save_steps: { kind: "int", help: "checkpoint every k steps (0: only at the end)", min: 0 },
  save_total_limit: { kind: "int", help: "checkpoints kept (0: all)", min: 0 },
  log_completions_steps: { kind: "int", help: "write generations.jsonl every k steps (0: never)", min: 0 },
  save_dtype: { kind: "string", help: "dtype of final/", choices: ["F32", "BF16", "F16"] },
  threads: { kind: "int", help: "compute threads (0: engine default)", min: 0 },
};

export function flagName(key: string): string {
  return key.replaceAll("_", "-");
}

/** Coerce one value (from YAML or a flag string) to the key's type; throws UsageError naming the key. */
export function coerce(key: keyof GrpoConfig, value: unknown, where: string): unknown {
  const spec = GRPO_KEYS[key];
  const bad = (what: string) => new UsageError(`${where}: ${key} ${what}, got ${JSON.stringify(value)}`);
  if (value === null && GRPO_DEFAULTS[key] === null) return null;
  let out: unknown;
  switch (spec.kind) {
    case "int":
    case "int?": {
      const n = typeof value === "number" ? value : Number(String(value).trim());
      if (!Number.isInteger(n)) throw bad("must be an integer");
      out = n;
      break;
    }
    case "float":
    case "float?": {
      const n = typeof value === "number" ? value : Number(String(value).trim());
      if (String(value).trim() === "" || !Number.isFinite(n)) throw bad("must be a number");
      out = n;
      break;
    }
    case "bool": {
      if (typeof value === "boolean") out = value;
      else if (/^(true|1|yes)$/i.test(String(value))) out = true;
      else if (/^(false|0|no)$/i.test(String(value))) out = false;
      else throw bad("must be true or false");
      break;
    }
    case "string":
      out = String(value);
      if (spec.choices && !spec.choices.includes(out as string))
        throw bad(`must be one of ${spec.choices.join(", ")}`);
      break;
    case "list":
      out = Array.isArray(value)
        ? value.map(String)
        : String(value)
            .split(",")
            .map((s) => s.trim())
            .filter((s) => s.length > 0);
      break;
    case "floatlist": {
      const parts = Array.isArray(value) ? value : String(value).split(",");
      const nums = parts.map((s) => Number(String(s).trim()));
      if (nums.some((n) => !Number.isFinite(n))) throw bad("must be comma-separated numbers");
      out = nums;
      break;
    }
  }
  if (spec.min !== undefined && typeof out === "number" && out < spec.min) throw bad(`must be ≥ ${spec.min}`);
  return out;
}

/** Merge layers (later wins) into a full config; unknown keys are usage errors. */
export function resolveGrpoConfig(layers: { where: string; values: Record<string, unknown> }[]): GrpoConfig {
  const cfg: Record<string, unknown> = { ...GRPO_DEFAULTS };
  for (const { where, values } of layers) {
    for (const [k0, v] of Object.entries(values)) {
      if (v === undefined) continue;
      const k = k0.replaceAll("-", "_");
      if (!(k in GRPO_KEYS))
        throw new UsageError(
          `${where}: unknown setting "${k0}" (known: ${Object.keys(GRPO_KEYS).join(", ")})`,
        );
      cfg[k] = coerce(k as keyof GrpoConfig, v, where);
    }
  }
  const c = cfg as unknown as GrpoConfig;
  validateGrpoConfig(c);
  return c;
}

/** Conflicting or out-of-range settings: usage errors before any work starts. */
export function validateGrpoConfig(c: GrpoConfig): void {
  const m = c.rewarded_count ?? c.num_generations;
  if (m > c.num_generations)
    throw new UsageError(`rewarded_count M=${m} exceeds num_generations N=${c.num_generations} (need M ≤ N)`);
  if (c.epsilon < 0) throw new UsageError(`epsilon must be ≥ 0, got ${c.epsilon}`);
  if (c.epsilon_high !== null && c.epsilon_high < 0)
    throw new UsageError(`epsilon_high must be ≥ 0, got ${c.epsilon_high}`);
  if (c.top_p <= 0 || c.top_p > 1) throw new UsageError(`top_p must be in (0, 1], got ${c.top_p}`);
  if (c.adam_beta1 >= 1 || c.adam_beta2 >= 1) throw new UsageError("adam_beta1 and adam_beta2 must be < 1");
  // AdamW divides by sqrt(v) + epsilon: with 0, a parameter whose gradient is 0 becomes 0/0 = NaN
  if (!(c.adam_epsilon > 0))
    throw new UsageError(
      `adam_epsilon (--adam-epsilon) must be > 0, got ${c.adam_epsilon} (AdamW divides by sqrt(v) + epsilon)`,
    );
  if (c.warmup_ratio > 1)
    throw new UsageError(
      `warmup_ratio (--warmup-ratio) must be in [0, 1] (a share of all optimizer steps), got ${c.warmup_ratio}`,
    );
  // GRPO's advantage is a reward minus its group's mean: a group of one has advantage 0 (no learning)
  if (c.num_generations < 2)
    throw new UsageError(
      `num_generations (--num-generations) must be ≥ 2, got ${c.num_generations}: GRPO compares the completions of one prompt, and with one every advantage is 0`,
    );
  if (c.rewarded_count !== null && c.rewarded_count < 2)
    throw new UsageError(
      `rewarded_count (--rewarded-count) must be ≥ 2, got ${c.rewarded_count}: the advantage compares the rewarded completions of one prompt, and with one every advantage is 0`,
    );
  if (c.max_steps === 0 || c.max_steps < -1)
    throw new UsageError(`max_steps must be -1 or ≥ 1, got ${c.max_steps}`);
  const rows = c.prompts_per_step * m;
  if (c.micro_batch_size === 0 && rows % c.gradient_accumulation_steps !== 0)
    throw new UsageError(
      `prompts_per_step × rewarded completions (${rows}) must be divisible by gradient_accumulation_steps (${c.gradient_accumulation_steps})`,
    );
  const funcs = rewardFuncs(c);
  const known: readonly string[] = REWARD_NAMES;
  for (const f of funcs)
    if (!known.includes(f))
      throw new UsageError(`unknown reward function "${f}" (known: ${known.join(", ")})`);
  if (new Set(funcs).size !== funcs.length)
    throw new UsageError(`reward_funcs lists a function twice: ${funcs}`);
  if (!funcs.includes(c.reward))
    throw new UsageError(
      `reward_funcs (${funcs.join(",")}) must include the --reward function "${c.reward}"`,
    );
  if (funcs.includes("accuracy") && funcs.includes("majority"))
    throw new UsageError(
      "reward_funcs cannot combine accuracy and majority (the label would leak into TTRL)",
    );
  if (c.reward_weights && c.reward_weights.length !== funcs.length)
    throw new UsageError(
      `reward_weights has ${c.reward_weights.length} values for ${funcs.length} reward functions (${funcs.join(",")})`,
    );
  if (m < c.num_generations && !funcs.includes("majority"))
    throw new UsageError("rewarded_count < num_generations needs the majority reward");
}

export function rewardFuncs(c: GrpoConfig): RewardName[] {
  return c.reward_funcs?.length ? c.reward_funcs : [c.reward];
}
