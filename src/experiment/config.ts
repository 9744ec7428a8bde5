/**
 * `ttrl experiment` configuration: a preset (default or quick, YAML in ./presets) deep-merged with an
 * optional user config file, validated, with paths resolved against the current folder.
 */
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import YAML from "yaml";
import { splitEngineLayers } from "../engines/trl/options.ts";
import { checkServeCommand } from "../engines/trl/serve-command.ts";
import { readUtf8File } from "../io/jsonl.ts";
import { type Conditional, type ParameterSetting, parseMergeConfig, type Scalar } from "../merge/config.ts";
import { METHODS } from "../merge/methods/index.ts";
import { type ComputeDtype, type EngineDevice, parseComputeDtype, parseDevice } from "../runtime/device.ts";
import { resolveGrpoConfig } from "../train/config.ts";
import { InputError, UsageError } from "../util/errors.ts";
import { mergeConfigFor } from "./index.ts";

export const PRESETS = ["default", "quick"] as const;
export type PresetName = (typeof PRESETS)[number];

export interface EvalSettings {
  k: number;
  ks: number[];
  temperature: number;
  top_p: number;
  max_tokens: number;
  limit: number | null;
  batch_size: number;
  greedy: boolean;
  /** Evaluate through an OpenAI-compatible server started per model (`{model}`, `{port}`), e.g. vLLM. */
  serve_command: string | null;
}

export interface ExperimentConfig {
  name: string;
  model: string;
  train_data: string;
  test_data: string;
  seed: number;
  template: string;
  format: string;
  locale: "tr-TR" | "en-US";
  /** `ttrl train` config keys shared by both runs. */
  train: Record<string, unknown>;
  runs: { accuracy: Record<string, unknown>; majority: Record<string, unknown> };
  /** mergekit config pieces (merge_method, parameters, dtype, ...); models are filled in. */
  merge: Record<string, unknown>;
  eval: EvalSettings;
  report: { enabled: boolean; png: boolean };
  /** The engine's device for every stage (`--device` wins); absent: TTRL_DEVICE or wasm. */
  device?: EngineDevice;
  /** The precision of the model's matmuls for every stage (`--compute-dtype` wins); absent: float32. */
  compute_dtype?: ComputeDtype;
}

const PRESET_DIR = join(dirname(fileURLToPath(import.meta.url)), "presets");

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

/** Deep merge: objects merge key by key, everything else (arrays included) is replaced. */
export function deepMerge(a: Obj, b: Obj): Obj {
  const out: Obj = { ...a };
  for (const [k, v] of Object.entries(b))
    out[k] = isObj(v) && isObj(out[k]) ? deepMerge(out[k] as Obj, v) : v;
  return out;
}

function readYaml(file: string): Obj {
  const text = readUtf8File(file);
  let v: unknown;
  try {
    v = YAML.parse(text);
  } catch (e) {
    const pos = (e as { linePos?: { line: number }[] }).linePos?.[0]?.line;
    throw new InputError(file, pos, `invalid YAML: ${(e as Error).message.split("\n")[0]}`);
  }
  if (v === null || v === undefined) return {};
  if (!isObj(v)) throw new InputError(file, 1, "expected a YAML mapping at the top level");
  return v;
}

export function presetObject(name: PresetName): Obj {
  const base = readYaml(join(PRESET_DIR, "default.yml"));
  return name === "default" ? base : deepMerge(base, readYaml(join(PRESET_DIR, `${name}.yml`)));
}

const TOP_KEYS = new Set([
  "name",
  "device",
  "compute_dtype",
  "model",
  "train_data",
  "test_data",
  "seed",
  "template",
  "format",
  "locale",
  "train",
  "runs",
  "merge",
  "eval",
  "report",
]);
const EVAL_KEYS = new Set([
  "k",
  "ks",
  "temperature",
  "top_p",
  "max_tokens",
  "limit",
  "batch_size",
  "greedy",
  "serve_command",
]);

export function loadExperimentConfig(
  file: string | undefined,
  preset: PresetName = "default",
): ExperimentConfig {
  let obj = presetObject(preset);
  const where = file ?? `preset ${preset}`;
  if (file) {
    const user = readYaml(file);
    for (const k of Object.keys(user))
      if (!TOP_KEYS.has(k))
        throw new InputError(file, undefined, `unknown key "${k}" (known: ${[...TOP_KEYS].join(", ")})`);
    if (isObj(user.eval))
      for (const k of Object.keys(user.eval))
        if (!EVAL_KEYS.has(k))
          throw new InputError(
            file,
            undefined,
            `unknown key "eval.${k}" (known: ${[...EVAL_KEYS].join(", ")})`,
          );
    obj = deepMerge(obj, user);
  }
  const cfg = validate(obj, where);
  validateStages(cfg, where);
  return cfg;
}

/**
 * The `ttrl train` settings of one experiment run, as its train stage writes them: the shared settings,
 * then `train:`, then `runs.<reward>:`, then the model, data and reward the experiment fixes.
 */
export function trainSettingsFor(cfg: ExperimentConfig, reward: "accuracy" | "majority"): Obj {
  return {
    seed: cfg.seed,
    prompt_template: cfg.template,
    answer_format: cfg.format,
    locale: cfg.locale,
    ...cfg.train,
    ...cfg.runs[reward],
    model: resolve(cfg.model),
    data: resolve(cfg.train_data),
    reward,
  };
}

/**
 * Check the settings every later stage will use — both runs' `ttrl train` settings (`train:` merged with
 * `runs.accuracy:` / `runs.majority:`) and the `merge:` section against its method — so a bad key or value
 * stops the experiment before its first stage, not after an hour of evaluation and training.
 */
export function validateStages(cfg: ExperimentConfig, where: string): void {
  for (const reward of ["accuracy", "majority"] as const) {
    const twhere = `${where}: train / runs.${reward}`;
    try {
      // engine: trl and its own keys are split off (and checked) first, as `ttrl train` does.
      resolveGrpoConfig(splitEngineLayers([{ where: twhere, values: trainSettingsFor(cfg, reward) }]).layers);
    } catch (e) {
      const msg = (e as Error).message;
      if (!(e instanceof UsageError) || msg.startsWith(twhere)) throw e;
      throw new UsageError(`${twhere}: ${msg}`); // cross-setting checks do not name the file
    }
  }
  const mc = mergeConfigFor(cfg, "train/accuracy/final", "train/majority/final", 1);
  const mwhere = `${where}: merge`;
  const merge = parseMergeConfig(mwhere, YAML.stringify(mc));
  const bad = (msg: string) => new UsageError(`${mwhere}: ${msg}`);
  const method = METHODS[merge.mergeMethod];
  if (!method)
    throw bad(`unknown merge_method "${merge.mergeMethod}" (supported: ${Object.keys(METHODS).join(", ")})`);
  const given = merge.parameters ?? {};
  for (const [name, setting] of Object.entries(given)) {
    const spec = method.params.find((p) => p.name === name);
    if (!spec)
      throw bad(
        `unknown parameter "${name}" for ${method.name} (known: ${method.params.map((p) => p.name).join(", ")})`,
      );
    for (const v of settingValues(setting)) {
      const ok =
        spec.kind === "bool"
          ? typeof v === "boolean"
          : typeof v === "number" &&
            Number.isFinite(v) &&
            (spec.min === undefined || v >= spec.min) &&
            (spec.max === undefined || v <= spec.max);
      if (!ok)
        throw bad(
          `parameter "${name}" of ${method.name} must be ${spec.kind === "bool" ? "true or false" : `a number${spec.min !== undefined ? ` in [${spec.min}, ${spec.max ?? "∞"}]` : ""}`}, got ${JSON.stringify(v)}`,
        );
    }
  }
  for (const p of method.params)
    if (p.default === undefined && p.scope === "shared" && !(p.name in given))
      throw bad(`${method.name} needs parameter "${p.name}" (in merge.parameters)`);
}

/** Every scalar in a mergekit parameter setting (a value, a gradient, conditionals). */
function settingValues(s: ParameterSetting): Scalar[] {
  if (Array.isArray(s)) return (s as unknown[]).flatMap((x) => settingValues(x as ParameterSetting));
  if (typeof s === "object" && s !== null) return settingValues((s as Conditional).value);
  return [s];
}

function validate(o: Obj, where: string): ExperimentConfig {
  const bad = (msg: string) => new UsageError(`${where}: ${msg}`);
  const str = (k: string): string => {
    const v = o[k];
    if (typeof v !== "string" || v === "") throw bad(`"${k}" must be a non-empty string`);
    return v;
  };
  const e = (isObj(o.eval) ? o.eval : {}) as Obj;
  const int = (v: unknown, name: string, min: number): number => {
    if (typeof v !== "number" || !Number.isInteger(v) || v < min)
      throw bad(`"${name}" must be an integer ≥ ${min}`);
    return v;
  };
  const num = (v: unknown, name: string, min: number, max: number): number => {
    if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max)
      throw bad(`"${name}" must be a number in [${min}, ${max}]`);
    return v;
  };
  const k = int(e.k, "eval.k", 1);
  const ks = Array.isArray(e.ks)
    ? e.ks.map((x, i) => int(x, `eval.ks[${i}]`, 1))
    : [1, 2, 4, 8].filter((x) => x <= k);
  if (ks.some((x) => x > k)) throw bad(`eval.ks must not exceed eval.k (${k})`);
  const locale = o.locale ?? "tr-TR";
  if (locale !== "tr-TR" && locale !== "en-US") throw bad(`"locale" must be tr-TR or en-US`);
  const runs = (isObj(o.runs) ? o.runs : {}) as Obj;
  const report = (isObj(o.report) ? o.report : {}) as Obj;
  if (!isObj(o.train ?? {})) throw bad(`"train" must be a mapping of ttrl train settings`);
  if (!isObj(o.merge)) throw bad(`"merge" must be a mapping (a mergekit config without models)`);
  return {
    name: str("name"),
    model: str("model"),
    train_data: str("train_data"),
    test_data: str("test_data"),
    seed: int(o.seed ?? 0, "seed", 0),
    template: typeof o.template === "string" ? o.template : "plain-tr",
    format: typeof o.format === "string" ? o.format : "mantik-cevap",
    locale,
    train: (o.train ?? {}) as Obj,
    runs: {
      accuracy: (isObj(runs.accuracy) ? runs.accuracy : {}) as Obj,
      majority: (isObj(runs.majority) ? runs.majority : {}) as Obj,
    },
    merge: o.merge as Obj,
    eval: {
      k,
      ks,
      temperature: num(e.temperature ?? 1, "eval.temperature", 0, 2),
      top_p: num(e.top_p ?? 1, "eval.top_p", 0, 1),
      max_tokens: int(e.max_tokens ?? 256, "eval.max_tokens", 1),
      limit: e.limit === undefined || e.limit === null ? null : int(e.limit, "eval.limit", 1),
      batch_size: int(e.batch_size ?? 16, "eval.batch_size", 1),
      greedy: Boolean(e.greedy),
      serve_command:
        e.serve_command === undefined || e.serve_command === null
          ? null
          : checkServeCommand(e.serve_command, `${where}: eval.serve_command`),
    },
    report: { enabled: report.enabled !== false, png: report.png !== false },
    ...(o.device === undefined ? {} : { device: parseDevice(String(o.device), `${where}: "device"`) }),
    ...(o.compute_dtype === undefined
      ? {}
      : { compute_dtype: parseComputeDtype(String(o.compute_dtype), `${where}: "compute_dtype"`) }),
  };
}
