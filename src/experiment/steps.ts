/**
 * What each experiment stage does, behind a small interface so the stage machinery can be tested with
 * stand-ins. The real steps call the other modules in-process as library calls: eval (src/eval), train
 * (src/train runGrpo, with the settings resolved as `ttrl train --config` resolves them), merge (src/merge
 * runMerge) and report (src/report). Nothing here goes through the CLI.
 */
import { existsSync, mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import type { ExperimentConfig } from "./config.ts";

export interface EvalStepArgs {
  modelDir: string;
  name: string;
  out: string;
  cfg: ExperimentConfig;
}

export interface TrainStepArgs {
  reward: "accuracy" | "majority";
  /** YAML file with the run's `ttrl train` settings. */
  configFile: string;
  out: string;
  cfg: ExperimentConfig;
  resume: boolean;
}

export interface Steps {
  evalModel(a: EvalStepArgs): Promise<Record<string, any>>;
  /** Returns the trained model's folder. */
  train(a: TrainStepArgs): Promise<string>;
  merge(a: { configFile: string; out: string }): Promise<void>;
  report(a: { runs: string[]; out: string; title: string; png: boolean }): Promise<void>;
}

export function hasCheckpoint(runDir: string): boolean {
  const d = join(runDir, "checkpoints");
  return existsSync(d) && readdirSync(d).some((n) => /^step-\d+$/.test(n));
}

export const realSteps: Steps = {
  async evalModel(a) {
    const { runEval } = await import("../eval/index.ts");
    const e = a.cfg.eval;
    type Backend = Parameters<typeof runEval>[0]["backend"];
    // eval.serve_command: through an OpenAI-compatible server started for this model (src/engines/trl).
    const withBackend = async <T>(fn: (b: Backend) => Promise<T>): Promise<T> => {
      if (e.serve_command) {
        const { httpBackend } = await import("../eval/backends.ts");
        const { withServedModel } = await import("../engines/trl/serve-command.ts");
        mkdirSync(a.out, { recursive: true });
        return withServedModel(
          e.serve_command,
          a.modelDir,
          (s) => fn(httpBackend({ endpoint: s.endpoint, modelName: s.modelName })),
          { logFile: join(a.out, "serve.log") },
        );
      }
      const { loadEngine } = await import("../eval/engine.ts");
      const { localBackend } = await import("../eval/backends.ts");
      const engine = await loadEngine(a.modelDir, { name: a.name });
      return fn(localBackend(engine, { batchSize: e.batch_size }));
    };
    const r = await withBackend((backend) =>
      runEval({
        backend,
        modelName: a.name,
        model: a.modelDir,
        data: a.cfg.test_data,
        out: a.out,
        k: e.k,
        ks: e.ks,
        temperature: e.temperature,
        topP: e.top_p,
        maxTokens: e.max_tokens,
        seed: a.cfg.seed,
        template: a.cfg.template,
        greedy: e.greedy,
        format: a.cfg.format,
        locale: a.cfg.locale,
        limit: e.limit ?? undefined,
      }),
    );
    return r.metrics;
  },
  async train(a) {
    const { resolveTrainSettings, runGrpo } = await import("../train/run.ts");
    const settings = resolveTrainSettings({ out: a.out, resume: a.resume, configFile: a.configFile });
    await runGrpo({ ...settings, out: a.out, resume: a.resume, progressLabel: `train-${a.reward}` });
    const final = join(a.out, "final");
    if (!existsSync(final)) throw new Error(`ttrl train finished without ${final}`);
    return final;
  },
  async merge(a) {
    const { runMerge } = await import("../merge/index.ts");
    await runMerge(a.configFile, { out: a.out, overwrite: true });
  },
  async report(a) {
    const { buildReport } = await import("../report/index.ts");
    await buildReport({ runs: a.runs, out: a.out, title: a.title, noPng: !a.png });
  },
};
