/**
 * Training as library calls: `runGrpo` and `runSft` take resolved settings and a run folder, read the data,
 * start the engine and train. The `ttrl train` / `ttrl sft` commands are thin adapters of flags to these
 * calls, and the experiment (src/experiment) calls them directly — nothing here depends on the CLI.
 *
 * Settings of a GRPO run come in layers (later wins): defaults < the saved run's config.json (with
 * `resume`) < a YAML/JSON settings file < flags; `resolveTrainSettings` resolves them and the engine choice
 * (`engine: jax | trl`, with the trl engine's own options).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { type EngineName, splitEngineLayers, type TrlOptions } from "../engines/trl/options.ts";
import { UsageError } from "../util/errors.ts";
import { type GrpoConfig, resolveGrpoConfig } from "./config.ts";
import type { GrpoLogEntry } from "./log.ts";
import type { Policy } from "./policy.ts";
import type { SftConfig } from "./sft.ts";
import { savedSettings } from "./state.ts";

type Layer = { where: string; values: Record<string, unknown> };

/** A GRPO run's resolved settings: the trainer's config and the engine that runs it. */
export interface TrainSettings {
  config: GrpoConfig;
  engine: EngineName;
  /** The trl engine's options (defaults with engine jax). */
  trl: TrlOptions;
  /** Where each trl option was set (the trl engine reads `num_processes` from it). */
  trlSetBy: Map<string, string>;
}

/** A YAML (or JSON) mapping of settings; errors name the file. */
export function readSettingsFile(file: string): Record<string, unknown> {
  if (!existsSync(file)) throw new UsageError(`--config: ${file} not found`);
  let v: unknown;
  try {
    v = parseYaml(readFileSync(file, "utf8"));
  } catch (e) {
    throw new UsageError(`${file}: invalid YAML (${(e as Error).message})`);
  }
  if (v !== null && (typeof v !== "object" || Array.isArray(v)))
    throw new UsageError(`${file}: expected a mapping of settings`);
  return (v ?? {}) as Record<string, unknown>;
}

/** The saved settings of the run in `out`, for `resume` (a usage error when there is no run to resume). */
export function resumeLayer(out: string): Layer {
  const saved = savedSettings(out);
  if (!saved) throw new UsageError(`--resume: ${join(out, "config.json")} not found (nothing to resume)`);
  return { where: join(out, "config.json"), values: saved };
}

export function resolveTrainSettings(o: {
  out: string;
  resume?: boolean;
  /** Settings file (YAML or JSON). */
  configFile?: string;
  /** Settings from flags (TRL names, `engine`, the trl engine's options). */
  flags?: Record<string, unknown>;
}): TrainSettings {
  const layers: Layer[] = [];
  if (o.resume) layers.push(resumeLayer(o.out));
  if (o.configFile) layers.push({ where: o.configFile, values: readSettingsFile(o.configFile) });
  if (o.flags) layers.push({ where: "command line", values: o.flags });
  const split = splitEngineLayers(layers);
  const config = resolveGrpoConfig(split.layers);
  if (!config.model) throw new UsageError("--model is required (or `model:` in --config)");
  if (!config.data) throw new UsageError("--data is required (or `data:` in --config)");
  return { config, engine: split.engine, trl: split.trl, trlSetBy: split.trlSetBy };
}

export interface GrpoJob extends TrainSettings {
  out: string;
  resume?: boolean;
  /** Start over in a used run folder (deleting what it holds). */
  overwrite?: boolean;
  progressLabel?: string;
}

export interface GrpoJobResult {
  engine: EngineName;
  steps: number;
  finalDir: string | null;
  /** This process's log lines. */
  log: GrpoLogEntry[];
  rows: number;
  seconds: number;
  /** Engine jax: compute threads. */
  threads?: number;
  /** Engine trl: the reward service's time and requests. */
  reward?: { seconds: number; requests: number };
}

/** Train a GRPO run with the settings' engine. */
export async function runGrpo(job: GrpoJob): Promise<GrpoJobResult> {
  const c = job.config;
  const { readTrainRows } = await import("./data.ts");
  const rows = await readTrainRows(c.data);
  if (job.engine === "trl") {
    const { trainTrl } = await import("../engines/trl/index.ts");
    const res = await trainTrl(
      {
        config: c,
        trl: job.trl,
        rows,
        outDir: job.out,
        dataFile: c.data,
        resume: Boolean(job.resume),
        overwrite: job.overwrite,
        progressLabel: job.progressLabel,
      },
      job.trlSetBy.has("num_processes"),
    );
    return { ...res, engine: "trl", rows: rows.length, seconds: res.wallSeconds };
  }
  const { policy, threads } = await jaxPolicy(c.model, c.threads, { temperature: c.temperature });
  const { trainGrpo } = await import("./grpo.ts");
  const t0 = performance.now();
  const res = await trainGrpo({
    policy,
    rows,
    config: c,
    outDir: job.out,
    dataFile: c.data,
    resume: Boolean(job.resume),
    overwrite: job.overwrite,
    progressLabel: job.progressLabel,
  });
  return {
    engine: "jax",
    steps: res.steps,
    finalDir: res.finalDir,
    log: res.log,
    rows: rows.length,
    seconds: (performance.now() - t0) / 1000,
    threads,
  };
}

/**
 * The jax engine's side of a run: start the runtime (its device and `threads` compute threads; 0 or absent:
 * the engine's default) and load the model folder as a trainable policy.
 */
async function jaxPolicy(
  model: string,
  threads: number | undefined,
  opts?: { temperature?: number },
): Promise<{ policy: Policy; threads: number }> {
  const { initRuntime, runtimeThreads } = await import("../runtime/jax.ts");
  await initRuntime(threads ? { threads } : undefined);
  const { loadPolicy } = await import("./engine.ts");
  const { policy } = await loadPolicy(model, opts);
  return { policy, threads: runtimeThreads() };
}

export interface SftJob {
  config: SftConfig;
  out: string;
  resume?: boolean;
  overwrite?: boolean;
  /** Compute threads (default: the engine's). */
  threads?: number;
}

/** Supervised fine-tuning of a model folder on a JSONL file (see src/train/sft.ts). */
export async function runSft(job: SftJob): Promise<{
  steps: number;
  log: Record<string, unknown>[];
  rows: number;
  seconds: number;
  threads: number;
}> {
  const c = job.config;
  const { readSftRows } = await import("./data.ts");
  const rows = await readSftRows(c.data);
  const { policy, threads } = await jaxPolicy(c.model, job.threads);
  const { trainSft } = await import("./sft.ts");
  const t0 = performance.now();
  const res = await trainSft({
    policy,
    rows,
    config: c,
    outDir: job.out,
    dataFile: c.data,
    resume: Boolean(job.resume),
    overwrite: job.overwrite,
  });
  return {
    steps: res.steps,
    log: res.log,
    rows: rows.length,
    seconds: (performance.now() - t0) / 1000,
    threads,
  };
}
