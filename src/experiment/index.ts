/**
 * `ttrl experiment`: the seed's study as one resumable job —
 *   eval-base → train-accuracy, train-majority (same data, same order) → merge (the seed's SLERP) →
 *   eval-accuracy, eval-majority, eval-merged → report → summary table.
 * Each stage is keyed by its inputs (src/experiment/stages.ts). The run folder records the resolved config;
 * a folder made by another config is refused unless `force` (then only stages whose inputs changed rerun).
 */
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import YAML from "yaml";
import { pct, table } from "../eval/summary.ts";
import { writeFileAtomic, writeJsonAtomic } from "../io/atomic.ts";
import { type EvalStats, evalStats, findDiff, findings } from "../report/stats.ts";
import { TtrlError } from "../util/errors.ts";
import { type ExperimentConfig, trainSettingsFor } from "./config.ts";
import { hashJson, hashPath, runStage, type StageOutcome } from "./stages.ts";
import { hasCheckpoint, realSteps, type Steps } from "./steps.ts";

export interface ExperimentOptions {
  config: ExperimentConfig;
  out: string;
  force?: boolean;
  steps?: Steps;
  log?: (msg: string) => void;
}

export interface SummaryRow {
  model: string;
  valid_strict: number | null;
  valid_flexible: number | null;
  pass1_strict: number | null;
  pass1_flexible: number | null;
  consk_strict: number | null;
  consk_flexible: number | null;
  /** Correct among the completions whose answer parsed (flexible): the gain that is not format. */
  acc_valid_flexible?: number | null;
  /** pass@1 (flexible) minus the base's, with its paired-bootstrap 95% interval (null for the base). */
  delta_pass1_flexible?: { diff: number; lo: number; hi: number } | null;
}

export interface ExperimentResult {
  out: string;
  stages: StageOutcome[];
  summary: SummaryRow[];
  k: number;
  seconds: number;
  report: string | null;
  /** Sentences from the numbers (src/report/stats.ts findings), also in summary.md. */
  findings?: string[];
}

export const MODEL_NAMES = {
  base: "base",
  accuracy: "grpo-accuracy",
  majority: "ttrl-majority",
  merged: "merged-slerp",
} as const;
type ModelKey = keyof typeof MODEL_NAMES;

/** Differences between two configs as "path: a → b" lines (for the refusal message). */
export function configDiff(a: unknown, b: unknown, path = ""): string[] {
  if (JSON.stringify(a) === JSON.stringify(b)) return [];
  const isObj = (v: unknown) => v && typeof v === "object" && !Array.isArray(v);
  if (isObj(a) && isObj(b)) {
    const keys = new Set([...Object.keys(a as object), ...Object.keys(b as object)]);
    return [...keys].flatMap((k) =>
      configDiff(
        (a as Record<string, unknown>)[k],
        (b as Record<string, unknown>)[k],
        path ? `${path}.${k}` : k,
      ),
    );
  }
  return [`${path}: ${JSON.stringify(a)} → ${JSON.stringify(b)}`];
}

function numLayers(modelDir: string): number {
  const file = join(modelDir, "config.json");
  let cfg: Record<string, unknown>;
  try {
    cfg = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new TtrlError(`${file}: cannot read the model config (${(e as Error).message})`);
  }
  const n = cfg.num_hidden_layers;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1)
    throw new TtrlError(`${file}: num_hidden_layers missing or not a positive integer`);
  return n;
}

/** The seed's merge: SLERP of the two trained models, the accuracy model as base, all layers. */
export function mergeConfigFor(
  cfg: ExperimentConfig,
  accuracyDir: string,
  majorityDir: string,
  layers: number,
) {
  const { slices: _s, models: _m, base_model: _b, ...rest } = cfg.merge as Record<string, unknown>;
  return {
    slices: [
      {
        sources: [
          { model: accuracyDir, layer_range: [0, layers] },
          { model: majorityDir, layer_range: [0, layers] },
        ],
      },
    ],
    base_model: accuracyDir,
    ...rest,
  };
}

export async function runExperiment(o: ExperimentOptions): Promise<ExperimentResult> {
  const t0 = Date.now();
  const cfg = o.config;
  const steps = o.steps ?? realSteps;
  const log = o.log ?? ((m: string) => process.stderr.write(`${m}\n`));
  const root = resolve(o.out);

  // The run folder belongs to one config.
  const recordPath = join(root, "experiment.json");
  const configHash = hashJson(cfg);
  if (existsSync(recordPath)) {
    let prev: { config_hash?: string; config?: unknown } = {};
    try {
      prev = JSON.parse(readFileSync(recordPath, "utf8"));
    } catch {
      /* unreadable: treat as another config */
    }
    if (prev.config_hash !== configHash && !o.force) {
      const diff = configDiff(prev.config, cfg).slice(0, 8);
      throw new TtrlError(
        `${o.out} holds an experiment made with another config${diff.length ? `:\n  ${diff.join("\n  ")}` : ""}\nuse --force to rerun the stages whose inputs changed there, or choose another --out`,
      );
    }
  }
  await writeJsonAtomic(recordPath, {
    config_hash: configHash,
    config: cfg,
    updated: new Date().toISOString(),
  });

  for (const [what, p] of [
    ["base model", cfg.model],
    ["train data", cfg.train_data],
    ["test data", cfg.test_data],
  ] as const)
    if (!existsSync(p))
      throw new TtrlError(
        `${p}: ${what} not found (set "${what === "base model" ? "model" : what.replace(" ", "_")}" in the experiment config)`,
      );

  const baseHash = hashPath(cfg.model, (rel) => rel.startsWith("."));
  const trainHash = hashPath(cfg.train_data);
  const testHash = hashPath(cfg.test_data);
  const evalInputs = {
    test: testHash,
    eval: cfg.eval,
    template: cfg.template,
    format: cfg.format,
    locale: cfg.locale,
    seed: cfg.seed,
  };
  const evalDir = (m: ModelKey) => join(root, "eval", m);
  const evalFingerprint = (m: ModelKey) => () => hashPath(join(evalDir(m), "generations.jsonl"));
  const modelFingerprint = (dir: string) => () =>
    hashPath(dir, (rel) => rel.startsWith(".") || rel === "README.md");
  const outcomes: StageOutcome[] = [];
  const total = 8;
  const stage = async (def: Parameters<typeof runStage>[1]) => {
    const n = outcomes.length + 1;
    const out = await runStage(root, def, (m) => log(`[${n}/${total}] ${m}`));
    outcomes.push(out);
    return out;
  };

  const evalStage = (m: ModelKey, modelDir: string, modelHash: string) =>
    stage({
      name: `eval-${m}`,
      inputs: { ...evalInputs, model: modelHash, name: MODEL_NAMES[m] },
      output: evalDir(m),
      fingerprint: evalFingerprint(m),
      run: async () => {
        await steps.evalModel({ modelDir, name: MODEL_NAMES[m], out: evalDir(m), cfg });
      },
    });

  await evalStage("base", cfg.model, baseHash);

  const trained: Record<"accuracy" | "majority", { dir: string; hash: string }> = {
    accuracy: { dir: "", hash: "" },
    majority: { dir: "", hash: "" },
  };
  for (const reward of ["accuracy", "majority"] as const) {
    const runDir = join(root, "train", reward);
    const settings = trainSettingsFor(cfg, reward);
    const configFile = join(root, "train", `${reward}.yml`);
    const finalDir = join(runDir, "final");
    const out = await stage({
      name: `train-${reward}`,
      inputs: { base: baseHash, data: trainHash, settings },
      output: runDir,
      fingerprint: modelFingerprint(finalDir),
      run: async (resume) => {
        // Resume from the run's latest checkpoint; with none yet, start the run over.
        const fromCheckpoint = resume && hasCheckpoint(runDir);
        if (!fromCheckpoint) rmSync(runDir, { recursive: true, force: true });
        await writeFileAtomic(configFile, YAML.stringify(settings));
        await steps.train({ reward, configFile, out: runDir, cfg, resume: fromCheckpoint });
      },
    });
    trained[reward] = { dir: finalDir, hash: out.outputHash };
  }

  const mergedDir = join(root, "models", "merged");
  const mergeFile = join(root, "models", "merge.yml");
  const mergeOut = await stage({
    name: "merge",
    inputs: { accuracy: trained.accuracy.hash, majority: trained.majority.hash, merge: cfg.merge },
    output: mergedDir,
    fingerprint: modelFingerprint(mergedDir),
    run: async () => {
      const mc = mergeConfigFor(
        cfg,
        trained.accuracy.dir,
        trained.majority.dir,
        numLayers(trained.accuracy.dir),
      );
      await writeFileAtomic(mergeFile, YAML.stringify(mc));
      await steps.merge({ configFile: mergeFile, out: mergedDir });
    },
  });

  await evalStage("accuracy", trained.accuracy.dir, trained.accuracy.hash);
  await evalStage("majority", trained.majority.dir, trained.majority.hash);
  await evalStage("merged", mergedDir, mergeOut.outputHash);

  let reportPath: string | null = null;
  if (cfg.report.enabled) {
    const reportDir = join(root, "report");
    const runs = [
      ...(["base", "accuracy", "majority", "merged"] as const).map(evalDir),
      join(root, "train", "accuracy"),
      join(root, "train", "majority"),
    ];
    await stage({
      name: "report",
      inputs: { stages: outcomes.map((s) => [s.name, s.outputHash]), report: cfg.report, name: cfg.name },
      output: reportDir,
      run: async () => {
        await steps.report({
          runs,
          out: reportDir,
          title: `TTRL experiment: ${cfg.name}`,
          png: cfg.report.png,
        });
      },
    });
    reportPath = join(reportDir, "report.html");
  }

  const summary = (["base", "accuracy", "majority", "merged"] as const).map((m) =>
    summaryRow(
      MODEL_NAMES[m],
      JSON.parse(readFileSync(join(evalDir(m), "metrics.json"), "utf8")),
      cfg.eval.k,
    ),
  );
  // question-level bootstrap: accuracy given a valid answer, and each model minus the base (paired)
  let stats: EvalStats | null = null;
  try {
    stats = await evalStats(
      (["base", "accuracy", "majority", "merged"] as const).map((m) => ({
        label: MODEL_NAMES[m],
        dir: evalDir(m),
      })),
      { ks: cfg.eval.ks }, // the report's default bootstrap seed, so both show the same intervals
    );
    for (const row of summary) {
      row.acc_valid_flexible =
        stats.models.find((x) => x.label === row.model)?.modes.flexible.accuracyGivenValid?.value ?? null;
      const d = findDiff(stats, row.model, "flexible", "pass@1");
      row.delta_pass1_flexible = d ? { diff: d.diff, lo: d.lo, hi: d.hi } : null;
    }
  } catch (e) {
    log(`no bootstrap statistics: ${(e as Error).message}`);
  }
  const found = stats ? findings(stats) : [];
  const seconds = (Date.now() - t0) / 1000;
  const text = formatSummary(summary, cfg.eval.k);
  await writeFileAtomic(
    join(root, "summary.md"),
    `# ${cfg.name}\n\n\`\`\`\n${text}\`\`\`\n${found.length ? `\n${found.join("\n\n")}\n` : ""}`,
  );
  await writeJsonAtomic(join(root, "summary.json"), {
    k: cfg.eval.k,
    rows: summary,
    stages: outcomes,
    seconds,
  });
  return {
    out: root,
    stages: outcomes,
    summary,
    k: cfg.eval.k,
    seconds,
    report: reportPath,
    findings: found,
  };
}

function summaryRow(model: string, m: Record<string, any>, k: number): SummaryRow {
  const get = (mode: string, key: string, kk?: number) => {
    const v = kk === undefined ? m[mode]?.[key] : m[mode]?.[key]?.[String(kk)];
    return typeof v === "number" ? v : null;
  };
  return {
    model,
    valid_strict: get("strict", "valid_ratio"),
    valid_flexible: get("flexible", "valid_ratio"),
    pass1_strict: get("strict", "pass@k", 1),
    pass1_flexible: get("flexible", "pass@k", 1),
    consk_strict: get("strict", "cons@k", k),
    consk_flexible: get("flexible", "cons@k", k),
  };
}

export function formatSummary(rows: SummaryRow[], k: number): string {
  const head = [
    "model",
    "valid (strict)",
    "valid (flex)",
    "pass@1 (strict)",
    "pass@1 (flex)",
    `cons@${k} (strict)`,
    `cons@${k} (flex)`,
  ];
  const withStats = rows.some((r) => r.acc_valid_flexible !== undefined);
  if (withStats) head.push("acc|valid (flex)", "Δ pass@1 flex vs base [95% paired CI]");
  const pts = (x: number) => {
    const t = (Math.abs(x) * 100).toFixed(1);
    return `${x < 0 && t !== "0.0" ? "-" : "+"}${t}`;
  };
  return `${table([
    head,
    ...rows.map((r) => [
      r.model,
      pct(r.valid_strict),
      pct(r.valid_flexible),
      pct(r.pass1_strict),
      pct(r.pass1_flexible),
      pct(r.consk_strict),
      pct(r.consk_flexible),
      ...(withStats
        ? [
            pct(r.acc_valid_flexible ?? null),
            r.delta_pass1_flexible
              ? `${pts(r.delta_pass1_flexible.diff)} [${pts(r.delta_pass1_flexible.lo)}, ${pts(r.delta_pass1_flexible.hi)}]`
              : "",
          ]
        : []),
    ]),
  ])}\n`;
}
