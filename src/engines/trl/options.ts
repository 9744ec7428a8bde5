/**
 * Settings of `ttrl train --engine trl`: the TRL-only keys (TRL's GRPOConfig / accelerate / peft names) and
 * the rule that an option only one engine supports fails with a message naming the option and the engine.
 */
import { UsageError } from "../../util/errors.ts";

export const ENGINES = ["jax", "trl"] as const;
export type EngineName = (typeof ENGINES)[number];

export interface TrlOptions {
  bf16: boolean;
  gradient_checkpointing: boolean;
  use_vllm: boolean;
  vllm_mode: "colocate" | "server";
  vllm_gpu_memory_utilization: number;
  /** DeepSpeed config file (JSON), passed to TrainingArguments.deepspeed. */
  deepspeed: string | null;
  /** LoRA rank; 0 = full fine-tuning. */
  lora_r: number;
  lora_alpha: number;
  lora_dropout: number;
  lora_target_modules: string[];
  /** Processes (GPUs) for `accelerate launch`; 1 = a plain Python process. */
  num_processes: number;
  /** accelerate config file for `accelerate launch --config_file`. */
  accelerate_config: string | null;
  /** Python interpreter (default: TTRL_PYTHON, then the repo's .venv). */
  python: string | null;
}

export const TRL_DEFAULTS: TrlOptions = {
  bf16: false,
  gradient_checkpointing: false,
  use_vllm: false,
  vllm_mode: "colocate",
  vllm_gpu_memory_utilization: 0.3,
  deepspeed: null,
  lora_r: 0,
  lora_alpha: 32,
  lora_dropout: 0.05,
  lora_target_modules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
  num_processes: 1,
  accelerate_config: null,
  python: null,
};

type Kind = "bool" | "int" | "float" | "string?" | "list" | "choice";
export const TRL_KEYS: Record<
  keyof TrlOptions,
  { kind: Kind; help: string; choices?: string[]; min?: number }
> = {
  bf16: { kind: "bool", help: "train in bfloat16 (GPU)" },
  gradient_checkpointing: { kind: "bool", help: "recompute activations in the backward pass (less memory)" },
  use_vllm: { kind: "bool", help: "sample with vLLM" },
  vllm_mode: { kind: "choice", help: "vLLM placement", choices: ["colocate", "server"] },
  vllm_gpu_memory_utilization: { kind: "float", help: "GPU memory share for vLLM (colocate)", min: 0 },
  deepspeed: { kind: "string?", help: "DeepSpeed config file (JSON)" },
  lora_r: { kind: "int", help: "LoRA rank (0: full fine-tuning); final/ is saved merged", min: 0 },
  lora_alpha: { kind: "float", help: "LoRA alpha", min: 0 },
  lora_dropout: { kind: "float", help: "LoRA dropout", min: 0 },
  lora_target_modules: { kind: "list", help: "LoRA target modules (comma-separated)" },
  num_processes: { kind: "int", help: "processes for accelerate launch (1: one Python process)", min: 1 },
  accelerate_config: { kind: "string?", help: "accelerate config file (accelerate launch --config_file)" },
  python: { kind: "string?", help: "Python interpreter (default: TTRL_PYTHON, then .venv/bin/python)" },
};

/** GrpoConfig keys the trl engine cannot honour, with the reason. */
export const JAX_ONLY: Record<string, string> = {
  micro_batch_size:
    "TRL's micro-batch is derived from gradient_accumulation_steps (P×N / (processes × accumulation))",
};

function coerce(key: keyof TrlOptions, v: unknown, where: string): unknown {
  const spec = TRL_KEYS[key];
  const bad = (what: string) => new UsageError(`${where}: ${key} ${what}, got ${JSON.stringify(v)}`);
  switch (spec.kind) {
    case "bool":
      if (typeof v === "boolean") return v;
      if (/^(true|1|yes)$/i.test(String(v))) return true;
      if (/^(false|0|no)$/i.test(String(v))) return false;
      throw bad("must be true or false");
    case "int": {
      const n = typeof v === "number" ? v : Number(String(v).trim());
      if (!Number.isInteger(n)) throw bad("must be an integer");
      if (spec.min !== undefined && n < spec.min) throw bad(`must be ≥ ${spec.min}`);
      return n;
    }
    case "float": {
      const n = typeof v === "number" ? v : Number(String(v).trim());
      if (!Number.isFinite(n) || String(v).trim() === "") throw bad("must be a number");
      if (spec.min !== undefined && n < spec.min) throw bad(`must be ≥ ${spec.min}`);
      return n;
    }
    case "string?":
      return v === null || v === "" ? null : String(v);
    case "list":
      return Array.isArray(v)
        ? v.map(String)
        : String(v)
            .split(",")
            .map((s) => s.trim())
            .filter(Boolean);
    case "choice":
      if (!spec.choices?.includes(String(v))) throw bad(`must be one of ${spec.choices?.join(", ")}`);
      return String(v);
  }
}

export function isTrlKey(k: string): k is keyof TrlOptions {
  return k in TRL_KEYS;
}

/**
 * Split settings layers into the engine name, the TRL-only options and the rest (for resolveGrpoConfig).
 * A TRL-only option with engine jax, or a jax-only option set with engine trl, is a usage error naming both.
 */
export function splitEngineLayers(layers: { where: string; values: Record<string, unknown> }[]): {
  engine: EngineName;
  trl: TrlOptions;
  layers: { where: string; values: Record<string, unknown> }[];
  trlSetBy: Map<string, string>;
} {
  let engine: EngineName = "jax";
  const trl: Record<string, unknown> = { ...TRL_DEFAULTS };
  const trlSetBy = new Map<string, string>();
  const rest = layers.map(({ where, values }) => {
    const v: Record<string, unknown> = {};
    for (const [k0, val] of Object.entries(values)) {
      if (val === undefined) continue;
      const k = k0.replaceAll("-", "_");
      if (k === "engine") {
        if (!ENGINES.includes(val as EngineName))
          throw new UsageError(
            `${where}: engine must be one of ${ENGINES.join(", ")}, got ${JSON.stringify(val)}`,
          );
        engine = val as EngineName;
      } else if (isTrlKey(k)) {
        trl[k] = coerce(k, val, where);
        trlSetBy.set(k, where);
      } else v[k0] = val;
    }
    return { where, values: v };
  });
  if (engine === "jax") {
    const first = [...trlSetBy.entries()].find(([k]) => k !== "python");
    if (first)
      throw new UsageError(
        `${first[1]}: ${first[0]} is only supported by engine trl (this run uses engine jax; add --engine trl or engine: trl)`,
      );
  } else {
    for (const { where, values } of rest)
      for (const [k0, val] of Object.entries(values)) {
        const k = k0.replaceAll("-", "_");
        if (k in JAX_ONLY && val !== 0 && val !== "0")
          throw new UsageError(`${where}: ${k} is only supported by engine jax (${JAX_ONLY[k]})`);
      }
  }
  return { engine, trl: trl as unknown as TrlOptions, layers: rest, trlSetBy };
}
